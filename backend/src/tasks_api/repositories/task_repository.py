"""Queries on `tasks`. Every one names the user as well: row-level security is the second lock."""

from collections.abc import Collection, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, RowMapping, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tasks_api.models.task import Task

tasks = Task.__table__
COLUMNS = tuple(tasks.c)


def _one(user_id: str, task_id: UUID) -> tuple[ColumnElement[bool], ...]:
    return (tasks.c.user_id == user_id, tasks.c.id == task_id)


async def get(session: AsyncSession, user_id: str, task_id: UUID) -> RowMapping | None:
    result = await session.execute(select(*COLUMNS).where(*_one(user_id, task_id)))
    return result.mappings().one_or_none()


async def create(session: AsyncSession, values: dict[str, Any]) -> RowMapping:
    result = await session.execute(insert(tasks).values(values).returning(*COLUMNS))
    return result.mappings().one()


async def update_one(
    session: AsyncSession,
    user_id: str,
    task_id: UUID,
    values: dict[str, Any],
    *,
    versions: Collection[int] | None,
    only_if: Sequence[ColumnElement[bool]] = (),
) -> RowMapping | None:
    """Apply `values` and bump the version in one statement; None when no row qualified.

    `versions` holds the versions an If-Match accepts, so the check and the write are
    one atomic statement: a concurrent writer makes this match nothing, never both.
    """
    statement = (
        update(tasks)
        .where(*_one(user_id, task_id), *only_if)
        .values({**values, "version": tasks.c.version + 1, "updated_at": func.now()})
        .returning(*COLUMNS)
    )
    if versions is not None:
        statement = statement.where(tasks.c.version.in_(versions))
    result = await session.execute(statement)
    return result.mappings().one_or_none()


async def delete_one(
    session: AsyncSession, user_id: str, task_id: UUID, *, versions: Collection[int] | None
) -> bool:
    statement = delete(tasks).where(*_one(user_id, task_id)).returning(tasks.c.id)
    if versions is not None:
        statement = statement.where(tasks.c.version.in_(versions))
    result = await session.execute(statement)
    return result.first() is not None


async def list_page(session: AsyncSession, user_id: str, limit: int) -> Sequence[RowMapping]:
    statement = (
        select(*COLUMNS)
        .where(tasks.c.user_id == user_id)
        .order_by(tasks.c.created_at.desc(), tasks.c.id.desc())
        .limit(limit)
    )
    result = await session.execute(statement)
    return result.mappings().all()


async def stats(session: AsyncSession, user_id: str) -> RowMapping:
    pending = tasks.c.is_completed.is_(False)
    statement = select(
        func.count().label("total"),
        func.count().filter(tasks.c.is_completed).label("completed"),
        func.count().filter(pending).label("pending"),
        func.count().filter(pending, tasks.c.due_at < func.now()).label("overdue"),
    ).where(tasks.c.user_id == user_id)
    result = await session.execute(statement)
    return result.mappings().one()
