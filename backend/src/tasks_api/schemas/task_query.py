"""The query string of the task list: filters, sort, page size and cursor."""

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    StringConstraints,
    field_validator,
)
from sqlmodel import Field, SQLModel

from tasks_api.models.task import TAG_MAX, TAGS_MAX, Priority
from tasks_api.schemas.text import Text, not_blank_text

# The longest valid list URL, every parameter at its limit and every character of it a
# 4-byte one percent-encoded (12 bytes), stays under the server's URL limit
# (middleware.request_context.MAX_URL_BYTES); specs/input-rules.md has the sum.
Q_MAX = 1_000
CURSOR_MAX = 8_192
# What CursorSigner writes: base64url, a dot, base64url.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$"


class TaskStatus(StrEnum):
    all = "all"
    pending = "pending"
    completed = "completed"


class TaskSort(StrEnum):
    created = "created"
    updated = "updated"
    due_date = "due_date"
    priority = "priority"
    title = "title"
    position = "position"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"


# Each sort's natural direction: newest first, soonest due first, high first, A to Z.
DEFAULT_ORDER = {
    TaskSort.created: SortOrder.desc,
    TaskSort.updated: SortOrder.desc,
    TaskSort.due_date: SortOrder.asc,
    TaskSort.priority: SortOrder.desc,
    TaskSort.title: SortOrder.asc,
    # The manual order (`position`, byte-wise); desc is that order reversed.
    TaskSort.position: SortOrder.asc,
}

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|(?P<sign>[+\- ])\d{2}:\d{2})"
)


def _rfc3339(value: Any) -> Any:
    # Pydantic alone would take Unix seconds and bare dates too; the contract says RFC 3339.
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2026-12-01T17:00:00Z")
    if match["sign"] == " ":
        # An unencoded "+02:00" reaches us as " 02:00": a query string's + means a space.
        value = f"{value[: match.start('sign')]}+{value[match.end('sign') :]}"
    return value


QueryTimestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
# A tag as the body takes it, at most TAG_MAX characters as sent: its length bounds the URL.
QueryTag = not_blank_text(TAG_MAX, as_sent=True)
Cursor = Annotated[str, StringConstraints(max_length=CURSOR_MAX, pattern=CURSOR_PATTERN)]


class TaskListQuery(SQLModel):
    # Unknown parameters are ignored, as the contract says: a client may send more.
    model_config = ConfigDict(extra="ignore")

    status: TaskStatus = Field(default=TaskStatus.all, description="all, pending or completed.")
    priority: Priority | None = Field(default=None, description="Only tasks of this priority.")
    tag: list[QueryTag] = Field(
        default_factory=list,
        max_length=TAGS_MAX,
        description="Repeatable: a task must carry every tag given.",
    )
    q: Text | None = Field(
        default=None,
        max_length=Q_MAX,
        description="Case-insensitive substring of the title or the description.",
    )
    due_before: QueryTimestamp | None = Field(
        default=None, description="Due strictly before this RFC 3339 time; undated never match."
    )
    due_after: QueryTimestamp | None = Field(
        default=None, description="Due strictly after this RFC 3339 time; undated never match."
    )
    updated_since: QueryTimestamp | None = Field(
        default=None, description="Changed at or after this RFC 3339 time."
    )
    sort: TaskSort = Field(
        default=TaskSort.created,
        description="Title sorts case-insensitively; position is the manual order (no two "
        "tasks share one); every sort breaks ties on id.",
    )
    order: SortOrder | None = Field(
        default=None,
        description="Default per sort: desc for created/updated/priority, asc for "
        "due_date/title/position."
        " Undated tasks come last in both orders of due_date.",
    )
    limit: int = Field(default=100, ge=1, le=1000, description="Page size.")
    cursor: Cursor | None = Field(
        default=None, description="`meta.next_cursor` of the previous page."
    )

    @field_validator("q")
    @classmethod
    def _empty_q_is_no_filter(cls, value: str | None) -> str | None:
        # Every title contains the empty string, so `q=` (an empty search box) filters nothing.
        return value or None

    @property
    def effective_order(self) -> SortOrder:
        return self.order or DEFAULT_ORDER[self.sort]

    def binding(self) -> dict[str, Any]:
        """What a cursor is bound to: everything that shapes the list, but not the page size."""
        return {
            "status": self.status,
            "priority": self.priority,
            "tag": sorted(set(self.tag)),
            "q": self.q,
            "due_before": _utc(self.due_before),
            "due_after": _utc(self.due_after),
            "updated_since": _utc(self.updated_since),
            "sort": self.sort,
            "order": self.effective_order,
        }


def _utc(value: datetime | None) -> str | None:
    # The same instant written with another offset is the same query.
    return None if value is None else value.astimezone(UTC).isoformat()
