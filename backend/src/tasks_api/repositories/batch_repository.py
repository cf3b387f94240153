"""A keyed batch's two statements on `idempotency_keys`: claim the key, store the result.

The key's row holds the batch's answer (`task`: the JSON text of its `data`) and the hash
of its body, as a keyed create's row holds its task (specs/idempotency.md, specs/ordering.md).
"""

from datetime import datetime

from asyncpg import Record
from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    LargeBinary,
    Text,
    and_,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from tasks_api.database import Query, Transaction
from tasks_api.models.idempotency_key import KEY_RETENTION, IdempotencyKey
from tasks_api.repositories.idempotency_repository import purge_expired_keys, store_key
from tasks_api.repositories.task_repository import COLUMN_NAMES

keys = IdempotencyKey.__table__
_user = bindparam("user_id", type_=Text)
_key = bindparam("key", type_=Text)
_expired = keys.c.created_at <= func.now() - KEY_RETENTION


def _claim() -> Query:
    """The key's advisory lock (never waiting), then the user's write lock, then the live
    row of the key if there is one; one round trip.

    The user's lock is taken only with the key's: a request whose key is in flight gets its
    409 at once instead of waiting for the user's other writes. It is taken before any
    operation runs, as a move needs (database.begin_script).
    """
    key_lock = (
        select(
            func.pg_try_advisory_xact_lock(bindparam("lock_id", type_=BigInteger)).label("acquired")
        )
        .cte("key_lock")
        .prefix_with("MATERIALIZED")
    )
    user_lock = (
        select(func.task_sync_lock(_user).label("locked"))
        .where(key_lock.c.acquired)
        .cte("user_lock")
        .prefix_with("MATERIALIZED")
    )
    locked = select(func.count()).select_from(user_lock).scalar_subquery()
    statement = select(
        key_lock.c.acquired,
        locked.label("user_locked"),
        keys.c.request_hash.label("stored_hash"),
        keys.c.task.label("snapshot"),
    ).select_from(
        key_lock.outerjoin(keys, and_(keys.c.user_id == _user, keys.c.key == _key, ~_expired))
    )
    return Query(statement)


def _store() -> Query:
    """Store the key with the batch's answer; an expired row of the same key is taken over.
    Returns no row when a live one exists (committed after the claim's snapshot). Purges a
    bounded batch of the user's expired keys, as a keyed create does."""
    row = pg_insert(keys).values(
        user_id=_user,
        key=_key,
        request_hash=bindparam("request_hash", type_=LargeBinary),
        task=bindparam("result", type_=JSONB),
    )
    stored = store_key(row, _expired)
    purge = purge_expired_keys(_user, _key, _expired)
    return Query(select(func.count()).select_from(stored).add_cte(purge))


_CLAIM = _claim()
_STORE = _store()


async def claim(session: Transaction, user_id: str, key: str, lock_id: int) -> Record:
    row = await session.fetchrow(_CLAIM, user_id=user_id, key=key, lock_id=lock_id)
    assert row is not None
    return row


async def store(
    session: Transaction, user_id: str, key: str, request_hash: bytes, result: str
) -> bool:
    """`result`: JSON text (of the batch's answer as a JSON string). False: not stored."""
    row = await session.fetchrow(
        _STORE, user_id=user_id, key=key, request_hash=request_hash, result=result
    )
    return row is not None and row[0] == 1


def _update_many() -> Query:
    """Several updates of distinct tasks as one statement: one lock, one run of the write
    triggers, one round trip, for a run of `update` operations in a batch.

    Each row of `rows` is {"id", "ord" (1-based), "c": the changes as given, "versions":
    If-Match's or null}; `due_at` holds each row's new due_at (null where it sets none).
    A field is set only when the changes name it, exactly as `_update_query` of
    task_repository does for a single update (same completed_at rule);
    tests/integration/test_batch.py compares the two.
    """

    def field(name: str, value: str) -> str:
        return f"{name} = CASE WHEN v.c ? '{name}' THEN {value} ELSE t.{name} END"

    assignments = ",\n  ".join(
        [
            field("title", "v.c->>'title'"),
            field("description", "v.c->>'description'"),
            field("priority", "(v.c->>'priority')::task_priority"),
            # Bound as timestamptz (as a single update binds it), not read from JSON text:
            # PostgreSQL's input refuses offsets beyond 15:59 that an RFC 3339 time may have.
            field("due_at", "(:due_at)[v.ord]"),
            field("tags", "ARRAY(SELECT jsonb_array_elements_text(v.c->'tags'))"),
            field("is_completed", "(v.c->>'is_completed')::boolean"),
            "completed_at = CASE WHEN v.c ? 'is_completed' THEN CASE WHEN "
            "(v.c->>'is_completed')::boolean THEN coalesce(t.completed_at, now()) END "
            "ELSE t.completed_at END",
            "version = t.version + 1",
            "updated_at = now()",
        ]
    )
    returned = ", ".join(f"t.{name}" for name in COLUMN_NAMES)
    statement = text(
        f"UPDATE tasks AS t SET\n  {assignments}\n"
        "FROM jsonb_to_recordset(:rows) AS v(id uuid, ord int, c jsonb, versions int[])\n"
        "WHERE t.user_id = :user_id AND t.id = v.id\n"
        "  AND (v.versions IS NULL OR t.version = ANY(v.versions))\n"
        f"RETURNING {returned}"
    ).bindparams(
        bindparam("user_id", type_=Text),
        bindparam("rows", type_=JSONB),
        bindparam("due_at", type_=ARRAY(DateTime(timezone=True))),
    )
    return Query(statement)


_UPDATE_MANY = _update_many()


async def update_many(
    session: Transaction, user_id: str, rows: str, due_at: list[datetime | None]
) -> list[Record]:
    """`rows`: the JSON text of the updates (see _update_many); the tasks that qualified."""
    return await session.fetch(_UPDATE_MANY, user_id=user_id, rows=rows, due_at=due_at)
