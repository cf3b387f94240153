"""Queries on `tasks`. Every one names the user as well: row-level security is the second lock.

Statements are built with SQLAlchemy Core over the SQLModel table and compiled once
(`database.Query`); a request only binds its values.
"""

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple
from uuid import UUID

from asyncpg import Record
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Date,
    DateTime,
    Integer,
    Select,
    Text,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    union_all,
    update,
)

from tasks_api.database import Query, Transaction
from tasks_api.models.counts import TaskDueCount, TaskTagCount
from tasks_api.models.sync import COUNTERS, TaskSync
from tasks_api.models.task import Priority, Task
from tasks_api.schemas.task_query import SortOrder, TaskListQuery, TaskSort, TaskStatus

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


def _counter_sum(*names: str) -> ColumnElement[int]:
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
        _counter_sum(*_OPEN, *_DONE).label("total"),
        _counter_sum(*_DONE).label("completed"),
        _counter_sum(*_OPEN).label("pending"),
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


# Where a page ended: the index of its sort segment, and the compared values then the id.
Position = tuple[int, tuple[Any, ...]]


@dataclass(frozen=True)
class Page:
    tasks: list[dict[str, Any]]
    total: int
    # The last task's position when more tasks follow, else None.
    next_position: Position | None
    # The user's sync position in the snapshot the page was read in (specs/sync.md).
    sync_seq: int


def _same(value: ColumnElement[Any]) -> ColumnElement[Any]:
    return value


@dataclass(frozen=True)
class _Segment:
    """A run of the sorted list that one index range scan serves, in keyset order.

    Under row-level security only leakproof operators (those of timestamptz, uuid, text,
    bool) may bound an index scan; enum comparisons and lower() are not, nor is COALESCE.
    So a sort with NULLs or an enum in its key is cut into segments (dated then undated;
    high, medium, low), each one ordered by plain columns.
    """

    where: ColumnElement[bool] | None
    # ORDER BY before id, exactly as the segment's index spells it.
    order: tuple[ColumnElement[Any], ...] = ()
    # What the keyset compares before id; `key` maps a value to its sort key.
    compared: tuple[Column[Any], ...] = ()
    key: Callable[[ColumnElement[Any]], ColumnElement[Any]] = _same
    # The compared values are unique per user (position): no id after them, so the keyset
    # is exactly the unique index's (ties on id cannot happen).
    unique: bool = False
    # The row's side of the keyset when it is not key(compared): a column that holds it.
    stored: tuple[Column[Any], ...] | None = None

    def row_keys(self) -> tuple[ColumnElement[Any], ...]:
        return self.stored if self.stored is not None else tuple(map(self.key, self.compared))


class _Shape(NamedTuple):
    """What decides the text of a list statement; its values are bound per request."""

    sort: TaskSort
    descending: bool
    status: TaskStatus
    priority: Priority | None
    tags: int  # distinct tags wanted: 0, 1 or 2 (= more than one)
    q: bool
    due_before: bool
    due_after: bool
    updated_since: bool


def _shape(query: TaskListQuery) -> _Shape:
    return _Shape(
        query.sort,
        query.effective_order is SortOrder.desc,
        query.status,
        query.priority,
        min(len(set(query.tag)), 2),
        query.q is not None,
        query.due_before is not None,
        query.due_after is not None,
        query.updated_since is not None,
    )


def _segments(shape: _Shape) -> list[_Segment]:
    if shape.sort is TaskSort.due_date:
        dated = _Segment(c.due_at.is_not(None), (c.due_at,), (c.due_at,))
        # All NULL here: due_at stays in the ORDER BY only so that it matches the index.
        undated = _Segment(c.due_at.is_(None), (c.due_at,))
        # Undated tasks come last in both orders, unless a due filter rules them out.
        return [dated] if shape.due_before or shape.due_after else [dated, undated]
    if shape.sort is TaskSort.priority:
        ranked = list(Priority)  # declared low to high
        if shape.descending:
            ranked.reverse()
        return [_Segment(c.priority == p) for p in ranked if shape.priority in (None, p)]
    if shape.sort is TaskSort.title:
        # The cursor carries the title; the row side is title_key (= lower(title), stored):
        # lower() of a column is not leakproof and could not bound the index scan under
        # row-level security, a plain text comparison can (specs/list-query-plans.md).
        return [_Segment(None, (c.title_key,), (c.title,), func.lower, stored=(c.title_key,))]
    if shape.sort is TaskSort.position:
        # uq_tasks_user_position: text COLLATE "C", whose comparisons are leakproof.
        return [_Segment(None, (c.position,), (c.position,), unique=True)]
    column = c.updated_at if shape.sort is TaskSort.updated else c.created_at
    return [_Segment(None, (column,), (column,))]


