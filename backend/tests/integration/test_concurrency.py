"""Races, run as truly parallel requests: each has its own connection and transaction."""

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import httpx

from tests.support.auth import User


def etag_of(task: dict[str, Any]) -> str:
    return f'"{task["id"]}.{task["version"]}"'


async def stored_tasks(db: asyncpg.Connection, user: User) -> list[asyncpg.Record]:
    """The user's rows as stored, read behind the API (as the app role, under RLS)."""
    async with db.transaction():
        await db.execute(
            "SELECT set_config('role', 'tasks_app', true), set_config('app.user_id', $1, true)",
            user.id,
        )
        return await db.fetch("SELECT * FROM tasks WHERE user_id = $1", user.id)


async def listed_ids(client: httpx.AsyncClient, user: User) -> list[str]:
    response = await client.get(user.tasks_url, headers=user.headers)
    assert response.status_code == 200, response.text
    return [task["id"] for task in response.json()["data"]]


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


class TestIfMatchRaces:
    async def test_twenty_writers_with_one_etag_one_wins(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, db: asyncpg.Connection
    ) -> None:
        task = await create_task(alice)
        headers = {**alice.headers, "If-Match": etag_of(task)}
        responses = await asyncio.gather(
            *(
                client.patch(alice.task_url(task["id"]), json={"title": f"w{n}"}, headers=headers)
                for n in range(20)
            )
        )
        assert statuses(responses) == {200: 1, 412: 19}
        [winner] = [r.json()["data"] for r in responses if r.status_code == 200]
        [row] = await stored_tasks(db, alice)
        assert row["version"] == winner["version"] == 2
        assert row["title"] == winner["title"]

    async def test_twenty_completes_with_one_etag_one_wins(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, db: asyncpg.Connection
    ) -> None:
        task = await create_task(alice)
        headers = {**alice.headers, "If-Match": etag_of(task)}
        url = alice.task_url(task["id"]) + "/complete"
        responses = await asyncio.gather(*(client.patch(url, headers=headers) for _ in range(20)))
        # The losers' ETag is stale by the time they run: 412, not a second completion.
        assert statuses(responses) == {200: 1, 412: 19}
        [row] = await stored_tasks(db, alice)
        assert row["version"] == 2
        assert row["is_completed"] is True

    async def test_stale_deletes_racing_an_update_leave_the_task(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, db: asyncpg.Connection
    ) -> None:
        task = await create_task(alice)
        updated = await client.patch(
            alice.task_url(task["id"]), json={"title": "v2"}, headers=alice.headers
        )
        stale = {**alice.headers, "If-Match": etag_of(task)}
        current = {**alice.headers, "If-Match": updated.headers["ETag"]}
        deletes = [client.delete(alice.task_url(task["id"]), headers=stale) for _ in range(10)]
        completes = [
            client.patch(alice.task_url(task["id"]) + "/complete", headers=stale) for _ in range(10)
        ]
        update = client.patch(alice.task_url(task["id"]), json={"title": "v3"}, headers=current)
        responses = await asyncio.gather(update, *deletes, *completes)
        assert responses[0].status_code == 200
        assert statuses(responses[1:]) == {412: 20}
        [row] = await stored_tasks(db, alice)
        assert (row["title"], row["version"], row["is_completed"]) == ("v3", 3, False)

    async def test_writers_and_deleters_with_one_etag_one_wins(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, db: asyncpg.Connection
    ) -> None:
        task = await create_task(alice)
        url, headers = alice.task_url(task["id"]), {**alice.headers, "If-Match": etag_of(task)}
        responses = await asyncio.gather(
            *(client.patch(url, json={"title": "w"}, headers=headers) for _ in range(10)),
            *(client.delete(url, headers=headers) for _ in range(10)),
        )
        rows = await stored_tasks(db, alice)
        counts = statuses(responses)
        assert counts[200] + counts[204] == 1
        if counts[204]:
            # Deleted: every other writer finds no task.
            assert rows == []
            assert counts[404] == 19
        else:
            assert rows[0]["version"] == 2
            assert counts[412] == 19


class TestCreateRaces:
    async def test_fifty_parallel_creates(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        responses = await asyncio.gather(
            *(
                client.post(alice.tasks_url, json={"title": f"t{n}"}, headers=alice.headers)
                for n in range(50)
            )
        )
        assert statuses(responses) == {201: 50}
        ids = {response.json()["data"]["id"] for response in responses}
        assert len(ids) == 50
        assert {str(row["id"]) for row in await stored_tasks(db, alice)} == ids
        assert set(await listed_ids(client, alice)) == ids

    async def test_ten_parallel_creates_with_one_key_make_one_task(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        headers = {**alice.headers, "Idempotency-Key": "one-key"}
        responses = await asyncio.gather(
            *(
                client.post(alice.tasks_url, json={"title": "once"}, headers=headers)
                for _ in range(10)
            )
        )
        counts = statuses(responses)
        assert set(counts) <= {201, 409}
        assert counts[201] >= 1
        created = [r for r in responses if r.status_code == 201]
        assert len({r.json()["data"]["id"] for r in created}) == 1
        assert sum("Idempotent-Replayed" not in r.headers for r in created) == 1
        rows = await stored_tasks(db, alice)
        assert [str(row["id"]) for row in rows] == [created[0].json()["data"]["id"]]
        # Once the winner has committed, every retry is a replay of it.
        retry = await client.post(alice.tasks_url, json={"title": "once"}, headers=headers)
        assert retry.status_code == 201
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert await listed_ids(client, alice) == [created[0].json()["data"]["id"]]

    async def test_parallel_creates_with_one_key_and_different_bodies(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        headers = {**alice.headers, "Idempotency-Key": "one-key"}
        responses = await asyncio.gather(
            *(
                client.post(alice.tasks_url, json={"title": f"t{n}"}, headers=headers)
                for n in range(10)
            )
        )
        counts = statuses(responses)
        assert set(counts) <= {201, 409, 422}
        assert counts[201] == 1
        assert len(await stored_tasks(db, alice)) == 1

    async def test_many_keys_in_parallel_each_make_one_task(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        # Five keys, four concurrent requests each: keys do not block one another.
        requests = [
            client.post(
                alice.tasks_url,
                json={"title": key},
                headers={**alice.headers, "Idempotency-Key": key},
            )
            for key in ("a", "b", "c", "d", "e")
            for _ in range(4)
        ]
        responses = await asyncio.gather(*requests)
        assert set(statuses(responses)) <= {201, 409}
        rows = await stored_tasks(db, alice)
        assert sorted(row["title"] for row in rows) == ["a", "b", "c", "d", "e"]
