"""Business rules of tasks: ids, completion, optimistic concurrency."""

from collections.abc import Collection, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping, case, func
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from tasks_api.errors import NotFound, PreconditionFailed
from tasks_api.models.task import Task
from tasks_api.repositories import task_repository
from tasks_api.schemas.task import TaskCreate, TaskUpdate

_completed_at = Task.__table__.c.completed_at
_is_completed = Task.__table__.c.is_completed


async def get(session: AsyncSession, user_id: str, task_id: UUID) -> RowMapping:
    task = await task_repository.get(session, user_id, task_id)
    if task is None:
        raise NotFound
    return task


async def list_tasks(session: AsyncSession, user_id: str, limit: int) -> Sequence[RowMapping]:
    return await task_repository.list_page(session, user_id, limit)


async def create(session: AsyncSession, user_id: str, payload: TaskCreate) -> RowMapping:
    values = payload.model_dump()
    values |= {
        "id": uuid7(),
        "user_id": user_id,
        # The transaction's now(), so a task created completed has completed_at == created_at.
        "completed_at": func.now() if payload.is_completed else None,
    }
    return await task_repository.create(session, values)


async def update(
    session: AsyncSession,
    user_id: str,
    task_id: UUID,
    payload: TaskUpdate,
    *,
    versions: Collection[int] | None,
) -> RowMapping:
    values: dict[str, Any] = payload.changes()
    if "is_completed" in values:
        # completed_at is kept when an already completed task stays completed.
        values["completed_at"] = (
            case((_is_completed, _completed_at), else_=func.now())
            if values["is_completed"]
            else None
        )
    task = await task_repository.update_one(session, user_id, task_id, values, versions=versions)
    if task is None:
        raise await _why_not_written(session, user_id, task_id)
    return task


async def set_completed(
    session: AsyncSession,
    user_id: str,
    task_id: UUID,
    completed: bool,
    *,
    versions: Collection[int] | None,
) -> RowMapping:
    """Idempotent: a task already in the wanted state is returned unchanged (same version)."""
    values = {"is_completed": completed, "completed_at": func.now() if completed else None}
    task = await task_repository.update_one(
        session,
        user_id,
        task_id,
        values,
        versions=versions,
        only_if=(_is_completed.is_not(completed),),
    )
    if task is not None:
        return task
    current = await task_repository.get(session, user_id, task_id)
    if current is None:
        raise NotFound
    if versions is not None and current["version"] not in versions:
        raise PreconditionFailed
    return current


async def delete(
    session: AsyncSession, user_id: str, task_id: UUID, *, versions: Collection[int] | None
) -> None:
    if not await task_repository.delete_one(session, user_id, task_id, versions=versions):
        raise await _why_not_written(session, user_id, task_id)


async def _why_not_written(session: AsyncSession, user_id: str, task_id: UUID) -> Exception:
    """A conditional write matched no row: the task is gone (404) or If-Match is stale (412)."""
    if await task_repository.get(session, user_id, task_id) is None:
        return NotFound()
    return PreconditionFailed()


async def stats(session: AsyncSession, user_id: str) -> RowMapping:
    return await task_repository.stats(session, user_id)
