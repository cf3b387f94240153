"""Keys of the manual order stay short: a move that would make a key longer than
ordering.REBALANCE_AT rewrites the user's keys in its own transaction."""

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fractional_indexing import generate_n_keys_between

from tasks_api.models.task import POSITION_MAX
from tasks_api.services import ordering
from tests.integration.test_concurrency import stored_tasks
from tests.integration.test_move import make, manual_order, move
from tests.integration.test_write_path import as_user
from tests.support.auth import User

CreateTask = Callable[..., Awaitable[dict[str, Any]]]


def test_the_threshold_leaves_room_under_the_contracts_limit() -> None:
    # One move adds at most one character to the longer neighbour's key.
    assert ordering.REBALANCE_AT < POSITION_MAX


def test_rebalanced_keys_keep_the_order_and_sort_before_the_old_ones() -> None:
    ids = [f"t{n}" for n in range(300)]
    old = generate_n_keys_between("a0", "a1", len(ids))
    order = list(zip(ids, old, strict=True))
    keys = ordering.rebalanced(order, "t5", "t200")  # type: ignore[arg-type]
    expected = [i for i in ids if i != "t5"]
    expected.insert(expected.index("t200") + 1, "t5")
    assert sorted(keys, key=lambda i: keys[i]) == expected
    assert max(map(len, keys.values())) <= 3
    assert max(keys.values()) < min(old)  # no new key is any task's old key


async def _long_keys(db: asyncpg.Connection, user: User, ids: list[str]) -> None:
    """Give the tasks (in their order) keys of REBALANCE_AT characters that share all but
    their last one, as after hundreds of moves into one gap."""
    stem = "a0" + "V" * (ordering.REBALANCE_AT - 3)
    async with as_user(db, user):
        for n, task_id in enumerate(ids, 1):
            await db.execute("UPDATE tasks SET position = $1 WHERE id = $2", f"{stem}{n}", task_id)


class TestRebalance:
    async def test_a_long_key_rebalances_the_users_keys(
        self,
        client: httpx.AsyncClient,
        alice: User,
        bob: User,
        create_task: CreateTask,
        db: asyncpg.Connection,
    ) -> None:
        ids = await make(create_task, alice, 6)
        await make(create_task, bob, 1)
        await _long_keys(db, alice, ids)
        before = {str(r["id"]): r for r in await stored_tasks(db, alice)}
        bob_before = await stored_tasks(db, bob)
        # Between two keys that share 63 characters: the new key would be longer than 64.
        response = await move(client, alice, ids[0], ids[3])
        assert response.status_code == 200, response.text
        moved = response.json()["data"]
        expected = [*ids[1:4], ids[0], *ids[4:]]
        assert await manual_order(client, alice) == expected
        after = {str(r["id"]): r for r in await stored_tasks(db, alice)}
        for task_id in ids:
            # Every key changed: each task is one version on, and in the sync feed.
            assert after[task_id]["version"] == before[task_id]["version"] + 1
            assert after[task_id]["sync_seq"] > before[task_id]["sync_seq"]
            assert len(after[task_id]["position"]) <= 3
        assert moved["version"] == after[ids[0]]["version"]
        assert moved["position"] == after[ids[0]]["position"]
        assert await stored_tasks(db, bob) == bob_before  # another user's keys stay

    async def test_hundreds_of_moves_into_one_gap(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        anchor, following, *movers = await make(create_task, alice, 4)
        lengths = []
        # Each move goes between the anchor and the task moved just before it: the gap
        # halves every time (a key grows by a character every ~6 moves without rebalancing;
        # 373 moves make one longer than 64, specs/ordering.md).
        for n in range(400):
            response = await move(client, alice, movers[n % 2], anchor)
            assert response.status_code == 200
            lengths.append(len(response.json()["data"]["position"]))
        assert max(lengths) <= ordering.REBALANCE_AT
        assert any(b < a for a, b in itertools.pairwise(lengths)), "never rebalanced"
        assert await manual_order(client, alice) == [anchor, movers[1], movers[0], following]


# Migration 0007 rewrote the database's rule for a key; it must accept exactly the keys the
# contract allows: one to POSITION_MAX ASCII letters and digits.
@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        ("a", True),
        ("Zz09", True),
        ("a" * POSITION_MAX, True),
        ("a" * (POSITION_MAX + 1), False),
        ("", False),
        ("a-b", False),
        ("a b", False),
        ("a\n", False),
        ("\na", False),
        ("é", False),
        ("a" * POSITION_MAX + "\n", False),
    ],
)
async def test_the_database_holds_keys_to_the_contracts_alphabet_and_length(
    alice: User, create_task: CreateTask, db: asyncpg.Connection, key: str, allowed: bool
) -> None:
    (task_id,) = await make(create_task, alice, 1)
    async with as_user(db, alice):
        update = db.execute("UPDATE tasks SET position = $1 WHERE id = $2", key, task_id)
        if allowed:
            await update
        else:
            with pytest.raises(asyncpg.CheckViolationError) as refused:
                await update
            assert refused.value.constraint_name == "ck_tasks_position_format"
    stored = {str(r["id"]): r["position"] for r in await stored_tasks(db, alice)}
    assert (stored[task_id] == key) is allowed
