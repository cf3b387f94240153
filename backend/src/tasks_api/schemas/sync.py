"""The change feed's query strings and change objects, as OpenAPI shows them."""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import ConfigDict
from pydantic import Field as PydanticField
from sqlmodel import Field, SQLModel

from tasks_api.schemas.envelope import Meta
from tasks_api.schemas.task import TaskPublic

# Longer than any token we write by far; a cap keeps a huge one from costing a decode.
TOKEN_MAX = 512
_SINCE = (
    "A sync token: `meta.sync_token` of a list page or of the previous `changes` page. "
    "Without it, nothing is listed and `meta.sync_token` is the current position."
)


class ChangesQuery(SQLModel):
    model_config = ConfigDict(extra="ignore")

    since: str | None = Field(default=None, max_length=TOKEN_MAX, description=_SINCE)
    limit: int = Field(default=100, ge=1, le=1000, description="Page size.")


class EventsQuery(SQLModel):
    model_config = ConfigDict(extra="ignore")

    since: str | None = Field(
        default=None,
        max_length=TOKEN_MAX,
        description="A sync token to resume from; `Last-Event-ID` wins when both are sent. "
        "Without either, the stream starts from now.",
    )


class TaskUpserted(SQLModel):
    type: Literal["upsert"]
    task: TaskPublic


class TaskDeleted(SQLModel):
    type: Literal["delete"]
    id: UUID
    deleted_at: datetime


Change = Annotated[TaskUpserted | TaskDeleted, PydanticField(discriminator="type")]


class ChangesMeta(Meta):
    sync_token: str = Field(description="Pass it as `since` next time; it covers all of `data`.")
    has_more: bool = Field(description="More changes follow: call again at once with the token.")
    limit: int


class ChangesEnvelope(SQLModel):
    data: list[Change]
    meta: ChangesMeta
