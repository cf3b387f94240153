"""Queries on `tasks`. Every one names the user as well: row-level security is the second lock.

Statements are built with SQLAlchemy Core over the SQLModel table and compiled once
(`database.Query`); a request only binds its values. The list page is list_repository's.
"""

from collections.abc import Collection
from functools import lru_cache
from typing import Any
from uuid import UUID

from asyncpg import Record
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    Integer,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from tasks_api.database import Query, Transaction
from tasks_api.models.counts import TaskDueCount, TaskTagCount
from tasks_api.models.sync import COUNTERS, TaskSync
from tasks_api.models.task import Priority, Task

tasks = Task.__table__
c = tasks.c
task_sync = TaskSync.__table__
tag_counts = TaskTagCount.__table__
due_counts = TaskDueCount.__table__
# What a task reads as; sync_seq (the feed's) and title_key (the title sort's) are bookkeeping.
COLUMNS = tuple(column for column in c if column.name not in ("sync_seq", "title_key"))
COLUMN_NAMES = tuple(column.name for column in COLUMNS)
# Fields a client writes; the rest (id, user, timestamps, version) the server sets.
WRITABLE = ("title", "description", "priority", "due_at", "tags", "is_completed")
# What a new task's INSERT binds (task_operations.new_task_values); the server fills the rest.
INSERTED = ("id", "user_id", *WRITABLE)

_THIS_TASK = (c.user_id == bindparam("user_id"), c.id == bindparam("task_id"))
# If-Match, checked in the write itself: NULL means no precondition.
_VERSION_ACCEPTED = or_(
    bindparam("versions", type_=ARRAY(Integer)).is_(None),
    c.version == func.any(bindparam("versions", type_=ARRAY(Integer))),
)
_completed = bindparam("is_completed", type_=Boolean)

_GET = Query(select(*COLUMNS).where(*_THIS_TASK))
_CREATE = Query(
    insert(tasks)
    .values(
        {
            **{name: bindparam(name, type_=c[name].type) for name in INSERTED},
            # The transaction's now(): a task created completed has completed_at == created_at.
            "completed_at": case((_completed, func.now())),
        }
    )
    .returning(*COLUMNS)
)
_DELETE = Query(delete(tasks).where(*_THIS_TASK, _VERSION_ACCEPTED).returning(c.id))
# Idempotent: a task already in the wanted state matches nothing and keeps its version.
_SET_COMPLETED = Query(
    update(tasks)
    .where(*_THIS_TASK, _VERSION_ACCEPTED, c.is_completed.is_distinct_from(_completed))
    .values(
        is_completed=_completed,
        completed_at=case((_completed, func.now())),
        version=c.version + 1,
        updated_at=func.now(),
    )
    .returning(*COLUMNS)
)
# Clear completed: the delete and its count in one statement.
_deleted = delete(tasks).where(c.user_id == bindparam("user_id"), c.is_completed).returning(c.id)
_DELETE_COMPLETED = Query(select(func.count()).select_from(_deleted.cte("deleted")))
_pending = c.is_completed.is_(False)


def counter_sum(*names: str) -> ColumnElement[int]:
    """The sum of the user's counters `names`; 0 for a user with no task_sync row.

    In an aggregate (max of the one row) so that the statement returns a row either way;
    max keeps bigint, where sum would turn it into numeric.
    """
    added = sum((task_sync.c[name] for name in names[1:]), task_sync.c[names[0]])
    return func.coalesce(func.max(added), 0)


_OPEN = [COUNTERS[(False, p)] for p in Priority]
_DONE = [COUNTERS[(True, p)] for p in Priority]
# Totals from the counters. Overdue moves with the clock: the pending tasks due on past UTC
# days (task_due_counts, one row per day) plus today's that are due before now, an
# index-only range of ix_tasks_user_open_due. An aggregate: one row even for a user with no
# task_sync row.
_past_days = (
    select(func.coalesce(func.sum(due_counts.c.open), 0))
    .where(
        due_counts.c.user_id == bindparam("user_id"),
        due_counts.c.due_day < cast(func.timezone("UTC", func.now()), Date),
    )
    .scalar_subquery()
)
_due_today = (
    select(func.count())
    .select_from(tasks)
    .where(
        c.user_id == bindparam("user_id"),
        ~c.is_completed,
        c.due_at >= func.date_trunc("day", func.now(), "UTC"),
        c.due_at < func.now(),
    )
    .scalar_subquery()
)
_STATS = Query(
    select(
        counter_sum(*_OPEN, *_DONE).label("total"),
        counter_sum(*_DONE).label("completed"),
        counter_sum(*_OPEN).label("pending"),
        cast(_past_days + _due_today, BigInteger).label("overdue"),
    ).where(task_sync.c.user_id == bindparam("user_id"))
)


@lru_cache(maxsize=64)
def _update_query(fields: frozenset[str]) -> Query:
    """UPDATE of exactly `fields`, plus the version and updated_at; one per field set."""
    values: dict[str, Any] = {name: bindparam(name, type_=c[name].type) for name in fields}
    if "is_completed" in fields:
        # Kept when an already completed task stays completed, set when it becomes so.
        values["completed_at"] = case((_completed, func.coalesce(c.completed_at, func.now())))
    statement = (
        update(tasks)
        .where(*_THIS_TASK, _VERSION_ACCEPTED)
        .values({**values, "version": c.version + 1, "updated_at": func.now()})
        .returning(*COLUMNS)
    )
    return Query(statement)


def _versions(versions: Collection[int] | None) -> list[int] | None:
    return None if versions is None else list(versions)


async def get(session: Transaction, user_id: str, task_id: UUID) -> Record | None:
    return await session.fetchrow(_GET, user_id=user_id, task_id=task_id)


async def create(session: Transaction, values: dict[str, Any]) -> Record:
    row = await session.fetchrow(_CREATE, **values)
    assert row is not None
    return row


async def update_one(
    session: Transaction,
    user_id: str,
    task_id: UUID,
    values: dict[str, Any],
    *,
    versions: Collection[int] | None,
) -> Record | None:
    """Apply `values` and bump the version in one statement; None when no row qualified.

    `versions` holds the versions an If-Match accepts, so the check and the write are
    one atomic statement: a concurrent writer makes this match nothing, never both.
    """
    query = _update_query(frozenset(values))
    return await session.fetchrow(
        query, user_id=user_id, task_id=task_id, versions=_versions(versions), **values
    )


async def set_completed(
    session: Transaction,
    user_id: str,
    task_id: UUID,
    completed: bool,
    *,
    versions: Collection[int] | None,
) -> Record | None:
    """None when no row changed: missing, If-Match stale, or already in that state."""
    return await session.fetchrow(
        _SET_COMPLETED,
        user_id=user_id,
        task_id=task_id,
        is_completed=completed,
        versions=_versions(versions),
    )


async def delete_one(
    session: Transaction, user_id: str, task_id: UUID, *, versions: Collection[int] | None
) -> bool:
    row = await session.fetchrow(
        _DELETE, user_id=user_id, task_id=task_id, versions=_versions(versions)
    )
    return row is not None


async def delete_completed(session: Transaction, user_id: str) -> int:
    row = await session.fetchrow(_DELETE_COMPLETED, user_id=user_id)
    assert row is not None
    return int(row[0])


async def stats(session: Transaction, user_id: str) -> Record:
    row = await session.fetchrow(_STATS, user_id=user_id)
    assert row is not None
    return row
