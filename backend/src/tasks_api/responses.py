"""Envelopes rendered straight to bytes with orjson: one encode per response."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tasks_api.errors import AppError

_JSON_OPTIONS = orjson.OPT_UTC_Z
_MEDIA_TYPE = "application/json"


def _default(value: Any) -> str:
    # asyncpg's UUID subclass, which orjson does not take for a uuid.UUID.
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_JSON_OPTIONS)


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def _meta(request_id: str) -> dict[str, Any]:
    return {"timestamp": datetime.now(UTC), "request_id": request_id}


def success(
    request: Request,
    data: Any,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Response:
    body = {"data": data, "meta": {**_meta(request_id_of(request)), **(meta or {})}}
    return Response(
        dumps(body),
        status_code=status_code,
        headers=headers,
        media_type=_MEDIA_TYPE,
    )


def error_body(error: AppError, request_id: str) -> bytes:
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "details": error.details,
            **_meta(request_id),
        }
    }
    return dumps(body)


def error(request: Request, error: AppError) -> Response:
    return Response(
        error_body(error, request_id_of(request)),
        status_code=error.status_code,
        headers=error.headers,
        media_type=_MEDIA_TYPE,
    )
