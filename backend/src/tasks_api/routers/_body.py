"""JSON bodies read by hand: after authentication, capped at 64 KiB, parsed once."""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from tasks_api.auth.dependencies import CurrentUserId
from tasks_api.errors import (
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    validation_details,
)
from tasks_api.schemas.text import UNSTORABLE, unstorable_fields

MAX_BODY_BYTES = 65_536
# JSON's whitespace (RFC 8259); bytes.strip() would also take \v and \f.
_JSON_WHITESPACE = b" \t\r\n"
M = TypeVar("M", bound=BaseModel)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it is known to be too large, before it is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def json_body(
    model: type[M],
    *,
    optional: bool = False,
    details: Callable[[Any], list[dict[str, str]]] = validation_details,
) -> Callable[..., Awaitable[M | None]]:
    """A dependency that parses the body as `model`; with `optional`, no body gives None.
    `details` names the fields of a 400 (the batch names `operations[N].field`)."""

    async def dependency(request: Request, _user: CurrentUserId) -> M | None:
        content_type = request.headers.get("content-type")
        if content_type is not None and not _is_json(content_type):
            raise UnsupportedMediaType
        body = await read_body(request)
        if optional and not body.strip(_JSON_WHITESPACE):
            return None
        if content_type is None:
            raise UnsupportedMediaType
        try:
            parsed = model.model_validate_json(body)
        except ValidationError as exc:
            raise ValidationFailed(details(exc.errors())) from None
        # Text fields are `schemas.text.Text`, which refuses U+0000 itself; this net catches a
        # field of a new model that is not. JSON can only carry U+0000 escaped (the parser
        # refuses lone surrogates), so a body without that escape costs one scan.
        if b"\\u0000" in body:
            fields = list(unstorable_fields(parsed))
            if fields:
                raise ValidationFailed(
                    [{"field": field, "message": UNSTORABLE} for field in fields]
                )
        return parsed

    return dependency
