"""The unit of work of each single request: one transaction, committed before it returns.

The rules of each write are in task_operations, shared with the batch."""

from collections.abc import Collection, Mapping
from typing import Any
from uuid import UUID

from asyncpg import Record

from tasks_api.database import Database
from tasks_api.errors import NotFound, ValidationFailed
from tasks_api.repositories import list_repository, task_repository
from tasks_api.schemas.task import TaskUpdate
from tasks_api.schemas.task_query import TaskListQuery
from tasks_api.services import sync_token, task_operations
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
            after = list_repository.parse_position(query, segment, values)
        except (ValueError, TypeError) as error:
            raise ValidationFailed.field("cursor", _BAD_CURSOR) from error
    async with database.transaction(user_id) as tx:
        page = await list_repository.list_page(tx, user_id, query, after=after)
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


async def update(
    database: Database,
    user_id: str,
    task_id: UUID,
    payload: TaskUpdate,
    *,
    versions: Collection[int] | None,
) -> Record:
    async with database.transaction(user_id) as tx:
        return await task_operations.update(tx, user_id, task_id, payload, versions=versions)


async def set_completed(
    database: Database,
    user_id: str,
    task_id: UUID,
    completed: bool,
    *,
    versions: Collection[int] | None,
) -> Record:
    async with database.transaction(user_id) as tx:
        return await task_operations.set_completed(
            tx, user_id, task_id, completed, versions=versions
        )


async def delete(
    database: Database, user_id: str, task_id: UUID, *, versions: Collection[int] | None
) -> None:
    async with database.transaction(user_id) as tx:
        await task_operations.delete(tx, user_id, task_id, versions=versions)


async def move(
    database: Database,
    user_id: str,
    task_id: UUID,
    after: UUID | None,
    *,
    versions: Collection[int] | None,
) -> Mapping[str, Any]:
    # No lock with BEGIN: the move's one statement takes the user's lock before it reads.
    async with database.transaction(user_id) as tx:
        return await task_operations.move(tx, user_id, task_id, after, versions=versions)


async def clear_completed(database: Database, user_id: str) -> int:
    async with database.transaction(user_id) as tx:
        return await task_repository.delete_completed(tx, user_id)


async def stats(database: Database, user_id: str) -> Record:
    async with database.transaction(user_id) as tx:
        return await task_repository.stats(tx, user_id)
