"""Each write of a task as a function of an open transaction, with all of its rules.

The single requests (task_service) run one of them in a transaction of their own; a batch
(batch_service) runs several in one. Either way a write follows exactly the same rules.
"""

from collections.abc import Collection, Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
from asyncpg import Record
from uuid_utils.compat import uuid7

from tasks_api.database import Transaction
from tasks_api.errors import NotFound, PreconditionFailed, ValidationFailed
from tasks_api.repositories import batch_repository, order_repository, task_repository
from tasks_api.schemas.task import TaskCreate, TaskUpdate
from tasks_api.services import ordering

NOT_YOURS = "is not one of your tasks"
NOT_ITSELF = "must not be the task being moved"


def new_task_values(user_id: str, payload: TaskCreate) -> dict[str, Any]:
    """The row of a new task; shared by the plain and the keyed (idempotent) create."""
    # completed_at follows is_completed in the INSERT itself (the transaction's now()).
    return payload.model_dump() | {"id": uuid7(), "user_id": user_id}


async def create(tx: Transaction, user_id: str, payload: TaskCreate) -> Record:
    return await task_repository.create(tx, new_task_values(user_id, payload))


async def update(
    tx: Transaction,
    user_id: str,
    task_id: UUID,
    payload: TaskUpdate,
    *,
    versions: Collection[int] | None,
) -> Record:
    # completed_at follows is_completed in the UPDATE itself (kept if already completed).
    task = await task_repository.update_one(
        tx, user_id, task_id, payload.changes(), versions=versions
    )
    if task is None:
        raise await _why_not_written(tx, user_id, task_id)
    return task


class Failed(Exception):
    """The update at `index` of `update_many` cannot apply: `error` says why."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


async def update_many(
    tx: Transaction,
    user_id: str,
    updates: Sequence[tuple[UUID, TaskUpdate, Collection[int] | None]],
) -> list[Record]:
    """Updates of distinct tasks, each with the rules of `update`, in one statement (a run
    of a batch's update operations). Being on distinct tasks, none sees another, so the
    outcome is that of applying them one by one. Raises Failed for the first (in order)
    that cannot apply; the caller's transaction then rolls them all back."""
    rows = [
        {
            "id": str(task_id),
            "ord": number,
            # due_at goes apart, bound as a timestamp as the single update binds it.
            "c": payload.model_dump(
                mode="json", include=payload.model_fields_set, exclude={"due_at"}
            )
            | ({"due_at": None} if "due_at" in payload.model_fields_set else {}),
            "versions": None if versions is None else sorted(versions),
        }
        for number, (task_id, payload, versions) in enumerate(updates, 1)
    ]
    due_at = [payload.due_at for _, payload, _ in updates]
    written = await batch_repository.update_many(tx, user_id, orjson.dumps(rows).decode(), due_at)
    tasks = {str(task["id"]): task for task in written}
    for index, (task_id, _, _) in enumerate(updates):
        if str(task_id) not in tasks:
            raise Failed(index, await _why_not_written(tx, user_id, task_id))
    return [tasks[str(task_id)] for task_id, _, _ in updates]


async def set_completed(
    tx: Transaction,
    user_id: str,
    task_id: UUID,
    completed: bool,
    *,
    versions: Collection[int] | None,
) -> Record:
    """Idempotent: a task already in the wanted state is returned unchanged (same version)."""
    task = await task_repository.set_completed(tx, user_id, task_id, completed, versions=versions)
    if task is not None:
        return task
    current = await task_repository.get(tx, user_id, task_id)
    if current is None:
        raise NotFound
    if versions is not None and current["version"] not in versions:
        raise PreconditionFailed
    return current


async def delete(
    tx: Transaction, user_id: str, task_id: UUID, *, versions: Collection[int] | None
) -> None:
    if not await task_repository.delete_one(tx, user_id, task_id, versions=versions):
        raise await _why_not_written(tx, user_id, task_id)


async def move(
    tx: Transaction,
    user_id: str,
    task_id: UUID,
    after: UUID | None,
    *,
    versions: Collection[int] | None,
) -> Mapping[str, Any]:
    """Put the task right after `after` (first when None).

    One statement (order_repository.move): the user's write lock, then the neighbours, the
    checks and the new key, all in the database; the neighbours read are still the
    neighbours when the key is written, so two moves into one gap never compute the same
    key (specs/ordering.md). Idempotent: a task already in place keeps its key and version.
    """
    if after == task_id:
        raise ValidationFailed.field("after", NOT_ITSELF)
    row = await order_repository.move(
        tx, user_id, task_id, after, versions=versions, longest=ordering.REBALANCE_AT
    )
    outcome = row["outcome"]
    if outcome == "after":
        raise ValidationFailed.field("after", NOT_YOURS)
    if outcome == "missing":
        raise NotFound
    if outcome == "stale":
        raise PreconditionFailed
    if outcome != "rebalance":  # 'placed' or 'moved'
        return {name: row[name] for name in task_repository.COLUMN_NAMES}
    # The key would be too long: every key of the user anew, under the lock tasks_move took.
    order = [(r["id"], r["position"]) for r in await order_repository.order(tx, user_id)]
    keys = ordering.rebalanced(order, task_id, after)
    return await order_repository.rebalance(tx, user_id, task_id, keys)


async def _why_not_written(tx: Transaction, user_id: str, task_id: UUID) -> Exception:
    """A conditional write matched no row: the task is gone (404) or If-Match is stale (412)."""
    if await task_repository.get(tx, user_id, task_id) is None:
        return NotFound()
    return PreconditionFailed()
