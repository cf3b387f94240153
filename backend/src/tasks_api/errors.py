"""Domain errors: services raise them, one handler renders the error envelope."""

from typing import Any, ClassVar

from tasks_api.schemas.task import READ_ONLY_FIELDS


class AppError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_ERROR"
    default_message: ClassVar[str] = "An unexpected error occurred."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    @classmethod
    def example(cls) -> dict[str, Any]:
        return {
            "error": {
                "code": cls.code,
                "message": cls.default_message,
                "details": None,
                "timestamp": "2026-11-21T19:24:00.123456Z",
                "request_id": "6f1c2d7e-6a0b-4b8e-9d6c-2f1a3b4c5d6e",
            }
        }


class ValidationFailed(AppError):
    status_code = 400
    code = "VALIDATION_ERROR"
    default_message = "The request is invalid."

    def __init__(self, details: list[dict[str, str]], message: str | None = None) -> None:
        super().__init__(message, details=details)

    @classmethod
    def field(cls, field: str, message: str) -> "ValidationFailed":
        return cls([{"field": field, "message": message}])


class Unauthorized(AppError):
    status_code = 401
    code = "UNAUTHORIZED"
    default_message = "Authentication required: the bearer token is missing."


class Forbidden(AppError):
    status_code = 403
    code = "FORBIDDEN"
    default_message = "You may only access your own tasks."


class NotFound(AppError):
    status_code = 404
    code = "NOT_FOUND"
    default_message = "Task not found."


class MethodNotAllowed(AppError):
    status_code = 405
    code = "METHOD_NOT_ALLOWED"
    default_message = "Method not allowed."


class Conflict(AppError):
    status_code = 409
    code = "CONFLICT"
    default_message = "A request with this Idempotency-Key is still in progress."


class SyncTokenExpired(AppError):
    status_code = 410
    code = "SYNC_TOKEN_EXPIRED"
    default_message = (
        "The sync token is older than the deletions remembered: reload the list and follow "
        "its meta.sync_token."
    )


class PreconditionFailed(AppError):
    status_code = 412
    code = "PRECONDITION_FAILED"
    default_message = "The task has changed since you read it (If-Match does not match)."


class PayloadTooLarge(AppError):
    status_code = 413
    code = "PAYLOAD_TOO_LARGE"
    default_message = "The request body exceeds 65536 bytes."


# The longest URL (path and query string, as on the request line) this API answers. Every
# URL the OpenAPI document calls valid fits (specs/input-rules.md), and it is below the HTTP
# server's own limit (httptools refuses 65,535 bytes and more), so a longer URL still gets
# the envelope with its request id (middleware.request_context, and tasks_api.server).
MAX_URL_BYTES = 40_960


class URITooLong(AppError):
    status_code = 414
    code = "URI_TOO_LONG"
    default_message = f"The URL (path and query string) exceeds {MAX_URL_BYTES} bytes."


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "UNSUPPORTED_MEDIA_TYPE"
    default_message = "The request body must be JSON (Content-Type: application/json)."


class IdempotencyKeyReused(AppError):
    status_code = 422
    code = "IDEMPOTENCY_KEY_REUSED"
    default_message = "This Idempotency-Key was already used with a different request body."


class TooManyRequests(AppError):
    status_code = 429
    code = "TOO_MANY_REQUESTS"
    default_message = "Too many open event streams for this user on this server."
    retry_after_seconds: ClassVar[int] = 5

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(self.retry_after_seconds)})


class ServiceUnavailable(AppError):
    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    default_message = "The service is temporarily unavailable; retry shortly."
    retry_after_seconds: ClassVar[int] = 2

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(self.retry_after_seconds)})


# Where FastAPI puts a parameter; the client knows the field by its name alone.
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def validation_details(errors: Any) -> list[dict[str, str]]:
    """Pydantic's errors as `{field, message}` pairs that name each offending field."""
    details = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in _LOCATIONS:
            loc = loc[1:]
        field = ".".join(loc) or "body"
        kind = error.get("type")
        if kind == "extra_forbidden":
            message = "is read-only" if field in READ_ONLY_FIELDS else "is not a known field"
        elif kind == "json_invalid":
            message = "is not valid JSON"
        elif kind in {"model_type", "model_attributes_type", "dict_type"} and field == "body":
            message = "must be a JSON object"
        else:
            message = str(error.get("msg", "is invalid")).removeprefix("Value error, ")
        details.append({"field": field, "message": message})
    return details
