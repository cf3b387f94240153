"""A keyed batch's two statements on `idempotency_keys`: claim the key, store the result.

The key's row holds the batch's answer (`task`: the JSON text of its `data`) and the hash
of its body, as a keyed create's row holds its task (specs/idempotency.md, specs/ordering.md).
"""

from asyncpg import Record
from sqlalchemy import (
    BigInteger,
    LargeBinary,
    Text,
    and_,
    bindparam,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from tasks_api.database import Query, Transaction
from tasks_api.models.idempotency_key import KEY_RETENTION, IdempotencyKey
from tasks_api.repositories.idempotency_repository import PURGE_BATCH

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
    stored = (
        row.on_conflict_do_update(
            index_elements=[keys.c.user_id, keys.c.key],
            set_={
                "request_hash": row.excluded.request_hash,
                "task": row.excluded.task,
                "created_at": func.now(),
            },
            where=_expired,
        )
        .returning(keys.c.key)
        .cte("stored")
    )
    purge = (
        delete(keys)
        .where(
            keys.c.user_id == _user,
            keys.c.key.in_(
                select(keys.c.key)
                .where(keys.c.user_id == _user, keys.c.key != _key, _expired)
                .limit(PURGE_BATCH)
                .with_for_update(skip_locked=True)
            ),
        )
        .returning(keys.c.key)
        .cte("purged")
    )
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
