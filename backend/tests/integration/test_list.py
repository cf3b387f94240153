"""GET /api/{user_id}/tasks: filters, sorts, keyset pages, cursors, and every 400."""

import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from uuid_utils.compat import uuid7

from tests.support.auth import User

CreateTask = Callable[..., Awaitable[dict[str, Any]]]
Params = dict[str, Any]

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
PRIORITY_RANK = {"low": 0, "medium": 1, "high": 2}


async def _insert(db: asyncpg.Connection, user: User, rows: list[dict[str, Any]]) -> list[str]:
    """Rows written straight into the table: the API cannot make ties in created_at."""
    ids = []
    async with db.transaction():
        await db.execute(
            "SELECT set_config('role', 'tasks_app', true), set_config('app.user_id', $1, true)",
            user.id,
        )
        for row in rows:
            task_id = row.get("id") or uuid7()
            created = row.get("created_at", T0)
            completed = row.get("is_completed", False)
            await db.execute(
                "INSERT INTO tasks (id, user_id, title, description, priority, due_at, tags,"
                " is_completed, completed_at, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5::task_priority, $6, $7, $8, $9, $10, $11)",
                task_id,
                user.id,
                row.get("title", "A task"),
                row.get("description"),
                row.get("priority", "medium"),
                row.get("due_at"),
                row.get("tags", []),
                completed,
                created if completed else None,
                created,
                row.get("updated_at", created),
            )
            ids.append(str(task_id))
    return ids


