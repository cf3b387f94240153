"""Idempotency-Key on POST /tasks: replay, reuse with another body, in-flight, retention."""

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from fastapi import FastAPI

from tasks_api.errors import ServiceUnavailable
from tasks_api.repositories import idempotency_repository
from tasks_api.schemas.task import TaskCreate
from tasks_api.services import idempotency_service
from tests.support.auth import User
from tests.support.database import as_user, lock_waits


def keyed(user: User, key: str) -> dict[str, str]:
    return {**user.headers, "Idempotency-Key": key}


async def stored_task_ids(db: asyncpg.Connection, user: User) -> list[str]:
    async with as_user(db, user):
        rows = await db.fetch("SELECT id FROM tasks WHERE user_id = $1", user.id)
    return [str(row["id"]) for row in rows]


async def stored_keys(db: asyncpg.Connection, user: User) -> list[str]:
    async with as_user(db, user):
        rows = await db.fetch(
            "SELECT key FROM idempotency_keys WHERE user_id = $1 ORDER BY key", user.id
        )
    return [row["key"] for row in rows]


async def insert_key(
    db: asyncpg.Connection, user: User, key: str, *, age: str, task: dict[str, Any] | None = None
) -> None:
    async with as_user(db, user):
        await db.execute(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, task, created_at) "
            "VALUES ($1, $2, $3, $4::jsonb, now() - $5::text::interval)",
            user.id,
            key,
            bytes(32),
            orjson.dumps(task or {}).decode(),
            age,
        )


