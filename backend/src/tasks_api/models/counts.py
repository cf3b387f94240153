"""Per-user counts that /stats and list totals read instead of counting tasks (issue 14).

Maintained only by the triggers on `tasks` (migrations 0005 and 0006), in the writing
statement's own transaction, serialized per user by the user's write lock (specs/sync.md).
"""

from datetime import date

from sqlalchemy import BigInteger, Column, Date, Text
from sqlmodel import Field, SQLModel


def _counter() -> Column[int]:
    return Column(BigInteger, nullable=False, server_default="0")


class TaskTagCount(SQLModel, table=True):
    """How many of the user's pending (open) and completed (done) tasks carry `tag`."""

    __tablename__ = "task_tag_counts"

    user_id: str = Field(primary_key=True, sa_type=Text)
    tag: str = Field(primary_key=True, sa_type=Text)
    open: int = Field(default=0, sa_column=_counter())
    done: int = Field(default=0, sa_column=_counter())


class TaskDueCount(SQLModel, table=True):
    """How many of the user's pending tasks fall due on the UTC day `due_day`."""

    __tablename__ = "task_due_counts"

    user_id: str = Field(primary_key=True, sa_type=Text)
    due_day: date = Field(sa_column=Column(Date, primary_key=True))
    open: int = Field(default=0, sa_column=_counter())
