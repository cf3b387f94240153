"""Queries of the manual order: a move (one statement), a rebalance of a user's positions.

The move is the database function tasks_move (migration 0004), which takes the user's write
lock before it reads the neighbours; a rebalance follows it in the same transaction, so
the positions it reads cannot change before the transaction writes.
"""

from collections.abc import Collection
from uuid import UUID

from asyncpg import Record
from sqlalchemy import ARRAY, Integer, Text, Uuid, bindparam, func, literal_column, select, update

from tasks_api.database import Query, Transaction
from tasks_api.repositories.task_repository import COLUMN_NAMES, COLUMNS, tasks

c = tasks.c
_user = c.user_id == bindparam("user_id")


def _move() -> Query:
    """tasks_move's outcome and its task's columns, those of task_repository's statements."""
    moved = (
        func.tasks_move(
            bindparam("user_id", type_=Text),
            bindparam("task_id", type_=Uuid),
            bindparam("after", type_=Uuid),
            bindparam("versions", type_=ARRAY(Integer)),
            bindparam("longest", type_=Integer),
        )
        .table_valued("outcome", "task")
        .render_derived(name="m")
    )
    fields = (literal_column(f"(m.task).{name}").label(name) for name in COLUMN_NAMES)
    return Query(select(moved.c.outcome, *fields).select_from(moved))


_MOVE = _move()

_ORDER = Query(select(c.id, c.position).where(_user).order_by(c.position))


def _rebalance() -> Query:
    keyed = (
        func.unnest(bindparam("ids", type_=ARRAY(Uuid)), bindparam("positions", type_=ARRAY(Text)))
        .table_valued("id", "position", name="keyed")
        .render_derived()
    )
    changed = (
        update(tasks)
        .where(_user, c.id == keyed.c.id)
        .values(position=keyed.c.position, version=c.version + 1, updated_at=func.now())
        .returning(*COLUMNS)
        .cte("changed")
    )
    return Query(select(changed).where(changed.c.id == bindparam("task_id")))


_REBALANCE = _rebalance()


async def move(
    session: Transaction,
    user_id: str,
    task_id: UUID,
    after: UUID | None,
    *,
    versions: Collection[int] | None,
    longest: int,
) -> Record:
    """tasks_move: `outcome` ('after', 'missing', 'stale', 'placed', 'moved', 'rebalance')
    and the task's columns (NULL unless placed, moved or to rebalance)."""
    row = await session.fetchrow(
        _MOVE,
        user_id=user_id,
        task_id=task_id,
        after=after,
        versions=None if versions is None else list(versions),
        longest=longest,
    )
    assert row is not None
    return row


async def order(session: Transaction, user_id: str) -> list[Record]:
    """Every task of the user as (id, position), in the manual order."""
    return await session.fetch(_ORDER, user_id=user_id)


async def rebalance(
    session: Transaction, user_id: str, task_id: UUID, keys: dict[UUID, str]
) -> Record:
    """Give each task of `keys` its new key (version + 1); returns the task `task_id`."""
    row = await session.fetchrow(
        _REBALANCE,
        user_id=user_id,
        task_id=task_id,
        ids=list(keys),
        positions=list(keys.values()),
    )
    assert row is not None
    return row
