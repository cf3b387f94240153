"""What the routers of `/api/{user_id}` share: the router itself, the cursor signer, and
the Idempotency-Key header."""

from fastapi import APIRouter, Request

from tasks_api.errors import (
    AppError,
    Forbidden,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from tasks_api.models.idempotency_key import KEY_MAX
from tasks_api.routers._openapi import error_responses
from tasks_api.schemas.text import UNSTORABLE, is_storable
from tasks_api.services.cursor import CursorSigner


def user_router(tag: str, *errors: type[AppError]) -> APIRouter:
    """A router under `/api/{user_id}`, documenting the errors every route there can give
    (and `errors`, those of every route of this router)."""
    return APIRouter(
        prefix="/api/{user_id}",
        tags=[tag],
        responses=error_responses(
            Unauthorized, Forbidden, ValidationFailed, *errors, ServiceUnavailable, AppError
        ),
    )


def cursor_signer(request: Request) -> CursorSigner:
    # Built on first use (an app made only to export OpenAPI has no secret to sign with),
    # then kept on the app; not a dependency, which FastAPI would resolve per request.
    state = request.app.state
    signer: CursorSigner | None = getattr(state, "cursor_signer", None)
    if signer is None:
        signer = state.cursor_signer = CursorSigner.from_settings(state.settings)
    return signer


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= KEY_MAX:
        raise ValidationFailed.field("Idempotency-Key", f"must be 1 to {KEY_MAX} characters")
    if key is not None and not is_storable(key):  # the key is stored
        raise ValidationFailed.field("Idempotency-Key", UNSTORABLE)
    return key