def parse_position(query: TaskListQuery, segment: int, values: list[Any]) -> Position:
    """A position from its JSON form, typed for the query's sort; ValueError if it is not one."""
    segments = _segments(_shape(query))
    if not 0 <= segment < len(segments):
        raise ValueError("no such segment")
    compared = segments[segment].compared
    if len(values) != len(compared) + 1:
        raise ValueError("wrong number of values")
    *keys, last_id = values
    return segment, (*map(_from_json, keys, compared), UUID(last_id))


def _from_json(value: Any, column: Column[Any]) -> Any:
    if isinstance(column.type, DateTime):
        return datetime.fromisoformat(value)
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filters(shape: _Shape) -> list[ColumnElement[bool]]:
    clauses = [c.user_id == bindparam("user_id")]
    if shape.status is TaskStatus.pending:
        clauses.append(c.is_completed.is_(False))
    elif shape.status is TaskStatus.completed:
        clauses.append(c.is_completed.is_(True))
    if shape.priority is not None:
        clauses.append(c.priority == bindparam("priority", type_=c.priority.type))
    if shape.tags:
        wanted = bindparam("tags", type_=ARRAY(Text))
        clauses.append(c.tags.op("@>", is_comparison=True)(wanted))
    if shape.q:
        pattern = bindparam("q", type_=Text)
        clauses.append(
            or_(c.title.ilike(pattern, escape="\\"), c.description.ilike(pattern, escape="\\"))
        )
    if shape.due_before:
        clauses.append(c.due_at < bindparam("due_before", type_=c.due_at.type))
    if shape.due_after:
        clauses.append(c.due_at > bindparam("due_after", type_=c.due_at.type))
    if shape.updated_since:
        clauses.append(c.updated_at >= bindparam("updated_since", type_=c.updated_at.type))
    return clauses


def _branch(
    index: int,
    segment: _Segment,
    filters: list[ColumnElement[bool]],
    descending: bool,
    after: bool,
    fetch: ColumnElement[int],
) -> Select[Any]:
    """One segment's rows after the bound position (all of them without), at most `fetch`."""
    statement = select(*COLUMNS, literal_column(str(index)).label("segment")).where(*filters)
    if segment.where is not None:
        statement = statement.where(segment.where)
    tie = () if segment.unique else (c.id,)
    if after:
        row = tuple_(*segment.row_keys(), *tie)
        bound = tuple_(
            *(
                segment.key(bindparam(f"after_{i}", type_=column.type))
                for i, column in enumerate(segment.compared)
            ),
            *(bindparam("after_id", type_=c.id.type) for _ in tie),
        )
        statement = statement.where(row < bound if descending else row > bound)
    order = (*segment.order, *tie)
    return statement.order_by(*_directed(order, descending)).limit(fetch)


def _directed(keys: Sequence[ColumnElement[Any]], descending: bool) -> list[ColumnElement[Any]]:
    return [key.desc() for key in keys] if descending else list(keys)


def _outer_order(segment: _Segment, page: Any) -> list[ColumnElement[Any]]:
    """The segment's ORDER BY before id, on the page's columns."""
    if segment.compared:
        return [segment.key(page.c[column.name]) for column in segment.compared]
    return [page.c[expression.name] for expression in segment.order]


