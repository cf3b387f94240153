"""The success and error envelopes, as OpenAPI schemas; `responses.py` renders them."""

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Meta(BaseModel):
    timestamp: datetime
    request_id: str


class ListMeta(Meta):
    limit: int
    has_more: bool
    next_cursor: str | None
    total: int
    # The sync position the page was read at: follow `changes` from it (API.md, Sync).
    sync_token: str


class Envelope(BaseModel, Generic[T]):
    data: T
    meta: Meta


class ListEnvelope(BaseModel, Generic[T]):
    data: list[T]
    meta: ListMeta


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None
    timestamp: datetime
    request_id: str


class ErrorEnvelope(BaseModel):
    error: ErrorBody
