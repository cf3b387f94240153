from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Column, DateTime, Index, Text, func
from sqlmodel import Field, SQLModel

from tasks_api.models.task import Priority


def _counter() -> Column[int]:
    return Column(BigInteger, nullable=False, server_default="0")


class TaskSync(SQLModel, table=True):
    """One row per user: the sync position of the user's data and the user's counts.

    Maintained only by the triggers on `tasks` (migrations 0004 and 0006, specs/sync.md). The
    user's write lock (an advisory lock since 0006), taken before a writing statement touches
    any task, orders a user's writes, so sync positions commit in the order they were handed
    out.
    """

    __tablename__ = "task_sync"
    # No CHECK on user_id: only the triggers write it, copied from a task whose user_id
    # `tasks` checks; every write would pay for the check again (migration 0007).

    user_id: str = Field(primary_key=True, sa_type=Text)
    # The last sync position handed out for this user (0: none yet).
    seq: int = Field(default=0, sa_column=_counter())
    # Tombstones at or below this position were purged: an older token is a 410.
    purged_seq: int = Field(default=0, sa_column=_counter())
    open_low: int = Field(default=0, sa_column=_counter())
    open_medium: int = Field(default=0, sa_column=_counter())
    open_high: int = Field(default=0, sa_column=_counter())
    done_low: int = Field(default=0, sa_column=_counter())
    done_medium: int = Field(default=0, sa_column=_counter())
    done_high: int = Field(default=0, sa_column=_counter())


# The counter columns by (is_completed, priority).
COUNTERS = {
    (done, priority): f"{'done' if done else 'open'}_{priority.value}"
    for done in (False, True)
    for priority in Priority
}


class TaskTombstone(SQLModel, table=True):
    """A deleted task, remembered SYNC_RETENTION_DAYS so that followers learn of it."""

    __tablename__ = "task_tombstones"
    __table_args__ = (
        Index("ix_task_tombstones_user_seq", "user_id", "seq"),
        Index("ix_task_tombstones_user_deleted", "user_id", "deleted_at"),
    )

    user_id: str = Field(primary_key=True, sa_type=Text)
    task_id: UUID = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    deleted_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )


class TaskListener(SQLModel, table=True):
    """An API instance with an open event stream of the user: writes of that user NOTIFY.

    Registered under the user's write lock before a stream's first read, removed when the
    instance's last stream of the user closes (specs/sync.md, "Listeners")."""

    __tablename__ = "task_listeners"

    user_id: str = Field(primary_key=True, sa_type=Text)
    instance: str = Field(primary_key=True, sa_type=Text)
    since: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