class TestReplay:
    async def test_first_request_creates_and_is_not_marked_replayed(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        response = await client.post(
            alice.tasks_url, json={"title": "Buy milk"}, headers=keyed(alice, "k-1")
        )
        assert response.status_code == 201
        assert "Idempotent-Replayed" not in response.headers
        assert await stored_task_ids(db, alice) == [response.json()["data"]["id"]]
        assert await stored_keys(db, alice) == ["k-1"]

    async def test_same_body_replays_the_first_201(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        body = {"title": "Buy milk", "due_at": "2026-12-01T17:00:00+02:00", "tags": ["home"]}
        first = await client.post(alice.tasks_url, json=body, headers=keyed(alice, "k-1"))
        for _ in range(3):
            replay = await client.post(alice.tasks_url, json=body, headers=keyed(alice, "k-1"))
            assert replay.status_code == 201
            assert replay.headers["Idempotent-Replayed"] == "true"
            assert replay.json()["data"] == first.json()["data"]
            assert replay.headers["ETag"] == first.headers["ETag"]
            assert replay.headers["Location"] == first.headers["Location"]
        assert await stored_task_ids(db, alice) == [first.json()["data"]["id"]]
        listed = await client.get(alice.tasks_url, headers=alice.headers)
        assert [task["id"] for task in listed.json()["data"]] == [first.json()["data"]["id"]]

    async def test_whitespace_and_key_order_do_not_matter(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        headers = {**keyed(alice, "k-1"), "Content-Type": "application/json"}
        first = await client.post(
            alice.tasks_url, content=b'{"title":"x","priority":"high"}', headers=headers
        )
        replay = await client.post(
            alice.tasks_url,
            content=b'\n{ "priority" : "high",\n  "title" : "\\u0078" }\n',
            headers=headers,
        )
        assert first.status_code == replay.status_code == 201
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["data"]["id"] == first.json()["data"]["id"]
        assert len(await stored_task_ids(db, alice)) == 1

    async def test_replay_after_an_update_returns_the_original_snapshot(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        # Decision (specs/idempotency.md): a replay repeats the first answer, as Stripe does;
        # the current state is one GET away.
        first = await client.post(alice.tasks_url, json={"title": "v1"}, headers=keyed(alice, "k"))
        task = first.json()["data"]
        await client.patch(alice.task_url(task["id"]), json={"title": "v2"}, headers=alice.headers)
        replay = await client.post(alice.tasks_url, json={"title": "v1"}, headers=keyed(alice, "k"))
        assert replay.status_code == 201
        assert replay.json()["data"] == task
        assert replay.headers["ETag"] == f'"{task["id"]}.1"'
        current = await client.get(alice.task_url(task["id"]), headers=alice.headers)
        assert current.json()["data"]["title"] == "v2"

    async def test_replay_after_a_delete_does_not_recreate(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        first = await client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "k"))
        task_id = first.json()["data"]["id"]
        await client.delete(alice.task_url(task_id), headers=alice.headers)
        replay = await client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "k"))
        assert replay.status_code == 201
        assert replay.json()["data"]["id"] == task_id
        assert await stored_task_ids(db, alice) == []

    async def test_replay_of_a_completed_create(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        body = {"title": "done", "is_completed": True, "description": "d", "priority": "low"}
        first = await client.post(alice.tasks_url, json=body, headers=keyed(alice, "k"))
        replay = await client.post(alice.tasks_url, json=body, headers=keyed(alice, "k"))
        assert replay.json()["data"] == first.json()["data"]
        assert replay.json()["data"]["completed_at"] == replay.json()["data"]["created_at"]

    async def test_keys_are_per_user(
        self, client: httpx.AsyncClient, alice: User, bob: User, db: asyncpg.Connection
    ) -> None:
        mine = await client.post(alice.tasks_url, json={"title": "a"}, headers=keyed(alice, "k"))
        # Same key, even a different body: another user's key is another key.
        theirs = await client.post(bob.tasks_url, json={"title": "b"}, headers=keyed(bob, "k"))
        assert mine.status_code == theirs.status_code == 201
        assert "Idempotent-Replayed" not in theirs.headers
        assert mine.json()["data"]["id"] != theirs.json()["data"]["id"]
        assert len(await stored_task_ids(db, alice)) == len(await stored_task_ids(db, bob)) == 1

    async def test_without_a_key_every_post_creates(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        for _ in range(2):
            response = await client.post(
                alice.tasks_url, json={"title": "x"}, headers=alice.headers
            )
            assert response.status_code == 201
        assert len(await stored_task_ids(db, alice)) == 2
        assert await stored_keys(db, alice) == []


class TestReuse:
    async def test_different_body_is_422_and_creates_nothing(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        first = await client.post(alice.tasks_url, json={"title": "a"}, headers=keyed(alice, "k"))
        for body in (
            {"title": "b"},
            {"title": "a", "priority": "medium"},
            {"title": "a", "tags": []},
        ):
            response = await client.post(alice.tasks_url, json=body, headers=keyed(alice, "k"))
            assert response.status_code == 422, body
            assert response.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
        assert await stored_task_ids(db, alice) == [first.json()["data"]["id"]]

    async def test_an_invalid_body_does_not_use_up_the_key(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        bad = await client.post(alice.tasks_url, json={"title": ""}, headers=keyed(alice, "k"))
        assert bad.status_code == 400
        assert await stored_keys(db, alice) == []
        good = await client.post(alice.tasks_url, json={"title": "ok"}, headers=keyed(alice, "k"))
        assert good.status_code == 201
        assert "Idempotent-Replayed" not in good.headers


class TestKeyHeader:
    @pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "256 characters"])
    async def test_bad_key_is_400_naming_the_header(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection, key: str
    ) -> None:
        response = await client.post(
            alice.tasks_url, json={"title": "x"}, headers=keyed(alice, key)
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert [detail["field"] for detail in error["details"]] == ["Idempotency-Key"]
        assert await stored_task_ids(db, alice) == []

    @pytest.mark.parametrize(
        "key", [b"k", b"k" * 255, "ключ 🔑".encode()], ids=["1", "255", "utf-8 bytes"]
    )
    async def test_keys_of_1_to_255_characters(
        self, client: httpx.AsyncClient, alice: User, key: bytes
    ) -> None:
        headers: dict[str, str | bytes] = {**alice.headers, "Idempotency-Key": key}
        for replayed in (False, True):
            response = await client.post(alice.tasks_url, json={"title": "x"}, headers=headers)
            assert response.status_code == 201
            assert ("Idempotent-Replayed" in response.headers) is replayed

    async def test_documented_in_openapi(self, app: FastAPI) -> None:
        operation = app.openapi()["paths"]["/api/{user_id}/tasks"]["post"]
        [header] = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert header["in"] == "header"
        assert not header.get("required", False)
        assert header["description"]
        assert {"409", "422"} <= set(operation["responses"])
        assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]


class TestInFlight:
    async def test_second_request_while_the_first_runs_is_409(
        self,
        client: httpx.AsyncClient,
        alice: User,
        db: asyncpg.Connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        in_flight, release = asyncio.Event(), asyncio.Event()
        original = idempotency_repository.create_task_once
        calls = 0

        async def pause_first(*args: Any, **kwargs: Any) -> Any:
            # The first request stops after its statement, before its commit.
            nonlocal calls
            calls += 1
            outcome = await original(*args, **kwargs)
            if calls == 1:
                in_flight.set()
                await release.wait()
            return outcome

        monkeypatch.setattr(idempotency_repository, "create_task_once", pause_first)
        body = {"title": "slow"}
        first = asyncio.create_task(
            client.post(alice.tasks_url, json=body, headers=keyed(alice, "k"))
        )
        await asyncio.wait_for(in_flight.wait(), timeout=10)
        try:
            for other_body in (body, {"title": "another body"}):
                second = await asyncio.wait_for(
                    client.post(alice.tasks_url, json=other_body, headers=keyed(alice, "k")),
                    timeout=10,
                )
                assert second.status_code == 409
                assert second.json()["error"]["code"] == "CONFLICT"
                assert second.headers["Retry-After"] == "1"
        finally:
            release.set()
        created = await first
        assert created.status_code == 201
        third = await client.post(alice.tasks_url, json=body, headers=keyed(alice, "k"))
        assert third.status_code == 201
        assert third.headers["Idempotent-Replayed"] == "true"
        assert await stored_task_ids(db, alice) == [created.json()["data"]["id"]]

    async def test_held_key_lock_is_409_without_waiting(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        # Another instance mid-request holds the key's transaction-scoped advisory lock.
        async with db.transaction():
            await db.execute(
                "SELECT pg_advisory_xact_lock($1)", idempotency_service.lock_id(alice.id, "k")
            )
            response = await asyncio.wait_for(
                client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "k")),
                timeout=5,
            )
            assert response.status_code == 409
            # Other keys of the same user are not held up.
            other = await client.post(
                alice.tasks_url, json={"title": "y"}, headers=keyed(alice, "j")
            )
            assert other.status_code == 201
        assert len(await stored_task_ids(db, alice)) == 1
        retried = await client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "k"))
        assert retried.status_code == 201
        assert "Idempotent-Replayed" not in retried.headers

    async def test_key_committed_after_the_statement_began_creates_no_second_task(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection, database_url: str
    ) -> None:
        # The narrowest race: the first request commits after the second's statement took
        # its snapshot but before it took the lock. Staged here with a key row written
        # without the lock, so the API's upsert has to wait for it and then finds it live.
        watcher = await asyncpg.connect(database_url)
        try:
            transaction = db.transaction()
            await transaction.start()
            await db.execute(
                "SELECT set_config('role', 'tasks_app', true), set_config('app.user_id', $1, true)",
                alice.id,
            )
            await db.execute(
                "INSERT INTO idempotency_keys (user_id, key, request_hash, task) "
                "VALUES ($1, 'k', $2, '{}')",
                alice.id,
                bytes(32),
            )
            request = asyncio.create_task(
                client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "k"))
            )
            waiting = await lock_waits(watcher, request, "transactionid")
            assert waiting == 1, "the API's upsert should be waiting for the staged key"
            await transaction.commit()
            response = await asyncio.wait_for(request, timeout=10)
        finally:
            await watcher.close()
        assert response.status_code == 409
        assert await stored_task_ids(db, alice) == []


