"""The keyed create as one statement: claim the key, insert the task, store its snapshot.

Why one statement, and why each part is there, is in specs/idempotency.md.
"""

from typing import Any

from asyncpg import Record
from sqlalchemy import (
    CTE,
    BigInteger,
    Boolean,
    ColumnElement,
    LargeBinary,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert

from tasks_api.database import Query, Transaction
from tasks_api.models.idempotency_key import KEY_RETENTION, IdempotencyKey
from tasks_api.models.task import Task
from tasks_api.repositories.task_repository import INSERTED

keys = IdempotencyKey.__table__
tasks = Task.__table__
# Expired keys removed per keyed create: bounded work per request, and still more keys
# removed than added, so a user's backlog shrinks.
PURGE_BATCH = 100


def _typed(name: str) -> Any:
    # INSERT ... SELECT does not type its parameters from the target columns, as VALUES does.
    column_type = tasks.c[name].type
    return cast(bindparam(name, type_=column_type), column_type)


def store_key(row: Insert, expired: ColumnElement[bool]) -> CTE:
    """The key's row as a CTE returning the key when stored. An expired key of the same name
    is taken over; a live one that committed after the statement's snapshot makes the upsert
    store nothing (no row returned): the caller then rolls back."""
    return (
        row.on_conflict_do_update(
            index_elements=[keys.c.user_id, keys.c.key],
            set_={
                "request_hash": row.excluded.request_hash,
                "task": row.excluded.task,
                "created_at": func.now(),
            },
            where=expired,
        )
        .returning(keys.c.key)
        .cte("stored")
    )


def purge_expired_keys(user_id: Any, key: Any, expired: ColumnElement[bool]) -> CTE:
    """A bounded batch of the user's expired keys, deleted. RLS shows only this user's keys,
    so cleanup is per user. SKIP LOCKED: two writes of one user never wait on (or deadlock
    over) each other's purge."""
    return (
        delete(keys)
        .where(
            keys.c.user_id == user_id,
            keys.c.key.in_(
                select(keys.c.key)
                .where(keys.c.user_id == user_id, keys.c.key != key, expired)
                .limit(PURGE_BATCH)
                .with_for_update(skip_locked=True)
            ),
        )
        .returning(keys.c.key)
        .cte("purged")
    )


def _build() -> Query:
    """One statement: claim the key, insert the task, store its snapshot, purge.

    Returns `acquired` (the key's advisory lock), `stored_hash` and `snapshot` (a live key
    finished earlier), `key_stored` and the new task's columns. The task is inserted only
    under the lock and when no live key is visible.
    """
    user_id = bindparam("user_id", type_=Text)
    key = bindparam("key", type_=Text)
    expired = keys.c.created_at <= func.now() - KEY_RETENTION
    this_key = (keys.c.user_id == user_id, keys.c.key == key)

    # Never waits: an in-flight request with this key holds the lock until it ends.
    lock = (
        select(
            func.pg_try_advisory_xact_lock(bindparam("lock_id", type_=BigInteger)).label("acquired")
        )
        .cte("key_lock")
        .prefix_with("MATERIALIZED")
    )
    existing = select(keys.c.request_hash, keys.c.task).where(*this_key, ~expired).cte("existing")
    completed = bindparam("is_completed", type_=Boolean)
    created = (
        insert(tasks)
        .from_select(
            [*INSERTED, "completed_at"],
            select(
                *(_typed(name) for name in INSERTED),
                # The transaction's now(), as in the plain insert.
                case((cast(completed, Boolean), func.now())),
            ).where(and_(select(lock.c.acquired).scalar_subquery(), ~exists(existing.select()))),
            # Server defaults fill the rest (version 1, timestamps), as in the plain insert.
            include_defaults=False,
        )
        .returning(*tasks.c)
        .cte("created")
    )
    row = pg_insert(keys).from_select(
        ["user_id", "key", "request_hash", "task"],
        select(
            created.c.user_id,
            cast(key, Text),
            cast(bindparam("request_hash", type_=LargeBinary), LargeBinary),
            func.to_jsonb(created.table_valued()),
        ),
    )
    stored = store_key(row, expired)
    purge = purge_expired_keys(user_id, key, expired)
    statement = (
        select(
            lock.c.acquired,
            existing.c.request_hash.label("stored_hash"),
            existing.c.task.label("snapshot"),
            stored.c.key.is_not(None).label("key_stored"),
            *created.c,
        )
        .select_from(
            lock.outerjoin(existing, true()).outerjoin(created, true()).outerjoin(stored, true())
        )
        .add_cte(purge)
    )
    return Query(statement)


_CREATE_ONCE = _build()
_TRY_LOCK = Query(select(func.pg_try_advisory_xact_lock(bindparam("lock_id", type_=BigInteger))))


async def try_lock(session: Transaction, lock_id: int) -> bool:
    """The key's advisory lock, never waiting: False while a request with the key runs.

    Its own statement, before the insert: the insert's trigger first waits for the user's
    write lock (migration 0004), which the in-flight request holds until it ends, and a
    request with a key in flight must get its 409 at once, not a replay seconds later.
    """
    row = await session.fetchrow(_TRY_LOCK, lock_id=lock_id)
    return bool(row is not None and row[0])


async def create_task_once(
    session: Transaction,
    *,
    user_id: str,
    key: str,
    request_hash: bytes,
    lock_id: int,
    values: dict[str, Any],
) -> Record:
    """One round trip; the caller must not commit a task whose key was not stored
    (`key_stored` false)."""
    row = await session.fetchrow(
        _CREATE_ONCE, key=key, request_hash=request_hash, lock_id=lock_id, **values
    )
    assert row is not None
    return row
