"""`task_listeners`: which API instances stream a user's changes, so that only writes of
those users NOTIFY (migration 0004, specs/sync.md "Listeners")."""

from sqlalchemy import Text, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from tasks_api.database import Query, Transaction
from tasks_api.models.sync import TaskListener

listeners = TaskListener.__table__
_user = bindparam("user_id", type_=Text)
_instance = bindparam("instance", type_=Text)

# The user's write lock first (a materialized CTE runs before the insert): a writer still
# in flight commits before the row exists, and is seen by the stream's first read, which
# follows this commit; every later writer takes the lock after it and sees the row.
_lock = select(func.task_sync_lock(_user).label("locked")).cte("locked").prefix_with("MATERIALIZED")
_REGISTER = Query(
    pg_insert(listeners)
    .from_select(["user_id", "instance"], select(_user, _instance).select_from(_lock))
    .on_conflict_do_nothing()
)
_UNREGISTER = Query(
    delete(listeners).where(listeners.c.user_id == _user, listeners.c.instance == _instance)
)


async def register(tx: Transaction, user_id: str, instance: str) -> None:
    await tx.fetch(_REGISTER, user_id=user_id, instance=instance)


async def unregister(tx: Transaction, user_id: str, instance: str) -> None:
    await tx.fetch(_UNREGISTER, user_id=user_id, instance=instance)