class TestAtomicity:
    async def test_a_failure_after_the_insert_rolls_back_task_and_key(
        self,
        client: httpx.AsyncClient,
        alice: User,
        db: asyncpg.Connection,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        original = idempotency_repository.create_task_once

        async def lose_connection(*args: Any, **kwargs: Any) -> Any:
            await original(*args, **kwargs)
            raise ServiceUnavailable

        monkeypatch.setattr(idempotency_repository, "create_task_once", lose_connection)
        failed = await client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "k"))
        assert failed.status_code == 503
        assert await stored_task_ids(db, alice) == []
        assert await stored_keys(db, alice) == []
        monkeypatch.undo()
        retried = await client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "k"))
        assert retried.status_code == 201
        assert "Idempotent-Replayed" not in retried.headers
        assert await stored_task_ids(db, alice) == [retried.json()["data"]["id"]]

    async def test_keyed_create_costs_one_statement_more_than_a_plain_one(
        self, client: httpx.AsyncClient, alice: User, sent_sql: list[str]
    ) -> None:
        counts = []
        for headers in (alice.headers, keyed(alice, "k"), keyed(alice, "k")):
            sent_sql.clear()
            response = await client.post(alice.tasks_url, json={"title": "x"}, headers=headers)
            assert response.status_code == 201
            counts.append(len(sent_sql))
            if headers is alice.headers:
                assert not any("idempotency_keys" in sql for sql in sent_sql)
        plain, keyed_create, replay = counts
        # BEGIN with the role switch, the one statement, COMMIT; a key adds its lock first
        # (idempotency_repository.try_lock: the insert's trigger waits for the user's lock).
        assert plain == 3
        assert keyed_create == replay == 4


