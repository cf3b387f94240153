"""Organizing tasks: the manual order (move), clear completed, and batches of writes."""

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from tasks_api.auth.dependencies import CurrentUserId
from tasks_api.errors import (
    AppError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from tasks_api.responses import success
from tasks_api.routers._body import json_body
from tasks_api.routers._conditional import accepted_versions, etag
from tasks_api.routers._openapi import (
    error_responses,
    json_request_body,
    request_headers,
    success_headers,
)
from tasks_api.schemas.envelope import Envelope
from tasks_api.schemas.organize import Cleared
from tasks_api.schemas.task import TaskMove, TaskPublic
from tasks_api.services import task_service

router = APIRouter(
    prefix="/api/{user_id}",
    tags=["tasks"],
    responses=error_responses(
        Unauthorized, Forbidden, ValidationFailed, ServiceUnavailable, AppError
    ),
)


@router.post(
    "/tasks/{task_id}/move",
    response_model=Envelope[TaskPublic],
    responses=success_headers(200, "ETag")
    | error_responses(NotFound, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType),
    openapi_extra=json_request_body(TaskMove) | request_headers("If-Match"),
    name="move_task",
)
async def move_task(
    request: Request,
    user_id: CurrentUserId,
    task_id: UUID,
    payload: Annotated[TaskMove, Depends(json_body(TaskMove))],
) -> Response:
    """Place a task in the manual order: right after `after`, or first when it is null.

    Moving a task to where it already is changes nothing (same position and version)."""
    versions = accepted_versions(request.headers.get("if-match"), task_id)
    task = await task_service.move(
        request.app.state.database, user_id, task_id, payload.after, versions=versions
    )
    return success(request, dict(task), headers={"ETag": etag(task)})


@router.delete("/tasks", response_model=Envelope[Cleared], name="clear_completed_tasks")
async def clear_completed_tasks(
    request: Request,
    user_id: CurrentUserId,
    status: Annotated[
        Literal["completed"],
        Query(description="Must be `completed`: nothing deletes every task at once."),
    ],
) -> Response:
    """Delete every completed task; `data.deleted` counts them."""
    deleted = await task_service.clear_completed(request.app.state.database, user_id)
    return success(request, {"deleted": deleted})
