from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from tasks_api.auth.dependencies import CurrentUserId
from tasks_api.errors import (
    AppError,
    Forbidden,
    ServiceUnavailable,
    SyncTokenExpired,
    Unauthorized,
    ValidationFailed,
)
from tasks_api.responses import success
from tasks_api.routers._openapi import error_responses
from tasks_api.routers.tasks import _cursor_signer
from tasks_api.schemas.sync import ChangesEnvelope, ChangesQuery
from tasks_api.services import sync_service

router = APIRouter(
    prefix="/api/{user_id}",
    tags=["sync"],
    responses=error_responses(
        Unauthorized, Forbidden, ValidationFailed, SyncTokenExpired, ServiceUnavailable, AppError
    ),
)


@router.get("/changes", response_model=ChangesEnvelope, name="list_changes")
async def list_changes(
    request: Request, user_id: CurrentUserId, query: Annotated[ChangesQuery, Query()]
) -> Response:
    """Every change since a sync token, deletions included, each task once, in order."""
    data, meta = await sync_service.changes(
        request.app.state.database, _cursor_signer(request), user_id, query.since, query.limit
    )
    return success(request, data, meta=meta)
