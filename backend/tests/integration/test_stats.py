"""GET /api/{user_id}/stats: total, completed, pending and overdue, for the caller alone."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.support.auth import User


def _stats_url(user: User) -> str:
    return f"/api/{user.id}/stats"


def _when(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


async def _stats(client: httpx.AsyncClient, user: User) -> dict[str, Any]:
    response = await client.get(_stats_url(user), headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


class TestGetStats:
    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(_stats_url(alice))
        assert response.status_code == 401

    async def test_another_users_stats_are_forbidden(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        response = await client.get(_stats_url(bob), headers=alice.headers)
        assert response.status_code == 403

    async def test_no_tasks(self, client: httpx.AsyncClient, alice: User) -> None:
        assert await _stats(client, alice) == {
            "total": 0,
            "completed": 0,
            "pending": 0,
            "overdue": 0,
        }

    async def test_counts(self, client: httpx.AsyncClient, alice: User, create_task: Any) -> None:
        past, future = _when(-timedelta(days=1)), _when(timedelta(days=1))
        await create_task(alice, title="pending, overdue", due_at=past)
        await create_task(alice, title="pending, overdue too", due_at=_when(-timedelta(minutes=1)))
        await create_task(alice, title="pending, due later", due_at=future)
        await create_task(alice, title="pending, undated")
        # Completed late is done, not overdue.
        await create_task(alice, title="completed, past due", due_at=past, is_completed=True)
        await create_task(alice, title="completed, undated", is_completed=True)
        assert await _stats(client, alice) == {
            "total": 6,
            "completed": 2,
            "pending": 4,
            "overdue": 2,
        }

    async def test_only_the_callers_tasks_count(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: Any
    ) -> None:
        await create_task(alice, due_at=_when(-timedelta(days=1)))
        await create_task(bob, is_completed=True)
        await create_task(bob)
        assert await _stats(client, alice) == {
            "total": 1,
            "completed": 0,
            "pending": 1,
            "overdue": 1,
        }

    async def test_follows_completion_and_deletion(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        late = await create_task(alice, due_at=_when(-timedelta(hours=1)))
        other = await create_task(alice)
        await client.patch(alice.task_url(late["id"]) + "/complete", headers=alice.headers)
        assert await _stats(client, alice) == {
            "total": 2,
            "completed": 1,
            "pending": 1,
            "overdue": 0,
        }
        await client.patch(
            alice.task_url(late["id"]) + "/complete",
            json={"is_completed": False},
            headers=alice.headers,
        )
        await client.delete(alice.task_url(other["id"]), headers=alice.headers)
        assert await _stats(client, alice) == {
            "total": 1,
            "completed": 0,
            "pending": 1,
            "overdue": 1,
        }

    async def test_due_date_moved_into_the_future_is_no_longer_overdue(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice, due_at=_when(-timedelta(days=2)))
        assert (await _stats(client, alice))["overdue"] == 1
        await client.patch(
            alice.task_url(task["id"]),
            json={"due_at": _when(timedelta(days=2))},
            headers=alice.headers,
        )
        assert (await _stats(client, alice))["overdue"] == 0