async def _list(
    client: httpx.AsyncClient, user: User, params: Params | list[tuple[str, Any]] | None = None
) -> dict[str, Any]:
    response = await client.get(user.tasks_url, params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _ids(client: httpx.AsyncClient, user: User, params: Params | None = None) -> list[str]:
    body = await _list(client, user, {"limit": 1000, **(params or {})})
    return [task["id"] for task in body["data"]]


async def _walk(
    client: httpx.AsyncClient,
    user: User,
    params: Params,
    limit: int,
    between: Callable[[int], Awaitable[None]] | None = None,
) -> list[list[str]]:
    """Every page of a list, following next_cursor; `between(n)` runs after page n."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = {**params, "limit": limit} | ({"cursor": cursor} if cursor else {})
        body = await _list(client, user, query)
        pages.append([task["id"] for task in body["data"]])
        meta = body["meta"]
        assert meta["has_more"] is (meta["next_cursor"] is not None)
        cursor = meta["next_cursor"]
        if cursor is None:
            return pages
        assert len(body["data"]) == limit
        assert len(pages) < 1000, "the walk does not end"
        if between is not None:
            await between(len(pages))


async def _error(
    client: httpx.AsyncClient, user: User, params: Params | list[tuple[str, Any]]
) -> dict[str, Any]:
    response = await client.get(user.tasks_url, params=params, headers=user.headers)
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    return error


def _fields(error: dict[str, Any]) -> set[str]:
    return {detail["field"] for detail in error["details"]}


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _expected(tasks: list[dict[str, Any]], sort: str, order: str) -> list[str]:
    """The contract's order, computed here from the tasks' own fields."""
    descending = order == "desc"

    def key(task: dict[str, Any]) -> tuple[Any, ...]:
        task_id = UUID(task["id"])
        if sort == "due_date":
            due = _time(task["due_at"])
            # Undated last in both orders: rank them apart from the direction of the rest.
            return (due is not None, due or T0, task_id)
        if sort == "priority":
            return (PRIORITY_RANK[task["priority"]], task_id)
        if sort == "title":
            return (task["title"].lower(), task_id)
        if sort == "position":
            return (task["position"].encode(),)  # byte-wise; unique, so no tie to break
        field = "created_at" if sort == "created" else "updated_at"
        return (_time(task[field]), task_id)

    ranked = sorted(tasks, key=key, reverse=descending)
    if sort == "due_date":
        ranked.sort(key=lambda task: task["due_at"] is None)  # stable: undated to the end
    return [task["id"] for task in ranked]


# A mix with ties on every sort key, so the id tie-break is exercised everywhere.
MIXED = [
    {"title": "banana", "priority": "high", "due_at": T0 + timedelta(days=2)},
    {"title": "Banana", "priority": "high", "due_at": T0 + timedelta(days=2)},
    {"title": "apple", "priority": "low", "due_at": None},
    {"title": "Cherry", "priority": "medium", "due_at": T0 + timedelta(days=1)},
    {"title": "cherry", "priority": "medium", "due_at": None},
    {"title": "date", "priority": "high", "due_at": T0 - timedelta(days=3)},
    {"title": "Apple", "priority": "low", "due_at": T0 + timedelta(days=1)},
    {"title": "elder", "priority": "medium", "due_at": None},
    {"title": "fig", "priority": "low", "due_at": T0 + timedelta(days=2)},
    {"title": "apple", "priority": "medium", "due_at": T0 + timedelta(days=9)},
    {"title": "grape", "priority": "high", "due_at": None},
]


def _mixed() -> list[dict[str, Any]]:
    rows = []
    for n, row in enumerate(MIXED):
        # Pairs share created_at, and updated_at runs the other way round.
        created = T0 + timedelta(minutes=n // 2)
        rows.append(
            {**row, "created_at": created, "updated_at": T0 + timedelta(hours=1, minutes=-(n // 3))}
        )
    return rows


SORTS = [
    (sort, order)
    for sort in ("created", "updated", "due_date", "priority", "title", "position")
    for order in ("asc", "desc")
]


@pytest.fixture
async def mixed(db: asyncpg.Connection, alice: User) -> list[str]:
    return await _insert(db, alice, _mixed())


class TestDefaults:
    async def test_empty(self, client: httpx.AsyncClient, alice: User) -> None:
        body = await _list(client, alice)
        assert body["data"] == []
        assert body["meta"]["sync_token"]
        assert body["meta"] | {"timestamp": None, "request_id": None, "sync_token": None} == {
            "timestamp": None,
            "request_id": None,
            "sync_token": None,
            "limit": 100,
            "has_more": False,
            "next_cursor": None,
            "total": 0,
        }

    async def test_newest_first_and_all_statuses(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        first = await create_task(alice, title="first")
        second = await create_task(alice, title="second", is_completed=True)
        third = await create_task(alice, title="third")
        body = await _list(client, alice)
        assert [task["id"] for task in body["data"]] == [third["id"], second["id"], first["id"]]
        assert body["data"][0] == third
        assert body["meta"]["total"] == 3

    async def test_default_limit_is_100(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
    ) -> None:
        await _insert(db, alice, [{"created_at": T0 + timedelta(seconds=n)} for n in range(101)])
        body = await _list(client, alice)
        assert len(body["data"]) == 100
        assert body["meta"]["limit"] == 100
        assert body["meta"]["has_more"] is True
        assert body["meta"]["total"] == 101

    async def test_only_own_tasks(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        await create_task(bob, title="bob's")
        mine = await create_task(alice, title="alice's")
        body = await _list(client, alice)
        assert [task["id"] for task in body["data"]] == [mine["id"]]
        assert body["meta"]["total"] == 1

    async def test_one_statement_per_page(
        self, client: httpx.AsyncClient, mixed: list[str], alice: User, sent_sql: list[str]
    ) -> None:
        # An empty page too: the page is joined to the user's counts, one row either way.
        body = await _list(client, alice, {"limit": 2, "status": "pending", "tag": "x"})
        assert body["data"] == []
        assert body["meta"]["total"] == 0
        body = await _list(client, alice, {"limit": 2, "sort": "priority"})
        assert body["meta"]["total"] == len(MIXED)
        # Per request: BEGIN with the role switch, one list statement (with its count), COMMIT.
        listing = [sql for sql in sent_sql if not sql.startswith("BEGIN") and sql != "COMMIT"]
        assert len(listing) == 2, listing
        assert len(sent_sql) == 6, sent_sql


class TestFilters:
    @pytest.fixture
    async def tasks(self, db: asyncpg.Connection, alice: User) -> dict[str, str]:
        rows = {
            "milk": {"title": "Buy milk", "tags": ["home", "errand"], "priority": "low"},
            "report": {
                "title": "Write report",
                "description": "Quarterly NUMBERS",
                "tags": ["work"],
                "priority": "high",
                "due_at": T0 + timedelta(days=1),
            },
            "done": {
                "title": "Call mom",
                "tags": ["home"],
                "is_completed": True,
                "due_at": T0 - timedelta(days=1),
            },
            "percent": {"title": "100% done_ish", "tags": ["home", "work", "errand"]},
            "slash": {"title": "a\\b path", "description": "c:\\temp", "due_at": T0},
        }
        ids = await _insert(db, alice, list(rows.values()))
        return dict(zip(rows, ids, strict=True))

    async def _names(
        self,
        client: httpx.AsyncClient,
        user: User,
        tasks: dict[str, str],
        params: Params | list[tuple[str, Any]],
    ) -> set[str]:
        body = await _list(client, user, params)
        names = {task_id: name for name, task_id in tasks.items()}
        found = {names[task["id"]] for task in body["data"]}
        assert body["meta"]["total"] == len(found)
        return found

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({"status": "all"}, {"milk", "report", "done", "percent", "slash"}),
            ({"status": "pending"}, {"milk", "report", "percent", "slash"}),
            ({"status": "completed"}, {"done"}),
            ({"priority": "high"}, {"report"}),
            ({"priority": "low"}, {"milk"}),
            ({"priority": "medium"}, {"done", "percent", "slash"}),
            ({"tag": "home"}, {"milk", "done", "percent"}),
            ([("tag", "home"), ("tag", "errand")], {"milk", "percent"}),
            ([("tag", "home"), ("tag", "work"), ("tag", "errand")], {"percent"}),
            ([("tag", "work"), ("tag", "nope")], set()),
            ({"tag": "HOME"}, set()),
            ({"q": "MILK"}, {"milk"}),
            ({"q": "numbers"}, {"report"}),
            ({"q": "o"}, {"report", "done", "percent"}),
            ({"q": "%"}, {"percent"}),
            ({"q": "0% d"}, {"percent"}),
            ({"q": "_"}, {"percent"}),
            ({"q": "e_i"}, {"percent"}),
            ({"q": "\\"}, {"slash"}),
            ({"q": "c:\\t"}, {"slash"}),
            ({"q": "nothing like it"}, set()),
            ({"q": ""}, {"milk", "report", "done", "percent", "slash"}),
            ({"due_before": "2026-11-21T12:00:00Z"}, {"done"}),
            ({"due_before": "2026-11-21T12:00:00.000001Z"}, {"done", "slash"}),
            ({"due_after": "2026-11-21T12:00:00Z"}, {"report"}),
            ({"due_after": "2026-11-21T13:00:00+02:00"}, {"report", "slash"}),
            (
                {"due_after": "2026-11-20T00:00:00Z", "due_before": "2026-11-22T00:00:00Z"},
                {"done", "slash"},
            ),
            ({"status": "pending", "tag": "home"}, {"milk", "percent"}),
            ({"status": "pending", "q": "h", "priority": "medium"}, {"percent", "slash"}),
            ({"tag": "home", "due_before": "2026-12-01T00:00:00Z"}, {"done"}),
            ({"status": "completed", "priority": "high"}, set()),
        ],
    )
    async def test_filter(
        self,
        client: httpx.AsyncClient,
        alice: User,
        tasks: dict[str, str],
        params: Params | list[tuple[str, Any]],
        expected: set[str],
    ) -> None:
        assert await self._names(client, alice, tasks, params) == expected

    async def test_updated_since_is_inclusive(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
    ) -> None:
        old, edge, new = await _insert(
            db,
            alice,
            [
                {"updated_at": T0 - timedelta(seconds=1)},
                {"updated_at": T0},
                {"updated_at": T0 + timedelta(days=1)},
            ],
        )
        for since in ("2026-11-21T12:00:00Z", "2026-11-21T07:00:00-05:00"):
            assert set(await _ids(client, alice, {"updated_since": since})) == {edge, new}
        assert set(await _ids(client, alice, {"updated_since": "2026-11-21T11:59:59.5Z"})) == {
            edge,
            new,
        }
        assert len(await _ids(client, alice, {"updated_since": "2026-11-21T11:59:59Z"})) == 3
        assert old

    async def test_unencoded_plus_offset(
        self, client: httpx.AsyncClient, alice: User, tasks: dict[str, str]
    ) -> None:
        # "?due_after=...+02:00" unencoded reaches the API as a space before the offset.
        response = await client.get(
            f"{alice.tasks_url}?due_after=2026-11-21T13:00:00+02:00", headers=alice.headers
        )
        assert response.status_code == 200
        assert {task["id"] for task in response.json()["data"]} == {
            tasks["report"],
            tasks["slash"],
        }

    async def test_unknown_parameters_are_ignored(
        self, client: httpx.AsyncClient, alice: User, tasks: dict[str, str]
    ) -> None:
        body = await _list(client, alice, {"colour": "blue", "page": "7", "status": "completed"})
        assert [task["id"] for task in body["data"]] == [tasks["done"]]


class TestSorts:
    @pytest.mark.parametrize(("sort", "order"), SORTS)
    async def test_order(
        self, client: httpx.AsyncClient, alice: User, mixed: list[str], sort: str, order: str
    ) -> None:
        body = await _list(client, alice, {"sort": sort, "order": order})
        assert [task["id"] for task in body["data"]] == _expected(body["data"], sort, order)
        assert len(body["data"]) == len(mixed)

    @pytest.mark.parametrize(
        ("sort", "order"),
        [
            ("created", "desc"),
            ("updated", "desc"),
            ("due_date", "asc"),
            ("priority", "desc"),
            ("title", "asc"),
            ("position", "asc"),
        ],
    )
    async def test_default_order(
        self, client: httpx.AsyncClient, alice: User, mixed: list[str], sort: str, order: str
    ) -> None:
        assert await _ids(client, alice, {"sort": sort}) == await _ids(
            client, alice, {"sort": sort, "order": order}
        )

    async def test_exact_orders(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
    ) -> None:
        # Hand-written expectations, so that the test's own sort cannot share a mistake.
        # Ids in this order: late < undated_a < soon < undated_b.
        late, undated_a, soon, undated_b = await _insert(
            db,
            alice,
            [
                {"id": UUID(int=1), "title": "b", "priority": "low", "due_at": T0 + timedelta(5)},
                {"id": UUID(int=2), "title": "C", "priority": "high"},
                {"id": UUID(int=3), "title": "a", "priority": "medium", "due_at": T0},
                {"id": UUID(int=4), "title": "B", "priority": "high"},
            ],
        )
        assert await _ids(client, alice, {"sort": "due_date"}) == [soon, late, undated_a, undated_b]
        assert await _ids(client, alice, {"sort": "due_date", "order": "desc"}) == [
            late,
            soon,
            undated_b,
            undated_a,
        ]
        assert await _ids(client, alice, {"sort": "priority"}) == [undated_b, undated_a, soon, late]
        assert await _ids(client, alice, {"sort": "priority", "order": "asc"}) == [
            late,
            soon,
            undated_a,
            undated_b,
        ]
        assert await _ids(client, alice, {"sort": "title"}) == [soon, late, undated_b, undated_a]
        assert await _ids(client, alice, {"sort": "title", "order": "desc"}) == [
            undated_a,
            undated_b,
            late,
            soon,
        ]

    async def test_updated_follows_edits(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        first = await create_task(alice, title="first")
        second = await create_task(alice, title="second")
        response = await client.patch(
            alice.task_url(first["id"]), json={"title": "edited"}, headers=alice.headers
        )
        assert response.status_code == 200
        assert await _ids(client, alice, {"sort": "updated"}) == [first["id"], second["id"]]
        assert await _ids(client, alice) == [second["id"], first["id"]]


class TestPages:
    @pytest.mark.parametrize(("sort", "order"), SORTS)
    @pytest.mark.parametrize("limit", [1, 4])
    async def test_walk_every_page(
        self,
        client: httpx.AsyncClient,
        alice: User,
        mixed: list[str],
        sort: str,
        order: str,
        limit: int,
    ) -> None:
        params = {"sort": sort, "order": order}
        pages = await _walk(client, alice, params, limit)
        walked = [task_id for page in pages for task_id in page]
        assert walked == await _ids(client, alice, params)
        assert sorted(walked) == sorted(mixed)
        assert len(pages) == -(-len(mixed) // limit)

    @pytest.mark.parametrize(
        "params",
        [
            {"status": "pending", "sort": "due_date"},
            {"priority": "medium", "sort": "priority", "order": "asc"},
            {"tag": "x", "sort": "title", "order": "desc"},
            {"q": "e", "sort": "due_date", "order": "desc"},
            {"due_before": "2026-11-24T00:00:00Z", "sort": "due_date"},
        ],
    )
    async def test_walk_with_filters(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, params: Params
    ) -> None:
        rows = [
            {**row, "tags": ["x"] if n % 2 else [], "is_completed": n % 3 == 0}
            for n, row in enumerate(_mixed())
        ]
        await _insert(db, alice, rows)
        expected = await _ids(client, alice, params)
        assert expected, "the filter should match something"
        pages = await _walk(client, alice, params, 2)
        assert [task_id for page in pages for task_id in page] == expected
        body = await _list(client, alice, {**params, "limit": 2})
        assert body["meta"]["total"] == len(expected)

    async def test_last_page(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
    ) -> None:
        await _insert(db, alice, [{"created_at": T0 + timedelta(seconds=n)} for n in range(4)])
        first = await _list(client, alice, {"limit": 2})
        assert first["meta"]["has_more"] is True
        assert first["meta"]["total"] == 4
        second = await _list(client, alice, {"limit": 2, "cursor": first["meta"]["next_cursor"]})
        assert len(second["data"]) == 2
        # Exactly full: the last page knows it is the last.
        assert second["meta"]["has_more"] is False
        assert second["meta"]["next_cursor"] is None
        assert second["meta"]["total"] == 4
        whole = await _list(client, alice, {"limit": 4})
        assert whole["meta"]["has_more"] is False
        assert whole["meta"]["next_cursor"] is None

    async def test_page_size_may_change_between_pages(
        self, client: httpx.AsyncClient, alice: User, mixed: list[str]
    ) -> None:
        first = await _list(client, alice, {"limit": 3, "sort": "title"})
        rest = await _list(
            client, alice, {"limit": 50, "sort": "title", "cursor": first["meta"]["next_cursor"]}
        )
        walked = [task["id"] for task in first["data"] + rest["data"]]
        assert walked == await _ids(client, alice, {"sort": "title"})

    async def test_longest_titles(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
    ) -> None:
        # The title cursor carries the title: 500 four-byte characters, or escaped ones.
        titles = ["\U0001d11e" * 500, "\U0001d11e" * 499 + "a", '"' * 500, "\x01" * 500, "b"]
        await _insert(db, alice, [{"title": title} for title in titles])
        pages = await _walk(client, alice, {"sort": "title"}, 1)
        assert [task_id for page in pages for task_id in page] == await _ids(
            client, alice, {"sort": "title"}
        )

    async def test_cursor_after_everything_went(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        tasks = [await create_task(alice, title=f"t{n}") for n in range(3)]
        first = await _list(client, alice, {"limit": 2})
        for task in tasks:
            response = await client.delete(alice.task_url(task["id"]), headers=alice.headers)
            assert response.status_code == 204
        kept = await create_task(alice, title="newer than the cursor")
        body = await _list(client, alice, {"limit": 2, "cursor": first["meta"]["next_cursor"]})
        assert body["data"] == []
        assert body["meta"]["total"] == 1
        assert body["meta"]["has_more"] is False
        assert kept["id"] in await _ids(client, alice)

    @pytest.mark.parametrize(("sort", "order"), SORTS)
    async def test_stable_under_inserts_and_deletes(
        self,
        client: httpx.AsyncClient,
        db: asyncpg.Connection,
        alice: User,
        mixed: list[str],
        sort: str,
        order: str,
    ) -> None:
        params = {"sort": sort, "order": order}
        before = await _ids(client, alice, params)
        deleted: set[str] = set()
        inserted: set[str] = set()

        async def churn(page: int) -> None:
            # Tasks that sort anywhere: before the cursor, after it, and tied with it.
            rows = [{**row, "created_at": T0 + timedelta(minutes=page)} for row in MIXED[page::4]]
            inserted.update(await _insert(db, alice, rows))
            victim = before[(page * 5) % len(before)]
            if victim not in deleted:
                response = await client.delete(alice.task_url(victim), headers=alice.headers)
                assert response.status_code == 204
                deleted.add(victim)

        pages = await _walk(client, alice, params, 3, between=churn)
        walked = [task_id for page in pages for task_id in page]
        assert len(walked) == len(set(walked)), "a task was repeated"
        throughout = [task_id for task_id in before if task_id not in deleted]
        assert [task_id for task_id in walked if task_id in throughout] == throughout
        assert set(walked) <= set(before) | inserted
        assert deleted, "the churn should have deleted something"


class TestCursors:
    @pytest.fixture
    async def cursor(self, client: httpx.AsyncClient, alice: User, mixed: list[str]) -> str:
        body = await _list(client, alice, {"limit": 2, "sort": "due_date", "status": "all"})
        cursor: str = body["meta"]["next_cursor"]
        return cursor

    async def _rejected(self, client: httpx.AsyncClient, user: User, params: Params) -> None:
        error = await _error(client, user, params)
        assert _fields(error) == {"cursor"}

    async def test_valid(self, client: httpx.AsyncClient, alice: User, cursor: str) -> None:
        # Spelled differently, the query is the same one: default order and status given or not.
        for params in ({"sort": "due_date"}, {"sort": "due_date", "order": "asc", "limit": 7}):
            await _list(client, alice, {**params, "cursor": cursor})

    async def test_other_user(
        self, client: httpx.AsyncClient, alice: User, bob: User, cursor: str, db: asyncpg.Connection
    ) -> None:
        await _insert(db, bob, _mixed())
        await self._rejected(client, bob, {"sort": "due_date", "limit": 2, "cursor": cursor})

    @pytest.mark.parametrize(
        "params",
        [
            {"sort": "created"},
            {"sort": "title"},
            {"sort": "due_date", "order": "desc"},
            {"sort": "due_date", "status": "pending"},
            {"sort": "due_date", "priority": "high"},
            {"sort": "due_date", "tag": "x"},
            {"sort": "due_date", "q": "a"},
            {"sort": "due_date", "due_before": "2027-01-01T00:00:00Z"},
            {"sort": "due_date", "due_after": "2020-01-01T00:00:00Z"},
            {"sort": "due_date", "updated_since": "2020-01-01T00:00:00Z"},
        ],
    )
    async def test_other_query(
        self, client: httpx.AsyncClient, alice: User, cursor: str, params: Params
    ) -> None:
        await self._rejected(client, alice, {**params, "cursor": cursor})

    async def test_every_altered_character(
        self, client: httpx.AsyncClient, alice: User, cursor: str
    ) -> None:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        for index, char in enumerate(cursor):
            for replacement in (alphabet[(alphabet.index(char) + 1) % 64], "+"):
                altered = cursor[:index] + replacement + cursor[index + 1 :]
                await self._rejected(client, alice, {"sort": "due_date", "cursor": altered})

    async def test_position_changed_with_the_old_signature(
        self, client: httpx.AsyncClient, alice: User, cursor: str
    ) -> None:
        payload, mac = cursor.split(".")
        position = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        position[1][-1] = str(uuid7())
        forged = base64.urlsafe_b64encode(json.dumps(position).encode()).rstrip(b"=").decode()
        await self._rejected(client, alice, {"sort": "due_date", "cursor": f"{forged}.{mac}"})

    @pytest.mark.parametrize(
        "garbage",
        [
            "",
            "abc",
            "not a cursor",
            "!!!.???",
            "a.b.c",
            ".",
            "é.ü",
            "eyJ4IjogMX0",  # base64url of {"x": 1}, unsigned
            "eyJ4IjogMX0.AAAAAAAAAAAAAAAAAAAAAA",
            base64.urlsafe_b64encode(b"\xff\xfe garbage").decode(),
            "x" * 9000,
        ],
    )
    async def test_garbage(self, client: httpx.AsyncClient, alice: User, garbage: str) -> None:
        await self._rejected(client, alice, {"cursor": garbage})


class TestValidation:
    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"limit": 0}, "limit"),
            ({"limit": 1001}, "limit"),
            ({"limit": -1}, "limit"),
            ({"limit": "abc"}, "limit"),
            ({"limit": "1.5"}, "limit"),
            ({"status": "done"}, "status"),
            ({"status": ""}, "status"),
            ({"sort": "due"}, "sort"),
            ({"sort": "created_at"}, "sort"),
            ({"order": "up"}, "order"),
            ({"order": "DESC"}, "order"),
            ({"priority": "urgent"}, "priority"),
            ({"tag": ""}, "tag.0"),
            ({"tag": "x" * 51}, "tag.0"),
            ({"due_before": "2026-11-21T12:00:00"}, "due_before"),
            ({"due_before": "2026-11-21"}, "due_before"),
            ({"due_after": "tomorrow"}, "due_after"),
            ({"due_after": "1700000000"}, "due_after"),
            ({"updated_since": "2026-11-21 12:00:00"}, "updated_since"),
            ({"updated_since": "2026-13-01T00:00:00Z"}, "updated_since"),
        ],
    )
    async def test_invalid(
        self, client: httpx.AsyncClient, alice: User, params: Params, field: str
    ) -> None:
        error = await _error(client, alice, params)
        assert _fields(error) == {field}

    async def test_limits_accepted(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        await create_task(alice)
        for limit in (1, 1000):
            body = await _list(client, alice, {"limit": limit})
            assert body["meta"]["limit"] == limit
            assert len(body["data"]) == 1

    async def test_every_bad_parameter_is_named(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        error = await _error(client, alice, {"limit": 0, "sort": "x", "status": "y"})
        assert _fields(error) == {"limit", "sort", "status"}

    async def test_too_many_tags(self, client: httpx.AsyncClient, alice: User) -> None:
        error = await _error(client, alice, [("tag", f"t{n}") for n in range(21)])
        assert _fields(error) == {"tag"}

    async def test_auth_comes_first(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        response = await client.get(alice.tasks_url, params={"limit": 0})
        assert response.status_code == 401
        response = await client.get(alice.tasks_url, params={"limit": 0}, headers=bob.headers)
        assert response.status_code == 403
