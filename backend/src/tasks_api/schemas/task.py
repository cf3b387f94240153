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
    field_validator,
    model_validator,
)
from sqlmodel import Field, SQLModel

from tasks_api.models.task import DESCRIPTION_MAX, TAG_MAX, TAGS_MAX, TITLE_MAX, Priority
from tasks_api.schemas.text import Documented, Text, not_blank_text

# Fields a client may read but never write; naming them in a body is a 400 that says so.
READ_ONLY_FIELDS = frozenset(
    {"id", "user_id", "completed_at", "created_at", "updated_at", "version", "position"}
)


def _distinct_as_sent(tags: Any) -> Any:
    # The document's `uniqueItems` compares tags as sent; tags equal only once trimmed are
    # merged below, so every list the document calls valid is accepted.
    strings = isinstance(tags, list) and all(isinstance(tag, str) for tag in tags)
    if strings and len(set(tags)) != len(tags):
        raise ValueError("must not repeat a tag")
    return tags


def _merge_trimmed(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


def _timestamp_text(value: Any) -> Any:
    # Pydantic would also take a number as Unix time; the contract wants RFC 3339 text.
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2026-12-01T17:00:00Z")
    return value


# Strict types: "1" is not a boolean and 5 is not a title. (SQLModel cannot take
# strict=True on the model: it then refuses JSON strings for datetimes.)
# Lengths count code points as sent (the document's maxLength), and the trimmed text must
# not be empty; specs/input-rules.md says why.
Title = not_blank_text(TITLE_MAX)
Description = Annotated[Text, Field(max_length=DESCRIPTION_MAX)]
Tag = not_blank_text(TAG_MAX)
Tags = Annotated[
    list[Tag],
    Field(max_length=TAGS_MAX),
    BeforeValidator(_distinct_as_sent),
    AfterValidator(_merge_trimmed),
    Documented(uniqueItems=True),
]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_text)]

_INPUT = ConfigDict(extra="forbid")


def partial_update(*not_null: str) -> ConfigDict:
    """An update body's config: every field optional, at least one given, and `not_null`
    fields may be left out but never sent as null, which the document says too."""

    def edit(schema: dict[str, Any]) -> None:
        schema["minProperties"] = 1
        for name in not_null:
            field = schema["properties"][name]
            field.pop("default", None)
            branches = [branch for branch in field.pop("anyOf") if branch != {"type": "null"}]
            (branch,) = branches
            field.update(branch)

    return ConfigDict(extra="forbid", json_schema_extra=edit)


class TaskCreate(SQLModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"title": "Buy milk"},
                {
                    "title": "File the tax return",
                    "description": "Receipts are in the blue folder.",
                    "priority": "high",
                    "due_at": "2026-12-01T17:00:00Z",
                    "tags": ["home", "paperwork"],
                },
            ]
        },
    )

    title: Title
    description: Description | None = None
    priority: Priority = Priority.medium
    due_at: Timestamp | None = None
    tags: Tags = Field(default_factory=list)
    is_completed: StrictBool = False


_NOT_NULL = ("title", "priority", "tags", "is_completed")


class TaskUpdate(SQLModel):
    """Every field optional; only the fields given are changed."""

    model_config = partial_update(*_NOT_NULL)

    title: Title | None = None
    description: Description | None = None
    priority: Priority | None = None
    due_at: Timestamp | None = None
    tags: Tags | None = None
    is_completed: StrictBool | None = None

    # Defaults are not validated, so this runs only for fields the client sent.
    @field_validator(*_NOT_NULL)
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
