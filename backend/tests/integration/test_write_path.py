"""The write path in the database (migration 0004): every write to `tasks`, whichever
statement makes it, gets a position when new, a sync position, tombstones, exact counts and
a notification, and a user's writers are serialized by the user's lock."""

import asyncio
import itertools
import random
from typing import Any

import asyncpg
import httpx
import pytest
from fractional_indexing import FIError, generate_key_between

from tests.support.auth import User
from tests.support.database import as_user

pytestmark = pytest.mark.asyncio


async def sync_row(db: asyncpg.Connection, user: User) -> dict[str, Any]:
    async with as_user(db, user):
        row = await db.fetchrow("SELECT * FROM task_sync WHERE user_id = $1", user.id)
    assert row is not None
    return dict(row)


async def counted(db: asyncpg.Connection, user: User) -> dict[str, int]:
    """The counters as count(*) computes them from the rows."""
    async with as_user(db, user):
        rows = await db.fetch(
            "SELECT is_completed, priority::text, count(*) FROM tasks GROUP BY 1, 2"
        )
    counts = {
        f"{'done' if done else 'open'}_{priority}": 0
        for done in (False, True)
        for priority in ("low", "medium", "high")
    }
    for row in rows:
        counts[f"{'done' if row[0] else 'open'}_{row[1]}"] = row[2]
    return counts


async def stored_counters(db: asyncpg.Connection, user: User) -> dict[str, int]:
    row = await sync_row(db, user)
    return {name: row[name] for name in await counted(db, user)}


class TestKeyBefore:
    async def test_matches_the_library(self, db: asyncpg.Connection) -> None:
        rng = random.Random(4)
        keys = ["a0", "a1", "az", "b00", "b0z", "bz0V", "Zz", "Z0", "Y00", "Yzz", "a0V", "Zz5"]
        # Keys as the library makes them: walks down from a0, and midpoints between.
        key = "a0"
        for _ in range(300):
            key = generate_key_between(None, key)
            keys.append(key)
        for _ in range(300):
            low, high = sorted(rng.sample(keys, 2))
            if low != high:
                keys.append(generate_key_between(low, high))
        rows = await db.fetch(
            "SELECT k, tasks_key_before(k) AS before FROM unnest($1::text[]) AS k", keys
        )
        for row in rows:
            assert row["before"] == generate_key_between(None, row["k"]), row["k"]
        assert await db.fetchval("SELECT tasks_key_before(NULL)") == "a0"


class TestKeyBetween:
    async def test_matches_the_library(self, db: asyncpg.Connection) -> None:
        rng = random.Random(13)
        keys = ["a0", "a1", "az", "b00", "b0z", "bz0V", "Zz", "Z0", "Y00", "Yzz", "a0V", "Zz5"]
        keys += ["azz", "b0zz", "zzzzzzzzzzzzzzzzzzzzzzzzzzz", "A00000000000000000000000001"]
        # Keys as the library makes them: walks both ways, into one gap (long fractions,
        # past 64 characters), and random midpoints between any two.
        low = high = "a0"
        for _ in range(200):
            low, high = generate_key_between(None, low), generate_key_between(high, None)
            keys += [low, high]
        gap_low, gap_high = "a0", "a1"
        for n in range(500):
            if n % 2:
                gap_low = generate_key_between(gap_low, gap_high)
                keys.append(gap_low)
            else:
                gap_high = generate_key_between(gap_low, gap_high)
                keys.append(gap_high)
        assert max(len(key) for key in keys) > 64
        for _ in range(1000):
            a, b = sorted(rng.sample(keys, 2))
            if a != b:
                keys.append(generate_key_between(a, b))
        pairs: list[tuple[str | None, str | None]] = [(None, None)]
        pairs += [(None, key) for key in keys] + [(key, None) for key in keys]
        ordered = sorted(set(keys))  # code point order: the library's and COLLATE "C"
        pairs += list(itertools.pairwise(ordered))  # neighbours, many in different integers
        for _ in range(3000):
            a, b = sorted(rng.sample(ordered, 2))
            pairs.append((a, b))
        rows = await db.fetch(
            "SELECT tasks_key_between(a, b) FROM unnest($1::text[], $2::text[]) AS p(a, b)",
            [a for a, _ in pairs],
            [b for _, b in pairs],
        )
        for (a, b), row in zip(pairs, rows, strict=True):
            assert row[0] == generate_key_between(a, b), (a, b)

    @pytest.mark.parametrize(
        ("a", "b"), [("a1", "a0"), ("a1", "a1"), ("a", None), ("a10", None), ("+0", None)]
    )
    async def test_refuses_what_the_library_refuses(
        self, db: asyncpg.Connection, a: str, b: str | None
    ) -> None:
        with pytest.raises(FIError):
            generate_key_between(a, b)
        with pytest.raises(asyncpg.RaiseError):
            await db.fetchval("SELECT tasks_key_between($1, $2)", a, b)


