"""The counts that list totals and /stats read (migrations 0004 and 0005) stay exact: after a
storm of racing API requests of two users, after multi-row statements, after rollbacks; and
every `meta.total` and /stats answer equals count(*) over the rows."""

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.test_write_path import as_user, counted, stored_counters
from tests.support.auth import User

pytestmark = pytest.mark.asyncio

TAGS = ["home", "work", "Home", "errand"]
PRIORITIES = ["low", "medium", "high"]
# List filters whose totals come from the counts, and some that are counted (the control).
SHAPES: list[dict[str, Any]] = [
    {},
    {"status": "pending"},
    {"status": "completed"},
    {"priority": "high"},
    {"status": "pending", "priority": "low"},
    {"tag": "home"},
    {"tag": "work", "status": "completed"},
    {"tag": "Home", "status": "pending"},
    {"tag": "errand", "priority": "medium"},
    {"tag": ["home", "work"]},
    {"tag": "bulk"},
]


def _due(rng: random.Random, now: datetime) -> str | None:
    """No date, past days, earlier today, later today or future days."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    choices = [
        None,
        now - timedelta(days=rng.randint(1, 5), minutes=rng.randint(0, 600)),
        start + (now - start) * rng.random(),
        now + (start + timedelta(days=1) - now) * rng.random(),
        now + timedelta(days=rng.randint(1, 5)),
    ]
    due = rng.choice(choices)
    return None if due is None else due.isoformat()


def _sql_filter(shape: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses, args = ["true"], []
    if shape.get("status") == "pending":
        clauses.append("NOT is_completed")
    if shape.get("status") == "completed":
        clauses.append("is_completed")
    if "priority" in shape:
        args.append(shape["priority"])
        clauses.append(f"priority = ${len(args)}::task_priority")
    if "tag" in shape:
        tags = shape["tag"] if isinstance(shape["tag"], list) else [shape["tag"]]
        args.append(tags)
        clauses.append(f"tags @> ${len(args)}::text[]")
    return " AND ".join(clauses), args


async def assert_exact(client: httpx.AsyncClient, db: asyncpg.Connection, user: User) -> None:
    """Every stored count, /stats and the totals of SHAPES against count(*) over the rows."""
    assert await stored_counters(db, user) == await counted(db, user)
    async with as_user(db, user):
        tags = await db.fetch("SELECT tag, open, done FROM task_tag_counts")
        real_tags = await db.fetch(
            "SELECT tag, count(*) FILTER (WHERE NOT is_completed) AS open,"
            " count(*) FILTER (WHERE is_completed) AS done"
            " FROM tasks, LATERAL (SELECT DISTINCT unnest(tags)) AS t(tag) GROUP BY tag"
        )
        days = await db.fetch("SELECT due_day, open FROM task_due_counts")
        real_days = await db.fetch(
            "SELECT (due_at AT TIME ZONE 'UTC')::date AS due_day, count(*) AS open FROM tasks"
            " WHERE NOT is_completed AND due_at IS NOT NULL GROUP BY 1"
        )
        real_stats = await db.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE is_completed) AS completed,"
            " count(*) FILTER (WHERE NOT is_completed) AS pending,"
            " count(*) FILTER (WHERE NOT is_completed AND due_at < now()) AS overdue FROM tasks"
        )
        real_totals = []
        for shape in SHAPES:
            where, args = _sql_filter(shape)
            real_totals.append(
                await db.fetchval(f"SELECT count(*) FROM tasks WHERE {where}", *args)
            )
    # Rows at zero may stay behind (a tag no longer used); they count nothing.
    assert {r["tag"]: (r["open"], r["done"]) for r in tags if r["open"] or r["done"]} == {
        r["tag"]: (r["open"], r["done"]) for r in real_tags
    }
    assert {r["due_day"]: r["open"] for r in days if r["open"]} == {
        r["due_day"]: r["open"] for r in real_days
    }
    response = await client.get(f"/api/{user.id}/stats", headers=user.headers)
    assert response.json()["data"] == dict(real_stats)
    for shape, real in zip(SHAPES, real_totals, strict=True):
        response = await client.get(user.tasks_url, params=shape, headers=user.headers)
        assert response.json()["meta"]["total"] == real, shape


class TestStorm:
    async def test_exact_after_racing_requests_of_two_users(
        self,
        client: httpx.AsyncClient,
        db: asyncpg.Connection,
        alice: User,
        bob: User,
        create_task: Any,
    ) -> None:
        rng = random.Random(14)
        now = datetime.now(UTC)

        def fields() -> dict[str, Any]:
            return {
                "title": rng.choice(["Buy milk", "call MOM", "Écrire"]),
                "tags": rng.sample(TAGS, rng.randint(0, 3)),
                "due_at": _due(rng, now),
                "priority": rng.choice(PRIORITIES),
                "is_completed": rng.random() < 0.3,
            }

        ids: dict[str, list[str]] = {}
        for user in (alice, bob):
            ids[user.id] = [(await create_task(user, **fields()))["id"] for _ in range(25)]

        async def one(i: int) -> None:
            user = (alice, bob)[i % 2]
            task_id = rng.choice(ids[user.id])
            url = user.task_url(task_id)
            kind = i % 9
            if kind == 0:
                response = await client.post(user.tasks_url, json=fields(), headers=user.headers)
                if response.status_code == 201:
                    ids[user.id].append(response.json()["data"]["id"])
            elif kind == 1:
                # Keyed creates: replays of one key write once.
                headers = {**user.headers, "Idempotency-Key": f"storm-{i % 4}"}
                await client.post(user.tasks_url, json={"title": "keyed"}, headers=headers)
            elif kind == 2:
                patch = {k: v for k, v in fields().items() if rng.random() < 0.5}
                await client.patch(url, json=patch or {"tags": []}, headers=user.headers)
            elif kind == 3:
                await client.patch(f"{url}/complete", headers=user.headers)
            elif kind == 4:
                body = {"is_completed": rng.random() < 0.5}
                await client.patch(f"{url}/complete", json=body, headers=user.headers)
            elif kind == 5:
                await client.delete(url, headers=user.headers)
            elif kind == 6:
                # A stale If-Match: refused, nothing written.
                headers = {**user.headers, "If-Match": f'"{task_id}.999"'}
                await client.patch(url, json={"tags": ["work"]}, headers=headers)
            elif kind == 7:
                response = await client.get(f"/api/{user.id}/stats", headers=user.headers)
                stats = response.json()["data"]
                assert stats["total"] == stats["completed"] + stats["pending"]
            else:
                response = await client.get(
                    user.tasks_url, params=rng.choice(SHAPES), headers=user.headers
                )
                assert response.status_code == 200

        await asyncio.gather(*(one(i) for i in range(270)))
        for user in (alice, bob):
            await assert_exact(client, db, user)


class TestStatements:
    async def test_multi_row_statements(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, create_task: Any
    ) -> None:
        yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
        for tags in (["home"], ["home", "work"], [], ["work"]):
            await create_task(alice, tags=tags, due_at=yesterday)
        async with as_user(db, alice):
            await db.execute(
                "INSERT INTO tasks (id, user_id, title, tags, due_at)"
                " SELECT gen_random_uuid(), $1, 'Bulk ' || i, ARRAY['bulk', 'home', 'bulk'],"
                " now() - make_interval(days => i) FROM generate_series(1, 20) AS i",
                alice.id,
            )
        await assert_exact(client, db, alice)
        async with as_user(db, alice):
            await db.execute(
                "UPDATE tasks SET tags = array_remove(tags, 'home') || '{moved}',"
                " due_at = due_at + interval '3 days' WHERE 'home' = ANY(tags)"
            )
            await db.execute(
                "UPDATE tasks SET is_completed = true, completed_at = now()"
                " WHERE title LIKE 'Bulk 1%'"
            )
        await assert_exact(client, db, alice)
        async with as_user(db, alice):
            await db.execute("DELETE FROM tasks WHERE 'bulk' = ANY(tags) AND NOT is_completed")
        await assert_exact(client, db, alice)

    @pytest.mark.parametrize(
        "change",
        [
            # Each statement writes every task; the counts move only if what they count did
            # (migration 0006 skips them when the multiset of tags, states and dates is kept).
            "title = title || '!'",
            "tags = CASE WHEN title = 'A' THEN '{work}' WHEN title = 'B' THEN '{home}'"
            " ELSE tags END",
            "due_at = CASE WHEN title = 'C' THEN due_at + interval '2 days' ELSE due_at END",
            "is_completed = (title = 'A'), completed_at = CASE WHEN title = 'A' THEN now() END",
            "tags = CASE WHEN title = 'A' THEN '{errand,home}' ELSE tags END",
        ],
    )
    async def test_statements_that_keep_or_move_what_is_counted(
        self,
        client: httpx.AsyncClient,
        db: asyncpg.Connection,
        alice: User,
        create_task: Any,
        change: str,
    ) -> None:
        yesterday = datetime.now(UTC) - timedelta(days=1)
        for title, tags in (("A", ["home"]), ("B", ["work"]), ("C", ["home", "work"])):
            await create_task(alice, title=title, tags=tags, due_at=yesterday.isoformat())
        async with as_user(db, alice):
            await db.execute(f"UPDATE tasks SET {change}")
        await assert_exact(client, db, alice)

    async def test_a_rolled_back_transaction_moves_nothing(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice, tags=["home"], due_at="2020-01-01T00:00:00Z")

        async def snapshot() -> list[list[tuple[Any, ...]]]:
            tables = []
            async with as_user(db, alice):
                for table in ("task_sync", "task_tag_counts", "task_due_counts"):
                    rows = await db.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
                    tables.append([tuple(row) for row in rows])
            return tables

        before = await snapshot()

        class Abort(Exception):
            pass

        async def write_then_abort() -> None:
            async with as_user(db, alice):
                await db.execute(
                    "INSERT INTO tasks (id, user_id, title, tags, due_at)"
                    " VALUES (gen_random_uuid(), $1, 'x', '{work}', now() - interval '2 days')",
                    alice.id,
                )
                await db.execute("UPDATE tasks SET tags = '{errand}', due_at = NULL")
                await db.execute("DELETE FROM tasks WHERE id = $1", task["id"])
                raise Abort

        async def fail_on_the_second_row() -> None:
            async with as_user(db, alice):
                await db.execute(
                    "INSERT INTO tasks (id, user_id, title, tags)"
                    " VALUES (gen_random_uuid(), $1, 'ok', '{work}'),"
                    " (gen_random_uuid(), $1, '   ', '{work}')",
                    alice.id,
                )

        with pytest.raises(Abort):
            await write_then_abort()
        # A statement that fails on its second row: the first row's counts go with it.
        with pytest.raises(asyncpg.CheckViolationError):
            await fail_on_the_second_row()
        assert await snapshot() == before
        await assert_exact(client, db, alice)


class TestOverdue:
    async def test_past_days_and_earlier_today_count_later_today_does_not(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, create_task: Any
    ) -> None:
        now = datetime.now(UTC)
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        earlier_today = start + (now - start) / 2
        later_today = now + (start + timedelta(days=1) - now) / 2
        await create_task(alice, due_at=(start - timedelta(days=3)).isoformat())
        await create_task(alice, due_at=(start - timedelta(microseconds=1)).isoformat())
        await create_task(alice, due_at=earlier_today.isoformat())
        await create_task(alice, due_at=later_today.isoformat())
        await create_task(alice, due_at=(start - timedelta(days=1)).isoformat(), is_completed=True)
        response = await client.get(f"/api/{alice.id}/stats", headers=alice.headers)
        assert response.json()["data"]["overdue"] == 3
        async with as_user(db, alice):
            days = dict(await db.fetch("SELECT due_day, open FROM task_due_counts"))
        today = now.date()
        assert days[today] == 2
        assert days[today - timedelta(days=1)] == 1  # the completed one is not counted
        assert days[today - timedelta(days=3)] == 1
        await assert_exact(client, db, alice)

    async def test_stats_is_one_statement(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, sent_sql: list[str]
    ) -> None:
        await create_task(alice, due_at="2020-01-01T00:00:00Z")
        sent_sql.clear()
        response = await client.get(f"/api/{alice.id}/stats", headers=alice.headers)
        assert response.json()["data"]["overdue"] == 1
        # BEGIN with the role switch, the one statement, COMMIT.
        assert len(sent_sql) == 3, sent_sql
