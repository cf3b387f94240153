"""The task list: one keyset page, its total and the sync position in one statement.

Every statement names the user as well: row-level security is the second lock. The plans
behind each shape are in specs/list-query-plans.md.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    Text,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    union_all,
)

from tasks_api.database import Query, Transaction
from tasks_api.models.sync import COUNTERS
from tasks_api.models.task import Priority
from tasks_api.repositories.task_repository import (
    COLUMN_NAMES,
    COLUMNS,
    c,
    counter_sum,
    tag_counts,
    task_sync,
    tasks,
)
from tasks_api.schemas.task_query import SortOrder, TaskListQuery, TaskSort, TaskStatus

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
    return counter_sum(
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
