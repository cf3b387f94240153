"""Queries on `tasks`. Every one names the user as well: row-level security is the second lock."""

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    Column,
    ColumnElement,
    DateTime,
    Integer,
    RowMapping,
    Select,
    Text,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from tasks_api.models.task import Priority, Task
from tasks_api.schemas.task_query import SortOrder, TaskListQuery, TaskSort, TaskStatus

tasks = Task.__table__
COLUMNS = tuple(tasks.c)
_COLUMN_NAMES = tuple(column.name for column in COLUMNS)


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


# Where a page ended: the index of its sort segment, and the compared values then the id.
Position = tuple[int, tuple[Any, ...]]


@dataclass(frozen=True)
class Page:
    tasks: list[dict[str, Any]]
    total: int
    # The last task's position when more tasks follow, else None.
    next_position: Position | None


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


def _descending(query: TaskListQuery) -> bool:
    return query.effective_order is SortOrder.desc


def _segments(query: TaskListQuery) -> list[_Segment]:
    c = tasks.c
    if query.sort is TaskSort.due_date:
        dated = _Segment(c.due_at.is_not(None), (c.due_at,), (c.due_at,))
        # All NULL here: due_at stays in the ORDER BY only so that it matches the index.
        undated = _Segment(c.due_at.is_(None), (c.due_at,))
        # Undated tasks come last in both orders, unless a due filter rules them out.
        return [dated] if query.due_before or query.due_after else [dated, undated]
    if query.sort is TaskSort.priority:
        ranked = list(Priority)  # declared low to high
        if _descending(query):
            ranked.reverse()
        return [_Segment(c.priority == p) for p in ranked if query.priority in (None, p)]
    if query.sort is TaskSort.title:
        # lower() is not leakproof: the index orders the scan, but a cursor page filters its
        # way to the position (see specs/list-query-plans.md).
        return [_Segment(None, (func.lower(c.title),), (c.title,), func.lower)]
    column = c.updated_at if query.sort is TaskSort.updated else c.created_at
    return [_Segment(None, (column,), (column,))]


def parse_position(query: TaskListQuery, segment: int, values: list[Any]) -> Position:
    """A position from its JSON form, typed for the query's sort; ValueError if it is not one."""
    segments = _segments(query)
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


def _filters(user_id: str, query: TaskListQuery) -> list[ColumnElement[bool]]:
    c = tasks.c
    clauses = [c.user_id == user_id]
    if query.status is TaskStatus.pending:
        clauses.append(c.is_completed.is_(False))
    elif query.status is TaskStatus.completed:
        clauses.append(c.is_completed.is_(True))
    if query.priority is not None:
        clauses.append(c.priority == query.priority)
    if query.tag:
        wanted = literal(sorted(set(query.tag)), ARRAY(Text))
        clauses.append(c.tags.op("@>", is_comparison=True)(wanted))
    if query.q is not None:
        pattern = bindparam("q", _like_pattern(query.q))
        clauses.append(
            or_(c.title.ilike(pattern, escape="\\"), c.description.ilike(pattern, escape="\\"))
        )
    if query.due_before is not None:
        clauses.append(c.due_at < query.due_before)
    if query.due_after is not None:
        clauses.append(c.due_at > query.due_after)
    if query.updated_since is not None:
        clauses.append(c.updated_at >= query.updated_since)
    return clauses


def _branch(
    index: int,
    segment: _Segment,
    filters: list[ColumnElement[bool]],
    descending: bool,
    after: tuple[Any, ...] | None,
    fetch: ColumnElement[int],
) -> Select[Any]:
    """One segment's rows after `after` (all of them when None), in order, at most `fetch`."""
    statement = select(*COLUMNS, literal_column(str(index)).label("segment")).where(*filters)
    if segment.where is not None:
        statement = statement.where(segment.where)
    if after is not None:
        *values, after_id = after
        row = tuple_(*map(segment.key, segment.compared), tasks.c.id)
        bound = tuple_(
            *(
                segment.key(literal(v, col.type))
                for v, col in zip(values, segment.compared, strict=True)
            ),
            literal(after_id, tasks.c.id.type),
        )
        statement = statement.where(row < bound if descending else row > bound)
    order = (*segment.order, tasks.c.id)
    return statement.order_by(*_directed(order, descending)).limit(fetch)


def _directed(keys: Sequence[ColumnElement[Any]], descending: bool) -> list[ColumnElement[Any]]:
    return [key.desc() for key in keys] if descending else list(keys)


async def list_page(
    session: AsyncSession, user_id: str, query: TaskListQuery, *, after: Position | None
) -> Page:
    """One keyset page after `after`, and the count of every task the filters match.

    One round trip: the count rides along as a scalar subquery (an InitPlan, run once), and
    one row more than the page says whether another page follows.
    """
    descending = _descending(query)
    segments = _segments(query)
    filters = _filters(user_id, query)
    first, start = after if after is not None else (0, None)
    fetch = bindparam("fetch", query.limit + 1, Integer)  # one parameter for every LIMIT
    branches = [
        _branch(i, segments[i], filters, descending, start if i == first else None, fetch)
        for i in range(first, len(segments))
    ]
    counted = select(func.count()).select_from(tasks).where(*filters).correlate(None)
    total = counted.scalar_subquery().label("total")
    if len(branches) == 1:
        statement = branches[0].add_columns(total)
    else:
        # Each branch is one ordered index scan; the sort on top puts the segments in order
        # (UNION ALL alone promises none) and handles at most segments x (limit + 1) rows.
        union = union_all(*branches).subquery("page")
        order = [union.c[key.name] for key in (*segments[first].order, tasks.c.id)]
        statement = (
            select(union, total)
            .order_by(union.c.segment, *_directed(order, descending))
            .limit(fetch)
        )
    rows = (await session.execute(statement)).mappings().all()

    if rows:
        count = rows[0]["total"]
    elif after is None:
        count = 0
    else:
        # Past the last task, no row carried the count along.
        count = (await session.execute(counted)).scalar_one()
    next_position = None
    if len(rows) > query.limit:
        last = rows[query.limit - 1]
        compared = segments[last["segment"]].compared
        values = (*(last[column.name] for column in compared), last["id"])
        next_position = (last["segment"], values)
    page = [{name: row[name] for name in _COLUMN_NAMES} for row in rows[: query.limit]]
    return Page(page, count, next_position)


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
