"""A follower of `changes` racing writers ends in the state of a fresh list (API.md, Sync:
a token never skips a change that commits later with an earlier position)."""

import asyncio
import random
from typing import Any

import httpx

from tests.support.auth import User

WRITERS = 8
WRITES_PER_WRITER = 40


async def _writer(client: httpx.AsyncClient, user: User, seed: int) -> None:
    chance = random.Random(seed)
    mine: list[str] = []
    for i in range(WRITES_PER_WRITER):
        move = chance.choice(["create", "create", "update", "complete", "delete"])
        if move == "create" or not mine:
            response = await client.post(
                user.tasks_url, json={"title": f"w{seed} t{i}"}, headers=user.headers
            )
            assert response.status_code == 201, response.text
            mine.append(response.json()["data"]["id"])
            continue
        task_id = chance.choice(mine)
        if move == "update":
            body = {"title": f"w{seed} t{i} renamed", "priority": chance.choice(["low", "high"])}
            response = await client.patch(user.task_url(task_id), json=body, headers=user.headers)
            assert response.status_code == 200, response.text
        elif move == "complete":
            body = {"is_completed": chance.random() < 0.7}
            response = await client.patch(
                f"{user.task_url(task_id)}/complete", json=body, headers=user.headers
            )
            assert response.status_code == 200, response.text
        else:
            response = await client.delete(user.task_url(task_id), headers=user.headers)
            assert response.status_code == 204, response.text
            mine.remove(task_id)


class Follower:
    def __init__(self, client: httpx.AsyncClient, user: User, token: str) -> None:
        self.client, self.user, self.token = client, user, token
        self.tasks: dict[str, dict[str, Any]] = {}
        self.pages = 0

    async def step(self) -> bool:
        """Apply one page; True when more follow at once."""
        response = await self.client.get(
            f"/api/{self.user.id}/changes",
            params={"since": self.token, "limit": 7},
            headers=self.user.headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        for change in body["data"]:
            if change["type"] == "upsert":
                self.tasks[change["task"]["id"]] = change["task"]
            else:
                self.tasks.pop(change["id"], None)
        self.token = body["meta"]["sync_token"]
        self.pages += 1
        return bool(body["meta"]["has_more"])

    async def follow(self, done: asyncio.Event) -> None:
        while not done.is_set():
            await self.step()
        while await self.step():
            pass


async def test_a_racing_follower_ends_in_the_state_of_a_fresh_list(
    client: httpx.AsyncClient, alice: User
) -> None:
    # Starts from a list page, as a client does; some tasks exist before.
    for i in range(5):
        await client.post(alice.tasks_url, json={"title": f"before {i}"}, headers=alice.headers)
    listed = (await client.get(alice.tasks_url, headers=alice.headers)).json()
    follower = Follower(client, alice, listed["meta"]["sync_token"])
    follower.tasks = {task["id"]: task for task in listed["data"]}

    done = asyncio.Event()
    following = asyncio.create_task(follower.follow(done))
    await asyncio.gather(*(_writer(client, alice, seed) for seed in range(WRITERS)))
    done.set()
    await following

    fresh = await client.get(alice.tasks_url, params={"limit": 1000}, headers=alice.headers)
    expected = {task["id"]: task for task in fresh.json()["data"]}
    missing = expected.keys() - follower.tasks.keys()
    extra = follower.tasks.keys() - expected.keys()
    stale = [k for k in expected.keys() & follower.tasks.keys() if expected[k] != follower.tasks[k]]
    assert (missing, extra, stale) == (set(), set(), []), f"after {follower.pages} pages"
    assert follower.pages > WRITERS  # it really followed while the writers wrote
