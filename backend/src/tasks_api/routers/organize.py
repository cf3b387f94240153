"""Organizing tasks: the manual order (move), clear completed, and batches of writes."""

from typing import Annotated, Literal
from uuid import UUID

from fastapi import Depends, Query, Request, Response

from tasks_api.auth.dependencies import CurrentUserId
from tasks_api.errors import (
    Conflict,
    IdempotencyKeyReused,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    UnsupportedMediaType,
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
from tasks_api.routers._shared import idempotency_key, user_router
from tasks_api.schemas.batch import BatchRequest, BatchResult, batch_details
from tasks_api.schemas.envelope import Envelope
from tasks_api.schemas.organize import Cleared
from tasks_api.schemas.task import TaskMove, TaskPublic
from tasks_api.services import batch_service, task_service

router = user_router("tasks")


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


_BATCH_KEY = (
    "Makes the batch safe to retry (1-255 characters of your choice, e.g. a UUID; yours alone, "
    "remembered at least 24 hours, apart from the keys of creates). Sent again with the same "
    "body, it replays the first 200 and applies nothing; with another body it is a 422; while "
    "the first request is still running, a 409."
)


@router.post(
    "/batch",
    response_model=Envelope[list[BatchResult]],
    responses=success_headers(
        200,
        "Idempotent-Replayed",
        description="Every operation applied, in order: one result each (the task after it, "
        "or `{id, deleted: true}`); or, for a repeated Idempotency-Key, the first answer.",
    )
    | error_responses(
        NotFound,
        Conflict,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        IdempotencyKeyReused,
    ),
    openapi_extra=json_request_body(BatchRequest)
    | request_headers("Idempotency-Key", descriptions={"Idempotency-Key": _BATCH_KEY}),
    name="batch",
)
async def batch(
    request: Request,
    user_id: CurrentUserId,
    payload: Annotated[BatchRequest, Depends(json_body(BatchRequest, details=batch_details))],
) -> Response:
    """Apply up to 100 writes in one transaction: all of them, or none.

    Each operation follows the rules of its single request. When one fails, nothing is
    applied and the answer is that operation's error, naming it (`operations[N]...`)."""
    key = idempotency_key(request)
    versions = [
        accepted_versions(getattr(operation, "if_match", None), operation.id)
        if hasattr(operation, "id")
        else None
        for operation in payload.operations
    ]
    done = await batch_service.run(request.app.state.database, user_id, payload, versions, key)
    headers = {"Idempotent-Replayed": "true"} if done.replayed else None
    return success(request, done.results, headers=headers)