def _counted_total(shape: _Shape) -> ColumnElement[int] | None:
    """`total` from the user's counts, when the filters are status, priority or one tag.

    The counts (task_sync.open_*/done_*, task_tag_counts) are moved by the write triggers in
    the write's own transaction, so these totals cost the same at 10 and 100,000 tasks;
    other filters are counted (specs/list-query-plans.md, "Scale").
    """
    if shape.q or shape.due_before or shape.due_after or shape.updated_since:
        return None
    states = {TaskStatus.pending: (False,), TaskStatus.completed: (True,)}
    completed = states.get(shape.status, (False, True))
    if shape.tags == 1 and shape.priority is None:
        counted = [tag_counts.c.done if done else tag_counts.c.open for done in completed]
        one_tag = bindparam("one_tag", type_=Text)
        return (
            select(func.coalesce(func.max(sum(counted[1:], counted[0])), 0))
            .where(tag_counts.c.user_id == bindparam("user_id"), tag_counts.c.tag == one_tag)
            .scalar_subquery()
        )
    if shape.tags:
        return None
    return _counter_sum(
        *(
            COUNTERS[(done, priority)]
            for done in completed
            for priority in Priority
            if shape.priority in (None, priority)
        )
    )


@lru_cache(maxsize=1024)
def _list_query(shape: _Shape, first: int, after: bool) -> Query:
    """The page statement, per shape: the page, its total and the sync position in one.

    Driven by the user's task_sync row (an aggregate, so one row even for a user who has
    none: no tasks, position 0) with the page joined LATERAL: an empty page still returns
    that row, its task columns NULL, so no page ever needs a second statement.
    """
    segments = _segments(shape)
    filters = _filters(shape)
    fetch = bindparam("fetch", type_=Integer)  # one parameter for every LIMIT
    branches = [
        _branch(i, segments[i], filters, shape.descending, after and i == first, fetch)
        for i in range(first, len(segments))
    ]
    total = _counted_total(shape)
    if total is None:
        counted = select(func.count()).select_from(tasks).where(*filters).correlate(None)
        total = counted.scalar_subquery()
    # Read in the same statement, so in the same snapshot as the page (specs/sync.md).
    sync = (
        select(func.coalesce(func.max(task_sync.c.seq), 0).label("sync_seq"), total.label("total"))
        .where(task_sync.c.user_id == bindparam("user_id"))
        .subquery("sync")
    )
    # Each branch is one ordered index scan; the sort on top puts the segments in order
    # (UNION ALL alone promises none) and handles at most segments x (limit + 1) rows.
    page = (branches[0] if len(branches) == 1 else union_all(*branches)).subquery().lateral("page")
    order = _outer_order(segments[first], page)
    statement = (
        select(
            *(page.c[name] for name in COLUMN_NAMES), page.c.segment, sync.c.total, sync.c.sync_seq
        )
        .select_from(sync.outerjoin(page, true()))
        .order_by(page.c.segment, *_directed([*order, page.c.id], shape.descending))
    )
    if len(branches) > 1:
        statement = statement.limit(fetch)
    return Query(statement)


async def list_page(
    session: Transaction, user_id: str, query: TaskListQuery, *, after: Position | None
) -> Page:
    """One keyset page after `after`, and the count of every task the filters match.

    One round trip: the total comes from the user's counters or rides along as a scalar
    subquery (an InitPlan, run once), and one row more than the page says whether another
    page follows.
    """
    shape = _shape(query)
    first, start = after if after is not None else (0, ())
    tags = sorted(set(query.tag))
    params: dict[str, Any] = {
        "user_id": user_id,
        "fetch": query.limit + 1,
        "priority": query.priority,
        "tags": tags or None,
        "one_tag": tags[0] if tags else None,
        "q": _like_pattern(query.q) if query.q is not None else None,
        "due_before": query.due_before,
        "due_after": query.due_after,
        "updated_since": query.updated_since,
    }
    if start:
        *values, params["after_id"] = start
        params.update({f"after_{i}": value for i, value in enumerate(values)})
    rows = await session.fetch(_list_query(shape, first, after is not None), **params)
    # Never empty: an empty page is one row of NULL task columns with the total and position.
    count, sync_seq = rows[0]["total"], rows[0]["sync_seq"]
    if rows[0]["id"] is None:
        rows = []
    next_position = None
    if len(rows) > query.limit:
        segments = _segments(shape)
        last = rows[query.limit - 1]
        compared = segments[last["segment"]].compared
        position = (*(last[column.name] for column in compared), last["id"])
        next_position = (last["segment"], position)
    # The page statement selects COLUMNS first, in order: zip stops before its extra columns
    # (a dict built by name costs a lookup per column and row).
    page = [dict(zip(COLUMN_NAMES, row, strict=False)) for row in rows[: query.limit]]
    return Page(page, count, next_position, sync_seq)