class TestRetention:
    async def test_a_key_younger_than_24_hours_still_replays(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        first = await client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "k"))
        async with as_user(db, alice):
            await db.execute(
                "UPDATE idempotency_keys SET created_at = now() - interval '23 hours 59 minutes'"
            )
        replay = await client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "k"))
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["data"] == first.json()["data"]

    async def test_an_expired_key_is_free_again(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        await insert_key(db, alice, "k", age="24 hours 1 second", task={"stale": True})
        fresh = await client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "k"))
        assert fresh.status_code == 201
        assert "Idempotent-Replayed" not in fresh.headers
        replay = await client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "k"))
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["data"] == fresh.json()["data"]
        assert await stored_task_ids(db, alice) == [fresh.json()["data"]["id"]]

    async def test_a_keyed_create_purges_the_users_expired_keys_only(
        self, client: httpx.AsyncClient, alice: User, bob: User, db: asyncpg.Connection
    ) -> None:
        for key in ("old-1", "old-2"):
            await insert_key(db, alice, key, age="25 hours")
        await insert_key(db, alice, "recent", age="1 hour")
        await insert_key(db, bob, "old-bob", age="25 hours")
        # A plain create does no idempotency work at all, purging included.
        await client.post(alice.tasks_url, json={"title": "x"}, headers=alice.headers)
        assert await stored_keys(db, alice) == ["old-1", "old-2", "recent"]
        await client.post(alice.tasks_url, json={"title": "x"}, headers=keyed(alice, "new"))
        assert await stored_keys(db, alice) == ["new", "recent"]
        assert await stored_keys(db, bob) == ["old-bob"]


class TestCanonicalBody:
    def test_hash_ignores_key_order_and_counts_what_was_sent(self) -> None:
        def digest(body: bytes) -> bytes:
            return idempotency_service.request_hash(TaskCreate.model_validate_json(body))

        assert digest(b'{"title":"x","tags":["a"]}') == digest(b'{ "tags": ["a"], "title": "x" }')
        assert digest(b'{"title":"x"}') != digest(b'{"title":"x","tags":[]}')
        assert len(digest(b'{"title":"x"}')) == hashlib.sha256().digest_size

    def test_snapshot_is_answered_in_utc(self) -> None:
        snapshot = {
            "id": "01939a1e-0000-7000-8000-000000000000",
            "user_id": "u",
            "title": "x",
            "description": None,
            "priority": "high",
            "due_at": "2026-12-01T22:30:00+05:30",
            "tags": [],
            "is_completed": False,
            "completed_at": None,
            "created_at": "2026-11-21T19:24:00.123456-08:00",
            "updated_at": "2026-11-21T19:24:00.123456-08:00",
            "version": 1,
            "position": "a0",
        }
        task = idempotency_service._from_snapshot(snapshot)
        assert task["due_at"] == datetime(2026, 12, 1, 17, 0, tzinfo=UTC)
        assert task["created_at"].tzinfo is UTC
        assert task["created_at"].hour == 3


class TestRowLevelSecurity:
    async def test_forced_like_tasks(self, db: asyncpg.Connection) -> None:
        row = await db.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE oid = 'idempotency_keys'::regclass"
        )
        assert tuple(row) == (True, True)

    async def test_a_user_sees_and_writes_only_their_own_keys(
        self, client: httpx.AsyncClient, alice: User, bob: User, db: asyncpg.Connection
    ) -> None:
        await client.post(alice.tasks_url, json={"title": "a"}, headers=keyed(alice, "k"))
        await client.post(bob.tasks_url, json={"title": "b"}, headers=keyed(bob, "k"))
        async with as_user(db, alice):
            assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 1
            assert (
                await db.fetchval(
                    "SELECT count(*) FROM idempotency_keys WHERE user_id = $1", bob.id
                )
                == 0
            )
            deleted = await db.execute("DELETE FROM idempotency_keys WHERE user_id = $1", bob.id)
            assert deleted == "DELETE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with as_user(db, alice):
                await db.execute(
                    "INSERT INTO idempotency_keys (user_id, key, request_hash, task) "
                    "VALUES ($1, 'planted', $2, '{}')",
                    bob.id,
                    bytes(32),
                )
        assert await stored_keys(db, bob) == ["k"]

    async def test_the_owner_sees_no_rows(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        await client.post(alice.tasks_url, json={"title": "a"}, headers=keyed(alice, "k"))
        assert await db.fetchval("SELECT count(*) FROM idempotency_keys") == 0
