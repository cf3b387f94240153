"""POST /api/{user_id}/batch: up to 100 writes in one transaction, all or nothing."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from uuid_utils.compat import uuid7

from tasks_api.services import batch_service, idempotency_service
from tests.integration.test_concurrency import etag_of, stored_tasks
from tests.integration.test_move import manual_order
from tests.integration.test_write_path import as_user
from tests.support.auth import User

CreateTask = Callable[..., Awaitable[dict[str, Any]]]


def batch_url(user: User) -> str:
    return f"/api/{user.id}/batch"


async def batch(
    client: httpx.AsyncClient, user: User, operations: Any, **headers: str
) -> httpx.Response:
    return await client.post(
        batch_url(user), json={"operations": operations}, headers={**user.headers, **headers}
    )


async def snapshot(db: asyncpg.Connection, user: User) -> dict[str, dict[str, Any]]:
    return {str(row["id"]): dict(row) for row in await stored_tasks(db, user)}


def error_of(response: httpx.Response, status: int, code: str) -> list[dict[str, str]]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    details: list[dict[str, str]] = error["details"]
    return details


class TestBatch:
    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(
            batch_url(alice), json={"operations": [{"op": "create", "task": {"title": "x"}}]}
        )
        assert response.status_code == 401

    async def test_another_users_url(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        response = await client.post(
            batch_url(alice),
            json={"operations": [{"op": "create", "task": {"title": "x"}}]},
            headers=bob.headers,
        )
        assert response.status_code == 403

    async def test_every_kind_in_order(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
    ) -> None:
        a = await create_task(alice, title="a")
        b = await create_task(alice, title="b")
        c = await create_task(alice, title="c")
        response = await batch(
            client,
            alice,
            [
                {"op": "create", "task": {"title": "new", "tags": ["home"]}},
                {"op": "update", "id": a["id"], "changes": {"priority": "high"}},
                {"op": "complete", "id": b["id"], "is_completed": True},
                {"op": "move", "id": a["id"], "after": None},
                {"op": "delete", "id": c["id"], "if_match": etag_of(c)},
                {"op": "complete", "id": b["id"]},
            ],
        )
        assert response.status_code == 200, response.text
        assert "Idempotent-Replayed" not in response.headers
        new, updated, completed, moved, deleted, again = response.json()["data"]
        assert new["title"] == "new"
        assert new["tags"] == ["home"]
        assert new["version"] == 1
        assert updated["priority"] == "high"
        assert updated["version"] == 2
        assert completed["is_completed"] is True
        assert completed["version"] == 2
        assert moved["id"] == a["id"]
        assert moved["version"] == 3
        assert deleted == {"id": c["id"], "deleted": True}
        assert again == completed  # idempotent, as PATCH .../complete
        stored = await snapshot(db, alice)
        assert set(stored) == {new["id"], a["id"], b["id"]}
        assert await manual_order(client, alice) == [a["id"], new["id"], b["id"]]

    async def test_one_transaction(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        sent_sql: list[str],
    ) -> None:
        tasks = [await create_task(alice) for _ in range(5)]
        sent_sql.clear()
        operations = [{"op": "update", "id": t["id"], "changes": {"title": "x"}} for t in tasks]
        assert (await batch(client, alice, operations)).status_code == 200
        # BEGIN, one statement for the run of updates (distinct tasks), COMMIT.
        assert len(sent_sql) == 3
        assert sent_sql[0].startswith("BEGIN")
        assert sent_sql[-1] == "COMMIT"

    @pytest.mark.parametrize(
        ("failing", "status", "code"),
        [
            ({"op": "update", "id": "missing", "changes": {"title": "x"}}, 404, "NOT_FOUND"),
            ({"op": "delete", "id": "missing"}, 404, "NOT_FOUND"),
            ({"op": "complete", "id": "missing"}, 404, "NOT_FOUND"),
            ({"op": "move", "id": "missing", "after": None}, 404, "NOT_FOUND"),
            ({"op": "update", "id": "a", "changes": {"title": "x"}, "if_match": "stale"}, 412, ""),
            ({"op": "delete", "id": "a", "if_match": "stale"}, 412, ""),
            ({"op": "complete", "id": "a", "if_match": "stale"}, 412, ""),
            ({"op": "move", "id": "a", "after": None, "if_match": "stale"}, 412, ""),
        ],
    )
    async def test_a_failing_operation_applies_nothing(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
        failing: dict[str, Any],
        status: int,
        code: str,
    ) -> None:
        a = await create_task(alice, title="a")
        await create_task(alice, title="b")
        stale = etag_of(a)
        renamed = await client.patch(
            alice.task_url(a["id"]), json={"title": "a2"}, headers=alice.headers
        )
        assert renamed.status_code == 200
        before = await snapshot(db, alice)
        failing = {
            **failing,
            "id": {"missing": str(uuid7()), "a": a["id"]}[failing["id"]],
            **({"if_match": stale} if "if_match" in failing else {}),
        }
        response = await batch(
            client,
            alice,
            [
                {"op": "create", "task": {"title": "new"}},
                {"op": "update", "id": a["id"], "changes": {"title": "a3"}},
                {"op": "move", "id": a["id"], "after": None},
                failing,
            ],
        )
        details = error_of(response, status, code or "PRECONDITION_FAILED")
        assert [detail["field"] for detail in details] == ["operations[3]"]
        assert await snapshot(db, alice) == before

    async def test_every_change_reaches_the_sync_feed(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
    ) -> None:
        tasks = [await create_task(alice) for _ in range(3)]
        before = await snapshot(db, alice)
        operations: list[dict[str, Any]] = [
            {"op": "update", "id": t["id"], "changes": {"title": "x"}} for t in tasks
        ]
        operations += [
            {"op": "move", "id": tasks[0]["id"], "after": None},
            {"op": "delete", "id": tasks[2]["id"]},
        ]
        assert (await batch(client, alice, operations)).status_code == 200
        after = await snapshot(db, alice)
        for task in tasks[:2]:
            assert after[task["id"]]["sync_seq"] > before[task["id"]]["sync_seq"]
        async with as_user(db, alice):
            seq = await db.fetchval("SELECT seq FROM task_sync WHERE user_id = $1", alice.id)
            tombstone = await db.fetchval(
                "SELECT seq FROM task_tombstones WHERE task_id = $1", UUID(tasks[2]["id"])
            )
        assert seq == max(tombstone, *(row["sync_seq"] for row in after.values()))

    async def test_the_first_failing_update_of_a_run_is_named(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
    ) -> None:
        tasks = [await create_task(alice) for _ in range(4)]
        before = await snapshot(db, alice)
        operations = [
            {"op": "update", "id": t["id"], "changes": {"title": "x"}, "if_match": etag_of(t)}
            for t in tasks
        ]
        operations[3]["id"] = str(uuid7())  # missing: 404
        operations[1]["if_match"] = etag_of({"id": tasks[1]["id"], "version": 9})  # 412
        response = await batch(client, alice, operations)
        assert [d["field"] for d in error_of(response, 412, "PRECONDITION_FAILED")] == [
            "operations[1]"
        ]
        del operations[1]
        response = await batch(client, alice, operations)
        assert [d["field"] for d in error_of(response, 404, "NOT_FOUND")] == ["operations[2]"]
        assert await snapshot(db, alice) == before

    async def test_updates_of_one_task_see_each_other(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        a = await create_task(alice)
        b = await create_task(alice)
        response = await batch(
            client,
            alice,
            [
                {"op": "update", "id": a["id"], "changes": {"title": "a2"}},
                {"op": "update", "id": b["id"], "changes": {"title": "b2"}},
                {"op": "update", "id": a["id"], "changes": {"priority": "low"}},
            ],
        )
        assert response.status_code == 200, response.text
        first, _, second = response.json()["data"]
        assert (first["title"], first["priority"], first["version"]) == ("a2", "medium", 2)
        assert (second["title"], second["priority"], second["version"]) == ("a2", "low", 3)

    @pytest.mark.parametrize(
        "changes",
        [
            {"title": "  renamed  "},
            {"description": "words"},
            {"description": None},
            {"priority": "high", "tags": ["a", "B c"]},
            {"tags": []},
            {"due_at": "2026-12-01T17:00:00.123456+02:00"},
            {"due_at": "2026-12-01T17:00:00+20:30"},  # beyond PostgreSQL's input offsets
            {"due_at": None},
            {"is_completed": True},
            {"is_completed": False},
            {"is_completed": True, "title": "done"},
        ],
    )
    async def test_an_update_in_a_run_is_the_single_update(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        changes: dict[str, Any],
    ) -> None:
        """A run of updates is one statement (batch_repository.update_many), a single one is
        task_repository's: both must leave a task in the same state."""
        fields = {
            "description": "d",
            "due_at": "2026-11-01T00:00:00Z",
            "tags": ["x"],
            "priority": "low",
        }
        twins = []
        for completed in (False, True):
            pair = [await create_task(alice, is_completed=completed, **fields) for _ in range(2)]
            twins.append(pair)
        singles = []
        for single, _ in twins:
            response = await client.patch(
                alice.task_url(single["id"]), json=changes, headers=alice.headers
            )
            assert response.status_code == 200, response.text
            singles.append(response.json()["data"])
        response = await batch(
            client,
            alice,
            [{"op": "update", "id": run["id"], "changes": changes} for _, run in twins],
        )
        assert response.status_code == 200, response.text
        ignored = {"id", "position", "updated_at", "completed_at", "created_at"}
        for (single_before, run_before), single, run in zip(
            twins, singles, response.json()["data"], strict=True
        ):
            assert {k: v for k, v in run.items() if k not in ignored} == {
                k: v for k, v in single.items() if k not in ignored
            }
            # completed_at: kept when it stays completed, set when it becomes so, else null.
            for before, after in ((single_before, single), (run_before, run)):
                if after["is_completed"] and before["is_completed"]:
                    assert after["completed_at"] == before["completed_at"]
                elif after["is_completed"]:
                    assert after["completed_at"] == after["updated_at"]
                else:
                    assert after["completed_at"] is None

    async def test_a_failing_move_names_its_after(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
    ) -> None:
        a = await create_task(alice)
        before = await snapshot(db, alice)
        for after in (str(uuid7()), a["id"]):
            response = await batch(
                client,
                alice,
                [
                    {"op": "create", "task": {"title": "new"}},
                    {"op": "move", "id": a["id"], "after": after},
                ],
            )
            details = error_of(response, 400, "VALIDATION_ERROR")
            assert [detail["field"] for detail in details] == ["operations[1].after"]
        assert await snapshot(db, alice) == before

    async def test_an_operation_can_see_the_ones_before_it(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        a = await create_task(alice)
        response = await batch(
            client,
            alice,
            [
                {"op": "update", "id": a["id"], "changes": {"title": "v2"}},
                # The ETag of the task as the first operation left it.
                {
                    "op": "update",
                    "id": a["id"],
                    "changes": {"title": "v3"},
                    "if_match": etag_of({"id": a["id"], "version": 2}),
                },
                {"op": "delete", "id": a["id"]},
                {"op": "complete", "id": a["id"]},
            ],
        )
        details = error_of(response, 404, "NOT_FOUND")
        assert details == [{"field": "operations[3]", "message": "Task not found."}]

    @pytest.mark.parametrize(
        ("operations", "fields"),
        [
            ([], ["operations"]),
            ([{"op": "delete", "id": "x"}] * 101, ["operations"]),
            ([{"op": "create", "task": {"title": "ok"}}, {"op": "x"}], ["operations[1].op"]),
            ([{"id": "x"}], ["operations[0].op"]),
            ([{"op": "create", "task": {"title": " "}}], ["operations[0].task.title"]),
            ([{"op": "create", "task": {"title": "a", "id": "x"}}], ["operations[0].task.id"]),
            (
                [{"op": "update", "id": "x", "changes": {"title": "a"}}],
                ["operations[0].id"],
            ),
            (
                [
                    {"op": "create", "task": {"title": "ok"}},
                    {"op": "update", "id": str(uuid7()), "changes": {"title": None}},
                ],
                ["operations[1].changes.title"],
            ),
            ([{"op": "update", "id": str(uuid7()), "changes": {}}], ["operations[0].changes"]),
            ([{"op": "move", "id": str(uuid7())}], ["operations[0].after"]),
            (
                [{"op": "complete", "id": str(uuid7()), "is_completed": "yes"}],
                ["operations[0].is_completed"],
            ),
            ([{"op": "delete", "id": str(uuid7()), "version": 1}], ["operations[0].version"]),
            ([{"op": "delete", "id": str(uuid7()), "if_match": 1}], ["operations[0].if_match"]),
            ([3], ["operations[0]"]),
        ],
    )
    async def test_invalid_body(
        self,
        client: httpx.AsyncClient,
        alice: User,
        db: asyncpg.Connection,
        operations: Any,
        fields: list[str],
    ) -> None:
        response = await batch(client, alice, operations)
        details = error_of(response, 400, "VALIDATION_ERROR")
        assert [detail["field"] for detail in details] == fields
        assert await snapshot(db, alice) == {}

    async def test_read_only_fields_say_so(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await batch(
            client, alice, [{"op": "create", "task": {"title": "a", "position": "a0"}}]
        )
        details = error_of(response, 400, "VALIDATION_ERROR")
        assert details == [{"field": "operations[0].task.position", "message": "is read-only"}]

    async def test_unknown_top_level_field(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(
            batch_url(alice),
            json={"operations": [{"op": "delete", "id": str(uuid7())}], "atomic": True},
            headers=alice.headers,
        )
        assert [d["field"] for d in error_of(response, 400, "VALIDATION_ERROR")] == ["atomic"]

    async def test_hundred_operations(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        operations = [{"op": "create", "task": {"title": f"t{n}"}} for n in range(100)]
        response = await batch(client, alice, operations)
        assert response.status_code == 200, response.text
        assert len(response.json()["data"]) == 100
        assert len(await snapshot(db, alice)) == 100

    async def test_another_users_task_is_not_found(
        self,
        client: httpx.AsyncClient,
        alice: User,
        bob: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
    ) -> None:
        bobs = await create_task(bob)
        response = await batch(client, alice, [{"op": "delete", "id": bobs["id"]}])
        assert [d["field"] for d in error_of(response, 404, "NOT_FOUND")] == ["operations[0]"]
        assert len(await snapshot(db, bob)) == 1

    async def test_if_match_star_and_lists(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        a = await create_task(alice)
        b = await create_task(alice)
        response = await batch(
            client,
            alice,
            [
                {"op": "complete", "id": a["id"], "if_match": "*"},
                {"op": "complete", "id": b["id"], "if_match": f'"x", {etag_of(b)}'},
            ],
        )
        assert response.status_code == 200, response.text


def keyed(user: User, key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


class TestIdempotentBatch:
    async def test_replay(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
    ) -> None:
        a = await create_task(alice)
        operations = [
            {"op": "create", "task": {"title": "new"}},
            {"op": "update", "id": a["id"], "changes": {"title": "v2"}},
            {"op": "delete", "id": a["id"]},
        ]
        first = await batch(client, alice, operations, **keyed(alice, "k"))
        assert first.status_code == 200, first.text
        stored = await snapshot(db, alice)
        second = await batch(client, alice, operations, **keyed(alice, "k"))
        assert second.status_code == 200, second.text
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.json()["data"] == first.json()["data"]
        assert await snapshot(db, alice) == stored

    async def test_another_body_is_422(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        operations = [{"op": "create", "task": {"title": "new"}}]
        assert (await batch(client, alice, operations, **keyed(alice, "k"))).status_code == 200
        other = [{"op": "create", "task": {"title": "other"}}]
        response = await batch(client, alice, other, **keyed(alice, "k"))
        error_of(response, 422, "IDEMPOTENCY_KEY_REUSED")
        assert len(await snapshot(db, alice)) == 1

    async def test_apart_from_create_keys(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        created = await client.post(
            alice.tasks_url,
            json={"title": "new"},
            headers={**alice.headers, "Idempotency-Key": "k"},
        )
        assert created.status_code == 201
        operations = [{"op": "create", "task": {"title": "new"}}]
        response = await batch(client, alice, operations, **keyed(alice, "k"))
        assert response.status_code == 200
        assert "Idempotent-Replayed" not in response.headers
        assert len(await snapshot(db, alice)) == 2

    async def test_a_failed_batch_stores_no_key(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        failing = [{"op": "delete", "id": str(uuid7())}]
        assert (await batch(client, alice, failing, **keyed(alice, "k"))).status_code == 404
        other = [{"op": "create", "task": {"title": "new"}}]
        response = await batch(client, alice, other, **keyed(alice, "k"))
        assert response.status_code == 200
        assert "Idempotent-Replayed" not in response.headers

    async def test_key_in_flight_is_409(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        key = batch_service.stored_key("k")
        operations = [{"op": "create", "task": {"title": "new"}}]
        async with db.transaction():
            # Another instance mid-batch holds the key's advisory lock.
            await db.execute(
                "SELECT pg_advisory_xact_lock($1)", idempotency_service.lock_id(alice.id, key)
            )
            response = await asyncio.wait_for(
                batch(client, alice, operations, **keyed(alice, "k")), timeout=5
            )
            error_of(response, 409, "CONFLICT")
            assert response.headers["Retry-After"] == "1"
            other = await batch(client, alice, operations, **keyed(alice, "j"))
            assert other.status_code == 200
        assert len(await snapshot(db, alice)) == 1

    async def test_racing_retries_apply_once(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        operations = [{"op": "create", "task": {"title": "new"}}]
        responses = await asyncio.gather(
            *(batch(client, alice, operations, **keyed(alice, "k")) for _ in range(10))
        )
        assert {r.status_code for r in responses} <= {200, 409}
        assert len(await snapshot(db, alice)) == 1
        replay = await batch(client, alice, operations, **keyed(alice, "k"))
        assert replay.headers["Idempotent-Replayed"] == "true"

    async def test_bad_key(self, client: httpx.AsyncClient, alice: User) -> None:
        operations = [{"op": "create", "task": {"title": "new"}}]
        response = await batch(client, alice, operations, **keyed(alice, "x" * 256))
        details = error_of(response, 400, "VALIDATION_ERROR")
        assert [d["field"] for d in details] == ["Idempotency-Key"]
