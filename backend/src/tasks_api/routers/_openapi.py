"""What the routes tell OpenAPI: error responses with the envelope, and hand-read bodies."""

import re
from typing import Any

from pydantic import BaseModel

from tasks_api.auth.jwks import KeysUnavailable
from tasks_api.auth.tokens import ExpiredToken, InvalidToken
from tasks_api.errors import (
    AppError,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServiceUnavailable,
    SyncTokenExpired,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from tasks_api.models.idempotency_key import KEY_MAX
from tasks_api.schemas.envelope import ErrorEnvelope

# Bodies are read by `_body.json_body` (so auth is checked before the body is parsed);
# their schemas are added to the components by `main.custom_openapi`.
BODY_MODELS: dict[str, type[BaseModel]] = {}

_STRING = {"type": "string"}
HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "required": True,
        "description": "Strong validator of the task's version: send it back in If-Match "
        "(writes) or If-None-Match (reads).",
        "schema": _STRING,
        "example": '"0193a6f1-5b7c-7cc0-9e1d-2f3a4b5c6d7e.1"',
    },
    "Location": {
        "required": True,
        "description": "The created task's URL.",
        "schema": _STRING,
        "example": "/api/k3J9xYz/tasks/0193a6f1-5b7c-7cc0-9e1d-2f3a4b5c6d7e",
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the "
        "same Idempotency-Key: nothing new was created.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "X-Request-ID": {
        "required": True,
        "description": "The client's X-Request-ID when it sent a sane one, else a new UUID; "
        "the same id as in the body.",
        "schema": _STRING,
    },
    "WWW-Authenticate": {
        "required": True,
        "description": '`Bearer`, with `error="invalid_token"` when a token was given.',
        "schema": _STRING,
        "example": 'Bearer error="invalid_token"',
    },
    "Retry-After": {
        "required": True,
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
        "example": 2,
    },
}
_ERROR_HEADERS: dict[type[AppError], tuple[str, ...]] = {
    Unauthorized: ("WWW-Authenticate",),
    ServiceUnavailable: ("Retry-After",),
    TooManyRequests: ("Retry-After",),
}

# (summary, message, details) as a client really sees them, so Swagger UI and ReDoc show
# what to handle rather than a placeholder. Several per status show each cause.
_Example = tuple[str, str, list[dict[str, str]] | None]
_EXAMPLES: dict[type[AppError], list[_Example]] = {
    ValidationFailed: [
        (
            "Fields that break the rules",
            ValidationFailed.default_message,
            [
                {"field": "title", "message": "must not be empty or whitespace only"},
                {"field": "priority", "message": "Input should be 'low', 'medium' or 'high'"},
                {"field": "id", "message": "is read-only"},
            ],
        ),
        (
            "Malformed JSON",
            ValidationFailed.default_message,
            [{"field": "body", "message": "is not valid JSON"}],
        ),
    ],
    Unauthorized: [
        ("No token", Unauthorized.default_message, None),
        ("Expired token", ExpiredToken.default_message, None),
        ("Invalid token", InvalidToken.default_message, None),
    ],
    Forbidden: [("The URL names another user", Forbidden.default_message, None)],
    NotFound: [("Unknown task, or another user's", NotFound.default_message, None)],
    Conflict: [("The same Idempotency-Key is still in flight", Conflict.default_message, None)],
    PreconditionFailed: [("Stale If-Match", PreconditionFailed.default_message, None)],
    PayloadTooLarge: [("Body over 64 KiB", PayloadTooLarge.default_message, None)],
    UnsupportedMediaType: [("Body not JSON", UnsupportedMediaType.default_message, None)],
    SyncTokenExpired: [
        ("Deletions since the token are forgotten", SyncTokenExpired.default_message, None)
    ],
    TooManyRequests: [("Every stream of the user is open", TooManyRequests.default_message, None)],
    IdempotencyKeyReused: [
        ("Idempotency-Key reused with another body", IdempotencyKeyReused.default_message, None)
    ],
    ServiceUnavailable: [
        ("Database unreachable", ServiceUnavailable.default_message, None),
        ("Token keys cannot be fetched", KeysUnavailable.default_message, None),
    ],
    AppError: [("Unexpected failure (no internals are shown)", AppError.default_message, None)],
}


def _envelope(error: type[AppError], message: str, details: Any) -> dict[str, Any]:
    example = error.example()
    example["error"].update(message=message, details=details)
    return example


def _headers(error: type[AppError]) -> dict[str, dict[str, Any]]:
    names = ["X-Request-ID"]
    for base, extra in _ERROR_HEADERS.items():
        if issubclass(error, base):
            names.extend(extra)
    return {name: HEADERS[name] for name in names}


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        cases = _EXAMPLES.get(error) or [(error.code, error.default_message, None)]
        examples = {
            re.sub(r"\W+", "_", summary.lower()).strip("_"): {
                "summary": summary,
                "value": _envelope(error, message, details),
            }
            for summary, message, details in cases
        }
        responses[error.status_code] = {
            "model": ErrorEnvelope,
            "description": f"`{error.code}`: {cases[0][1]}",
            "headers": _headers(error),
            "content": {"application/json": {"examples": examples}},
        }
    return responses


def success_headers(
    status_code: int, *names: str, description: str | None = None
) -> dict[int | str, dict[str, Any]]:
    """The headers a success response carries besides X-Request-ID, for the docs."""
    response: dict[str, Any] = {"headers": {name: HEADERS[name] for name in names}}
    if description is not None:
        response["description"] = description
    return {status_code: response}


# Request headers that routes read from `request.headers` themselves: a declared FastAPI
# Header() parameter costs a lookup and a validation on every request, sent or not.
# name -> (constraints of the string, description or None)
_REQUEST_HEADERS: dict[str, tuple[dict[str, Any], str | None]] = {
    "Idempotency-Key": (
        {"minLength": 1, "maxLength": KEY_MAX},
        "Makes the create safe to retry (1-255 characters of your choice, e.g. a UUID; yours "
        "alone, remembered at least 24 hours). Sent again with the same body, it replays the "
        "first 201 and creates nothing; with another body it is a 422; while the first request "
        "is still running, a 409.",
    ),
    "If-None-Match": ({}, None),
    "If-Match": ({}, "An ETag of the task: write only if current."),
    "Last-Event-ID": (
        {"maxLength": 512},
        "The `id` of the last event received: the stream resumes after it (sent by SSE "
        "clients when they reconnect; wins over `since`).",
    ),
}


def request_headers(*names: str, descriptions: dict[str, str] | None = None) -> dict[str, Any]:
    """OpenAPI `parameters` for hand-read request headers (`openapi_extra`); `descriptions`
    replaces the usual description of a header for one operation."""
    parameters = []
    for name in names:
        constraints, description = _REQUEST_HEADERS[name]
        description = (descriptions or {}).get(name, description)
        schema: dict[str, Any] = {"anyOf": [{"type": "string", **constraints}, {"type": "null"}]}
        parameter: dict[str, Any] = {"name": name, "in": "header", "required": False}
        if description is not None:
            schema["description"] = parameter["description"] = description
        schema["title"] = name
        parameters.append(parameter | {"schema": schema})
    return {"parameters": parameters}


def json_request_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    BODY_MODELS[model.__name__] = model
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {
        "requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}
    }
