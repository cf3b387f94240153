"""The change feed: a user's tasks and tombstones after a sync position, in position order.

One statement reads the changes and the user's position row together, so the page, the
position it is complete up to and the purge horizon come from one snapshot (specs/sync.md).
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Text,
    bindparam,
    cast,
    false,
    func,
    null,
    select,
    true,
    union_all,
)

from tasks_api.database import Query, Transaction
from tasks_api.models.sync import TaskSync, TaskTombstone
from tasks_api.repositories.task_repository import COLUMN_NAMES, COLUMNS, tasks

task_sync = TaskSync.__table__
tombstones = TaskTombstone.__table__

_user = bindparam("user_id", type_=Text)
_since = bindparam("since", type_=BigInteger)
_fetch = bindparam("fetch", type_=Integer)  # one parameter for every LIMIT

# Each branch is one index range scan in position order: int8 comparisons are leakproof,
# so under row-level security they may bound the scan (specs/list-query-plans.md).
_upserts = (
    select(
        tasks.c.sync_seq.label("seq"),
        false().label("deleted"),
        *COLUMNS,
        cast(null(), tombstones.c.deleted_at.type).label("deleted_at"),
    )
    .where(tasks.c.user_id == _user, tasks.c.sync_seq > _since)
    .order_by(tasks.c.sync_seq)
    .limit(_fetch)
)
_deletes = (
    select(
        tombstones.c.seq,
        true().label("deleted"),
        *(
            tombstones.c.task_id.label("id") if column.name == "id" else cast(null(), column.type)
            for column in COLUMNS
        ),
        tombstones.c.deleted_at,
    )
    .where(tombstones.c.user_id == _user, tombstones.c.seq > _since)
    .order_by(tombstones.c.seq)
    .limit(_fetch)
)
_changes = union_all(_upserts, _deletes).subquery("changes")
_changes_in_order = select(_changes).order_by(_changes.c.seq).limit(_fetch).subquery("change")
# A user who never wrote has no row: position 0, nothing purged.
_position = select(
    func.coalesce(func.max(task_sync.c.seq), 0).label("sync_position"),
    func.coalesce(func.max(task_sync.c.purged_seq), 0).label("sync_purged"),
).where(task_sync.c.user_id == _user)
_position_row = _position.subquery("sync")
# The position row, with each change beside it (one row of NULLs when there is none).
_FEED = Query(
    select(_position_row, _changes_in_order)
    .select_from(_position_row.outerjoin(_changes_in_order, true()))
    .order_by(_changes_in_order.c.seq)
)
_POSITION = Query(_position)


@dataclass(frozen=True)
class Changes:
    # The change objects, in position order, each with its own position.
    items: list[tuple[int, dict[str, Any]]]
    # The user's position in the snapshot read: every change up to it is committed.
    position: int
    # Tombstones up to this position are purged.
    purged: int


# Where the task's columns sit in a feed row: after the position row and (seq, deleted).
_TASK_START = 4


def _change(row: Any) -> dict[str, Any]:
    if row["deleted"]:
        return {"type": "delete", "id": row["id"], "deleted_at": row["deleted_at"]}
    # By place, as the list does: a dict built by name costs a lookup per column.
    task = dict(zip(COLUMN_NAMES, row[_TASK_START:], strict=False))
    return {"type": "upsert", "task": task}


async def read(session: Transaction, user_id: str, since: int, fetch: int) -> Changes:
    """Up to `fetch` changes after `since`, with the position and purge horizon."""
    rows = await session.fetch(_FEED, user_id=user_id, since=since, fetch=fetch)
    first = rows[0]
    items = [(row["seq"], _change(row)) for row in rows if row["seq"] is not None]
    return Changes(items, first["sync_position"], first["sync_purged"])


async def position(session: Transaction, user_id: str) -> int:
    row = await session.fetchrow(_POSITION, user_id=user_id)
    assert row is not None
    return int(row["sync_position"])
