"""Business rules of tasks: ids, completion, optimistic concurrency; and the unit of work:
each function is one transaction, committed before it returns."""

from collections.abc import Collection
from typing import Any
from uuid import UUID

from asyncpg import Record
from uuid_utils.compat import uuid7

from tasks_api.database import Database, Transaction
from tasks_api.errors import NotFound, PreconditionFailed, ValidationFailed
from tasks_api.repositories import task_repository
from tasks_api.schemas.task import TaskCreate, TaskUpdate
from tasks_api.schemas.task_query import TaskListQuery
from tasks_api.services import sync_token
from tasks_api.services.cursor import CursorSigner


async def get(database: Database, user_id: str, task_id: UUID) -> Record:
    async with database.transaction(user_id) as tx:
        task = await task_repository.get(tx, user_id, task_id)
    if task is None:
        raise NotFound
    return task


_BAD_CURSOR = (
    "is not a cursor of this list: pass the next_cursor of the previous page, with the "
    "same filters, sort and order"
)


async def list_tasks(
    database: Database, user_id: str, query: TaskListQuery, signer: CursorSigner
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A page of the user's tasks and its meta; cursors only continue their own query."""
    scope = {"user_id": user_id, "query": query.binding()}
    after = None
    if query.cursor is not None:
        try:
            segment, values = signer.decode(scope, query.cursor)
            after = task_repository.parse_position(query, segment, values)
        except (ValueError, TypeError) as error:
            raise ValidationFailed.field("cursor", _BAD_CURSOR) from error
    async with database.transaction(user_id) as tx:
        page = await task_repository.list_page(tx, user_id, query, after=after)
    next_cursor = None
    if page.next_position is not None:
        next_cursor = signer.encode(scope, page.next_position)
    meta = {
        "limit": query.limit,
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
        "total": page.total,
        "sync_token": sync_token.encode(signer, user_id, page.sync_seq),
    }
    return page.tasks, meta


def new_task_values(user_id: str, payload: TaskCreate) -> dict[str, Any]:
    """The row of a new task; shared by the plain and the keyed (idempotent) create."""
    # completed_at follows is_completed in the INSERT itself (the transaction's now()).
    return payload.model_dump() | {"id": uuid7(), "user_id": user_id}


async def create(tx: Transaction, user_id: str, payload: TaskCreate) -> Record:
    """Within the caller's transaction: the keyed create decides whether to call it."""
    return await task_repository.create(tx, new_task_values(user_id, payload))


async def update(
    database: Database,
    user_id: str,
    task_id: UUID,
    payload: TaskUpdate,
    *,
    versions: Collection[int] | None,
) -> Record:
    # completed_at follows is_completed in the UPDATE itself (kept if already completed).
    values: dict[str, Any] = payload.changes()
    async with database.transaction(user_id) as tx:
        task = await task_repository.update_one(tx, user_id, task_id, values, versions=versions)
        if task is None:
            raise await _why_not_written(tx, user_id, task_id)
    return task


async def set_completed(
    database: Database,
    user_id: str,
    task_id: UUID,
    completed: bool,
    *,
    versions: Collection[int] | None,
) -> Record:
    """Idempotent: a task already in the wanted state is returned unchanged (same version)."""
    async with database.transaction(user_id) as tx:
        task = await task_repository.set_completed(
            tx, user_id, task_id, completed, versions=versions
        )
        if task is not None:
            return task
        current = await task_repository.get(tx, user_id, task_id)
    if current is None:
        raise NotFound
    if versions is not None and current["version"] not in versions:
        raise PreconditionFailed
    return current


async def delete(
    database: Database, user_id: str, task_id: UUID, *, versions: Collection[int] | None
) -> None:
    async with database.transaction(user_id) as tx:
        if not await task_repository.delete_one(tx, user_id, task_id, versions=versions):
            raise await _why_not_written(tx, user_id, task_id)


async def _why_not_written(tx: Transaction, user_id: str, task_id: UUID) -> Exception:
    """A conditional write matched no row: the task is gone (404) or If-Match is stale (412)."""
    if await task_repository.get(tx, user_id, task_id) is None:
        return NotFound()
    return PreconditionFailed()


async def stats(database: Database, user_id: str) -> Record:
    async with database.transaction(user_id) as tx:
        return await task_repository.stats(tx, user_id)
