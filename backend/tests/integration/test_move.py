"""POST /api/{user_id}/tasks/{task_id}/move and the manual order (`sort=position`)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from uuid_utils.compat import uuid7

from tests.integration.test_concurrency import etag_of, statuses, stored_tasks
from tests.support.auth import User
from tests.support.database import lock_waits

CreateTask = Callable[..., Awaitable[dict[str, Any]]]


def move_url(user: User, task_id: str) -> str:
    return user.task_url(task_id) + "/move"


async def move(
    client: httpx.AsyncClient, user: User, task_id: str, after: str | None, **headers: str
) -> httpx.Response:
    return await client.post(
        move_url(user, task_id), json={"after": after}, headers={**user.headers, **headers}
    )


async def manual_order(client: httpx.AsyncClient, user: User) -> list[str]:
    response = await client.get(
        user.tasks_url, params={"sort": "position", "limit": 1000}, headers=user.headers
    )
    assert response.status_code == 200, response.text
    tasks = response.json()["data"]
    positions = [task["position"] for task in tasks]
    assert positions == sorted(positions, key=str.encode)
    assert len(set(positions)) == len(positions)
    return [task["id"] for task in tasks]


async def make(create_task: CreateTask, user: User, count: int) -> list[str]:
    """`count` tasks, returned in their manual order (each new task goes first)."""
    created = [(await create_task(user, title=f"t{n}"))["id"] for n in range(count)]
    return created[::-1]


def field_error(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()["error"]
    assert body["code"] == "VALIDATION_ERROR"
    return [detail["field"] for detail in body["details"]]


class TestMove:
    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(move_url(alice, str(uuid7())), json={"after": None})
        assert response.status_code == 401

    async def test_another_users_url(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        response = await client.post(
            move_url(alice, str(uuid7())), json={"after": None}, headers=bob.headers
        )
        assert response.status_code == 403

    async def test_first(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        a, b, c = await make(create_task, alice, 3)
        response = await move(client, alice, c, None)
        assert response.status_code == 200, response.text
        task = response.json()["data"]
        assert task["version"] == 2
        assert response.headers["ETag"] == etag_of(task)
        assert await manual_order(client, alice) == [c, a, b]

    async def test_after(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        a, b, c, d = await make(create_task, alice, 4)
        assert (await move(client, alice, a, c)).status_code == 200
        assert await manual_order(client, alice) == [b, c, a, d]
        assert (await move(client, alice, b, d)).status_code == 200  # after the last
        assert await manual_order(client, alice) == [c, a, d, b]
        assert (await move(client, alice, b, c)).status_code == 200  # back up
        assert await manual_order(client, alice) == [c, b, a, d]

    @pytest.mark.parametrize("where", ["first", "after"])
    async def test_where_it_already_is_changes_nothing(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask, where: str
    ) -> None:
        a, b, _ = await make(create_task, alice, 3)
        task, after = (a, None) if where == "first" else (b, a)
        before = (await client.get(alice.task_url(task), headers=alice.headers)).json()["data"]
        response = await move(client, alice, task, after)
        assert response.status_code == 200, response.text
        assert response.json()["data"] == before
        assert response.headers["ETag"] == etag_of(before)

    async def test_retried_move_changes_nothing_more(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        a, _b, c = await make(create_task, alice, 3)
        first = (await move(client, alice, a, c)).json()["data"]
        again = await move(client, alice, a, c)
        assert again.status_code == 200
        assert again.json()["data"] == first
        assert first["version"] == 2

    async def test_only_the_moved_task_changes(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        ids = await make(create_task, alice, 4)
        response = await client.get(alice.tasks_url, headers=alice.headers)
        before = {task["id"]: task for task in response.json()["data"]}
        await move(client, alice, ids[0], ids[2])
        response = await client.get(alice.tasks_url, headers=alice.headers)
        after = {task["id"]: task for task in response.json()["data"]}
        assert [i for i in ids if after[i] != before[i]] == [ids[0]]
        assert after[ids[0]]["updated_at"] > before[ids[0]]["updated_at"]

    async def test_after_itself(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        (a,) = await make(create_task, alice, 1)
        assert field_error(await move(client, alice, a, a)) == ["after"]

    async def test_after_no_task_of_yours(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        (a,) = await make(create_task, alice, 1)
        (bobs,) = await make(create_task, bob, 1)
        assert field_error(await move(client, alice, a, bobs)) == ["after"]
        assert field_error(await move(client, alice, a, str(uuid7()))) == ["after"]
        # Both missing: the body is the first thing wrong.
        assert field_error(await move(client, alice, str(uuid7()), str(uuid7()))) == ["after"]

    async def test_missing_task(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        (a,) = await make(create_task, alice, 1)
        (bobs,) = await make(create_task, bob, 1)
        assert (await move(client, alice, str(uuid7()), a)).status_code == 404
        assert (await move(client, alice, bobs, None)).status_code == 404

    @pytest.mark.parametrize(
        ("body", "fields"),
        [
            ({}, ["after"]),
            ({"after": "nope"}, ["after"]),
            ({"after": None, "before": None}, ["before"]),
            ({"after": None, "position": "a0"}, ["position"]),
            ([], ["body"]),
        ],
    )
    async def test_bad_body(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        body: Any,
        fields: list[str],
    ) -> None:
        (a,) = await make(create_task, alice, 1)
        response = await client.post(move_url(alice, a), json=body, headers=alice.headers)
        assert field_error(response) == fields

    async def test_if_match(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        a, b = await make(create_task, alice, 2)
        task = (await client.get(alice.task_url(b), headers=alice.headers)).json()["data"]
        moved = await move(client, alice, b, None, **{"If-Match": etag_of(task)})
        assert moved.status_code == 200
        stale = await move(client, alice, b, a, **{"If-Match": etag_of(task)})
        assert stale.status_code == 412
        assert stale.json()["error"]["code"] == "PRECONDITION_FAILED"
        # Even where it already is: the precondition is checked first.
        assert (await move(client, alice, b, None, **{"If-Match": etag_of(task)})).status_code == (
            412
        )
        assert await manual_order(client, alice) == [b, a]
        current = await move(client, alice, b, a, **{"If-Match": moved.headers["ETag"]})
        assert current.status_code == 200
        assert await manual_order(client, alice) == [a, b]

    async def test_advances_the_sync_position(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
    ) -> None:
        a, b = await make(create_task, alice, 2)
        seqs = {str(row["id"]): row["sync_seq"] for row in await stored_tasks(db, alice)}
        await move(client, alice, b, None)
        after = {str(row["id"]): row["sync_seq"] for row in await stored_tasks(db, alice)}
        assert after[b] > seqs[b]
        assert after[a] == seqs[a]


class TestMoveRaces:
    async def test_moves_into_one_gap_all_succeed_with_distinct_positions(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        ids = await make(create_task, alice, 12)
        anchor, following, movers = ids[0], ids[1], ids[2:]
        # Every mover reads the same gap (anchor, following) at the same moment.
        responses = await asyncio.gather(*(move(client, alice, m, anchor) for m in movers))
        assert statuses(responses) == {200: len(movers)}
        order = await manual_order(client, alice)
        assert order[0] == anchor
        assert set(order[1:-1]) == set(movers)
        assert order[-1] == following

    async def test_moves_first_at_once(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        ids = await make(create_task, alice, 10)
        responses = await asyncio.gather(*(move(client, alice, m, None) for m in ids[1:]))
        assert statuses(responses) == {200: len(ids) - 1}
        order = await manual_order(client, alice)
        assert order[-1] == ids[0]
        assert sorted(order) == sorted(ids)

    async def test_retries_racing_each_other_move_once(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        a, b, c = await make(create_task, alice, 3)
        responses = await asyncio.gather(*(move(client, alice, a, c) for _ in range(8)))
        assert statuses(responses) == {200: 8}
        assert {r.json()["data"]["version"] for r in responses} == {2}
        assert {r.json()["data"]["position"] for r in responses} == {
            responses[0].json()["data"]["position"]
        }
        assert await manual_order(client, alice) == [b, c, a]

    async def test_a_move_waiting_for_the_lock_reads_the_order_it_got(
        self,
        client: httpx.AsyncClient,
        alice: User,
        db: asyncpg.Connection,
        database_url: str,
        create_task: CreateTask,
    ) -> None:
        # The anchor moves (to the end) in a transaction that holds the user's lock; a move
        # "after the anchor" sent meanwhile must wait, then go after the anchor's new place.
        # A move that read the order before the lock was granted (one statement, one
        # snapshot) puts the task after the anchor's old place: [c, b, d, a].
        a, b, c, d = await make(create_task, alice, 4)
        watcher = await asyncpg.connect(database_url)
        try:
            transaction = db.transaction()
            await transaction.start()
            await db.execute(
                "SELECT set_config('role', 'tasks_app', true), set_config('app.user_id', $1, true)",
                alice.id,
            )
            last = await db.fetchval("SELECT max(position) FROM tasks")
            await db.execute(
                "UPDATE tasks SET position = tasks_key_between($1, NULL) WHERE id = $2", last, a
            )
            request = asyncio.create_task(move(client, alice, c, a))
            waiting = await lock_waits(watcher, request, "advisory")
            assert waiting == 1, "the move should be waiting for the user's lock"
            await transaction.commit()
            response = await asyncio.wait_for(request, timeout=10)
        finally:
            await watcher.close()
        assert response.status_code == 200, response.text
        assert await manual_order(client, alice) == [b, d, a, c]


class TestManualOrderList:
    async def test_desc_is_the_reverse(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        ids = await make(create_task, alice, 5)
        await move(client, alice, ids[0], ids[3])
        order = await manual_order(client, alice)
        response = await client.get(
            alice.tasks_url, params={"sort": "position", "order": "desc"}, headers=alice.headers
        )
        assert [task["id"] for task in response.json()["data"]] == order[::-1]

    @pytest.mark.parametrize("order", ["asc", "desc"])
    async def test_pages_walk_the_manual_order(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask, order: str
    ) -> None:
        ids = await make(create_task, alice, 7)
        await move(client, alice, ids[0], ids[4])
        await move(client, alice, ids[6], None)
        manual = [ids[6], *ids[1:5], ids[0], ids[5]]
        assert await manual_order(client, alice) == manual
        expected = manual if order == "asc" else manual[::-1]
        walked: list[str] = []
        cursor = None
        while True:
            params = {"sort": "position", "order": order, "limit": 2}
            response = await client.get(
                alice.tasks_url,
                params=params | ({"cursor": cursor} if cursor else {}),
                headers=alice.headers,
            )
            body = response.json()
            walked += [task["id"] for task in body["data"]]
            cursor = body["meta"]["next_cursor"]
            if cursor is None:
                break
        assert walked == expected
