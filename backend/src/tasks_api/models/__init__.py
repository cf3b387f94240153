from sqlmodel import SQLModel

# Predictable constraint names, so migrations can name what they drop.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

from tasks_api.models.counts import TaskDueCount, TaskTagCount  # noqa: E402
from tasks_api.models.idempotency_key import IdempotencyKey  # noqa: E402
from tasks_api.models.sync import TaskListener, TaskSync, TaskTombstone  # noqa: E402
from tasks_api.models.task import Priority, Task  # noqa: E402

__all__ = [
    "IdempotencyKey",
    "Priority",
    "SQLModel",
    "Task",
    "TaskDueCount",
    "TaskListener",
    "TaskSync",
    "TaskTagCount",
    "TaskTombstone",
]