class TestPositions:
    async def test_new_tasks_go_first(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        positions = [(await create_task(alice))["position"] for _ in range(70)]
        assert positions[0] == "a0"
        # Each one before the last, byte-wise, as JavaScript compares strings.
        assert all(b < a for a, b in itertools.pairwise(positions))
        assert len(set(positions)) == len(positions)

    async def test_concurrent_creates_never_share_a_position(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        async def create(i: int) -> httpx.Response:
            return await client.post(
                alice.tasks_url, json={"title": f"t{i}"}, headers=alice.headers
            )

        responses = await asyncio.gather(*(create(i) for i in range(40)))
        assert [r.status_code for r in responses] == [201] * 40
        positions = [r.json()["data"]["position"] for r in responses]
        assert len(set(positions)) == 40


class TestSyncPositions:
    async def test_every_write_takes_a_later_position(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection, create_task: Any
    ) -> None:
        task = await create_task(alice)
        first = (await sync_row(db, alice))["seq"]
        url = f"{alice.tasks_url}/{task['id']}"
        await client.patch(url, json={"title": "renamed"}, headers=alice.headers)
        second = (await sync_row(db, alice))["seq"]
        assert second > first
        await client.patch(f"{url}/complete", headers=alice.headers)
        third = (await sync_row(db, alice))["seq"]
        assert third > second
        # Completing again changes nothing: no new position.
        await client.patch(f"{url}/complete", headers=alice.headers)
        assert (await sync_row(db, alice))["seq"] == third
        async with as_user(db, alice):
            row_seq = await db.fetchval("SELECT sync_seq FROM tasks WHERE id = $1", task["id"])
        assert row_seq == third

    async def test_a_delete_leaves_a_tombstone(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection, create_task: Any
    ) -> None:
        task = await create_task(alice)
        response = await client.delete(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
        assert response.status_code == 204
        state = await sync_row(db, alice)
        async with as_user(db, alice):
            tombstone = await db.fetchrow(
                "SELECT seq, deleted_at FROM task_tombstones WHERE task_id = $1", task["id"]
            )
        assert tombstone is not None
        assert tombstone["seq"] == state["seq"]

    async def test_expired_tombstones_are_purged_by_a_later_delete(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection, create_task: Any
    ) -> None:
        old, new = await create_task(alice), await create_task(alice)
        await client.delete(f"{alice.tasks_url}/{old['id']}", headers=alice.headers)
        async with as_user(db, alice):
            old_seq = await db.fetchval(
                "UPDATE task_tombstones SET deleted_at = now() - interval '31 days' "
                "WHERE task_id = $1 RETURNING seq",
                old["id"],
            )
        await client.delete(f"{alice.tasks_url}/{new['id']}", headers=alice.headers)
        async with as_user(db, alice):
            left = await db.fetch("SELECT task_id FROM task_tombstones")
        assert [str(row["task_id"]) for row in left] == [new["id"]]
        assert (await sync_row(db, alice))["purged_seq"] == old_seq

    async def test_a_commit_notifies_the_user_not_the_task(
        self,
        client: httpx.AsyncClient,
        alice: User,
        bob: User,
        db: asyncpg.Connection,
        database_url: str,
        create_task: Any,
    ) -> None:
        # Alice has a stream on some instance (its row in task_listeners); Bob has none.
        async with as_user(db, alice):
            await db.execute(
                "INSERT INTO task_listeners (user_id, instance) VALUES ($1, 'test')", alice.id
            )
        listener = await asyncpg.connect(database_url)
        heard: asyncio.Queue[str] = asyncio.Queue()
        await listener.add_listener("task_changes", lambda *args: heard.put_nowait(args[3]))
        try:
            await create_task(bob)
            await create_task(alice)
            # Notifications arrive in commit order: Bob's write, committed first, sent none.
            assert await asyncio.wait_for(heard.get(), timeout=5) == alice.id
            assert heard.empty()
        finally:
            await listener.close()

    async def test_a_rolled_back_write_records_nothing(
        self, alice: User, db: asyncpg.Connection, create_task: Any
    ) -> None:
        await create_task(alice)
        before = await sync_row(db, alice)

        async def delete_all_then_fail() -> None:
            async with as_user(db, alice):
                await db.execute("DELETE FROM tasks")
                raise RuntimeError("roll back")

        with pytest.raises(RuntimeError):
            await delete_all_then_fail()
        assert await sync_row(db, alice) == before


class TestCounters:
    async def test_exact_after_a_storm_of_racing_writes(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection, create_task: Any
    ) -> None:
        rng = random.Random(7)
        tasks = [
            await create_task(alice, priority=rng.choice(["low", "medium", "high"]))
            for _ in range(30)
        ]
        ids = [task["id"] for task in tasks]

        async def one_write(i: int) -> None:
            task_id = rng.choice(ids)
            url = f"{alice.tasks_url}/{task_id}"
            kind = i % 5
            if kind == 0:
                body = {"title": f"n{i}", "priority": rng.choice(["low", "medium", "high"])}
                await client.post(alice.tasks_url, json=body, headers=alice.headers)
            elif kind == 1:
                body = {"priority": rng.choice(["low", "medium", "high"])}
                await client.patch(url, json=body, headers=alice.headers)
            elif kind == 2:
                await client.patch(f"{url}/complete", headers=alice.headers)
            elif kind == 3:
                body = {"is_completed": rng.random() < 0.5}
                await client.patch(f"{url}/complete", json=body, headers=alice.headers)
            else:
                await client.delete(url, headers=alice.headers)

        await asyncio.gather(*(one_write(i) for i in range(150)))
        assert await stored_counters(db, alice) == await counted(db, alice)

    async def test_a_multi_row_statement_counts_every_row(
        self, alice: User, db: asyncpg.Connection, create_task: Any
    ) -> None:
        for priority in ("low", "high", "high"):
            await create_task(alice, priority=priority)
        async with as_user(db, alice):
            await db.execute("UPDATE tasks SET is_completed = true, completed_at = now()")
        assert await stored_counters(db, alice) == await counted(db, alice)
        async with as_user(db, alice):
            await db.execute("DELETE FROM tasks WHERE priority = 'high'")
        assert await stored_counters(db, alice) == await counted(db, alice)
        assert (await sync_row(db, alice))["done_low"] == 1


class TestIsolation:
    async def test_another_users_sync_rows_are_invisible(
        self, alice: User, bob: User, db: asyncpg.Connection, create_task: Any
    ) -> None:
        await create_task(alice)
        await create_task(bob)
        async with as_user(db, alice):
            users = {row[0] for row in await db.fetch("SELECT user_id FROM task_sync")}
            users |= {row[0] for row in await db.fetch("SELECT user_id FROM task_tombstones")}
        assert users == {alice.id}

    @pytest.mark.parametrize("table", ["task_sync", "task_tombstones"])
    async def test_forced_like_tasks(self, db: asyncpg.Connection, table: str) -> None:
        row = await db.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass",
            table,
        )
        assert tuple(row) == (True, True)
