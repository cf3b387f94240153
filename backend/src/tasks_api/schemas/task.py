"""Request and response shapes of a task; the table itself is `models.task.Task`."""

from datetime import datetime
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    StrictBool,
    StrictStr,
    field_validator,
    model_validator,
)
from sqlmodel import Field, SQLModel

from tasks_api.models.task import DESCRIPTION_MAX, TAG_MAX, TAGS_MAX, TITLE_MAX, Priority

# Fields a client may read but never write; naming them in a body is a 400 that says so.
READ_ONLY_FIELDS = frozenset(
    {"id", "user_id", "completed_at", "created_at", "updated_at", "version", "position"}
)


def _title(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty or whitespace only")
    if len(value) > TITLE_MAX:
        raise ValueError(f"must be at most {TITLE_MAX} characters")
    return value


def _tag(value: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= TAG_MAX:
        raise ValueError(f"must be 1 to {TAG_MAX} characters after trimming")
    return value


def _distinct(tags: list[str]) -> list[str]:
    if len(set(tags)) != len(tags):
        raise ValueError("must not repeat a tag")
    return tags


def _timestamp_text(value: Any) -> Any:
    # Pydantic would also take a number as Unix time; the contract wants RFC 3339 text.
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2026-12-01T17:00:00Z")
    return value


# Strict types: "1" is not a boolean and 5 is not a title. (SQLModel cannot take
# strict=True on the model: it then refuses JSON strings for datetimes.)
Title = Annotated[StrictStr, AfterValidator(_title)]
Description = Annotated[StrictStr, Field(max_length=DESCRIPTION_MAX)]
Tag = Annotated[StrictStr, AfterValidator(_tag)]
Tags = Annotated[list[Tag], Field(max_length=TAGS_MAX), AfterValidator(_distinct)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_text)]

_INPUT = ConfigDict(extra="forbid")


class TaskCreate(SQLModel):
    model_config = _INPUT

    title: Title
    description: Description | None = None
    priority: Priority = Priority.medium
    due_at: Timestamp | None = None
    tags: Tags = Field(default_factory=list)
    is_completed: StrictBool = False


class TaskUpdate(SQLModel):
    """Every field optional; only the fields given are changed."""

    model_config = _INPUT

    title: Title | None = None
    description: Description | None = None
    priority: Priority | None = None
    due_at: Timestamp | None = None
    tags: Tags | None = None
    is_completed: StrictBool | None = None

    # Defaults are not validated, so this runs only for fields the client sent.
    @field_validator("title", "priority", "tags", "is_completed")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(include=self.model_fields_set)


class TaskComplete(SQLModel):
    model_config = _INPUT

    is_completed: StrictBool = True


class TaskMove(SQLModel):
    model_config = _INPUT

    after: UUID | None = Field(
        description="The task to go right after; null puts the task first.",
    )


class TaskPublic(SQLModel):
    id: UUID
    user_id: str
    title: str
    description: str | None
    priority: Priority
    due_at: datetime | None
    tags: list[str]
    is_completed: bool
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    position: str


class TaskStats(SQLModel):
    total: int
    completed: int
    pending: int
    overdue: int
