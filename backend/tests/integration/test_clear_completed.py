"""DELETE /api/{user_id}/tasks?status=completed: clear the completed tasks, never all."""

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from tests.integration.test_concurrency import stored_tasks
from tests.integration.test_write_path import as_user
from tests.support.auth import User

CreateTask = Callable[..., Awaitable[dict[str, Any]]]


async def clear(
    client: httpx.AsyncClient, user: User, params: Any = None, *, as_user: User | None = None
) -> httpx.Response:
    headers = (as_user or user).headers
    params = {"status": "completed"} if params is None else params
    return await client.delete(user.tasks_url, params=params, headers=headers)


class TestClearCompleted:
    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.delete(alice.tasks_url, params={"status": "completed"})
        assert response.status_code == 401

    async def test_another_users_url(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        assert (await clear(client, alice, as_user=bob)).status_code == 403

    async def test_deletes_the_completed_only(
        self,
        client: httpx.AsyncClient,
        alice: User,
        bob: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
    ) -> None:
        done = [await create_task(alice, is_completed=True) for _ in range(3)]
        pending = [await create_task(alice) for _ in range(2)]
        bobs = await create_task(bob, is_completed=True)
        response = await clear(client, alice)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data"] == {"deleted": len(done)}
        assert set(body["meta"]) >= {"timestamp", "request_id"}
        left = {str(row["id"]) for row in await stored_tasks(db, alice)}
        assert left == {task["id"] for task in pending}
        assert [str(row["id"]) for row in await stored_tasks(db, bob)] == [bobs["id"]]

    async def test_nothing_to_clear(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        await create_task(alice)
        response = await clear(client, alice)
        assert response.status_code == 200
        assert response.json()["data"] == {"deleted": 0}

    async def test_tombstones_for_the_sync_feed(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
    ) -> None:
        done = {(await create_task(alice, is_completed=True))["id"] for _ in range(2)}
        await clear(client, alice)
        async with as_user(db, alice):
            rows = await db.fetch(
                "SELECT task_id FROM task_tombstones WHERE user_id = $1", alice.id
            )
        assert {str(row["task_id"]) for row in rows} == done

    @pytest.mark.parametrize(
        "params",
        [{}, {"status": "all"}, {"status": "pending"}, {"status": ""}, {"status": "COMPLETED"}],
    )
    async def test_without_status_completed_nothing_is_deleted(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
        params: dict[str, str],
    ) -> None:
        await create_task(alice, is_completed=True)
        await create_task(alice)
        response = await clear(client, alice, params)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert [detail["field"] for detail in error["details"]] == ["status"]
        assert len(await stored_tasks(db, alice)) == 2

    async def test_one_statement(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        sent_sql: list[str],
    ) -> None:
        await create_task(alice, is_completed=True)
        sent_sql.clear()
        assert (await clear(client, alice)).status_code == 200
        # BEGIN (with the role switch), the delete with its count, COMMIT.
        assert len(sent_sql) == 3
        assert sent_sql[1].lstrip().startswith("WITH deleted AS")
