"""Queries of the manual order: a move's neighbours, a rebalance of a user's positions.

Both run under the user's write lock (database.begin_script(lock_user=True)): the
positions they read cannot change before the transaction writes.
"""

from typing import Any
from uuid import UUID

from asyncpg import Record
from sqlalchemy import (
    ARRAY,
    Text,
    Uuid,
    and_,
    bindparam,
    func,
    literal_column,
    select,
    update,
)

from tasks_api.database import Query, Transaction
from tasks_api.repositories.task_repository import COLUMNS, tasks

c = tasks.c
_user = c.user_id == bindparam("user_id")
_others = (_user, c.id != bindparam("task_id"))
# The key the task goes after: NULL when `after` names no task of the user.
_anchor = select(c.position).where(_user, c.id == bindparam("after", type_=Uuid)).scalar_subquery()


def _neighbours(following: Any) -> Query:
    """The task itself (all NULL when missing), the anchor's key and the key that follows.

    One round trip; each key is one probe of uq_tasks_user_position (min() on the index).
    The task is joined to a one-row relation so that a missing task still reports the
    anchor: `after` naming no task is a 400 even when the task is missing too.
    """
    one = select(literal_column("1").label("one")).subquery("one")
    following = following.correlate(None).scalar_subquery()
    anchor = _anchor.correlate(None)
    statement = select(
        anchor.label("after_position"), following.label("next_position"), *COLUMNS
    ).select_from(one.outerjoin(tasks, and_(_user, c.id == bindparam("task_id"))))
    return Query(statement)


# First: before the first of the other tasks. After X: before the first task beyond X.
_FIRST = _neighbours(select(func.min(c.position)).where(*_others))
_AFTER = _neighbours(select(func.min(c.position)).where(*_others, c.position > _anchor))

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


async def neighbours(
    session: Transaction, user_id: str, task_id: UUID, after: UUID | None
) -> Record:
    query = _FIRST if after is None else _AFTER
    row = await session.fetchrow(query, user_id=user_id, task_id=task_id, after=after)
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
