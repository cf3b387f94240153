from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from asyncpg import Record
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
from tasks_api.routers._conditional import accepted_versions, etag, none_match
from tasks_api.routers._openapi import (
    error_responses,
    json_request_body,
    request_headers,
    success_headers,
)
from tasks_api.routers._shared import cursor_signer, idempotency_key, user_router
from tasks_api.schemas.envelope import Envelope, ListEnvelope
from tasks_api.schemas.task import TaskComplete, TaskCreate, TaskPublic, TaskStats, TaskUpdate
from tasks_api.schemas.task_query import TaskListQuery
from tasks_api.services import idempotency_service, task_service

router = user_router("tasks")

_WRITE_ERRORS = error_responses(NotFound, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType)


def _task(request: Request, task: Mapping[str, Any] | Record, status_code: int = 200) -> Response:
    return success(request, dict(task), status_code=status_code, headers={"ETag": etag(task)})


@router.get("/tasks", response_model=ListEnvelope[TaskPublic], name="list_tasks")
async def list_tasks(
    request: Request,
    user_id: CurrentUserId,
    query: Annotated[TaskListQuery, Query()],
) -> Response:
    """List your tasks: filters, a sort, and pages that follow `meta.next_cursor`."""
    tasks, meta = await task_service.list_tasks(
        request.app.state.database, user_id, query, cursor_signer(request)
    )
    return success(request, tasks, meta=meta)


_CREATED = success_headers(
    201,
    "Location",
    "ETag",
    "Idempotent-Replayed",
    description="Created; or, for a repeated Idempotency-Key, the first 201 replayed.",
)


@router.post(
    "/tasks",
    status_code=201,
    response_model=Envelope[TaskPublic],
    responses=_CREATED
    | error_responses(Conflict, PayloadTooLarge, UnsupportedMediaType, IdempotencyKeyReused),
    openapi_extra=json_request_body(TaskCreate) | request_headers("Idempotency-Key"),
    name="create_task",
)
async def create_task(
    request: Request,
    user_id: CurrentUserId,
    payload: Annotated[TaskCreate, Depends(json_body(TaskCreate))],
) -> Response:
    """Create a task; with an Idempotency-Key, retrying it never creates a second one."""
    key = idempotency_key(request)
    task, replayed = await idempotency_service.create(
        request.app.state.database, user_id, payload, key
    )
    response = _task(request, task, status_code=201)
    response.headers["Location"] = f"/api/{quote(user_id, safe='')}/tasks/{task['id']}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@router.get(
    "/tasks/{task_id}",
    response_model=Envelope[TaskPublic],
    responses=success_headers(200, "ETag")
    | success_headers(304, "ETag", description="Not modified: If-None-Match names the ETag.")
    | error_responses(NotFound),
    openapi_extra=request_headers("If-None-Match"),
    name="get_task",
)
async def get_task(request: Request, user_id: CurrentUserId, task_id: UUID) -> Response:
    """Get one task; answers 304 when If-None-Match names its current ETag."""
    task = await task_service.get(request.app.state.database, user_id, task_id)
    tag = etag(task)
    if none_match(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers={"ETag": tag})
    return _task(request, task)


@router.put(
    "/tasks/{task_id}",
    response_model=Envelope[TaskPublic],
    responses=success_headers(200, "ETag") | _WRITE_ERRORS,
    openapi_extra=json_request_body(TaskUpdate) | request_headers("If-Match"),
    name="update_task",
)
@router.patch(
    "/tasks/{task_id}",
    response_model=Envelope[TaskPublic],
    responses=success_headers(200, "ETag") | _WRITE_ERRORS,
    openapi_extra=json_request_body(TaskUpdate) | request_headers("If-Match"),
    name="patch_task",
)
async def update_task(
    request: Request,
    user_id: CurrentUserId,
    task_id: UUID,
    payload: Annotated[TaskUpdate, Depends(json_body(TaskUpdate))],
) -> Response:
    """Change the fields given and leave the rest as they are."""
    versions = accepted_versions(request.headers.get("if-match"), task_id)
    task = await task_service.update(
        request.app.state.database, user_id, task_id, payload, versions=versions
    )
    return _task(request, task)


@router.patch(
    "/tasks/{task_id}/complete",
    response_model=Envelope[TaskPublic],
    responses=success_headers(200, "ETag") | _WRITE_ERRORS,
    openapi_extra=json_request_body(TaskComplete, required=False) | request_headers("If-Match"),
    name="complete_task",
)
async def complete_task(
    request: Request,
    user_id: CurrentUserId,
    task_id: UUID,
    payload: Annotated[TaskComplete | None, Depends(json_body(TaskComplete, optional=True))],
) -> Response:
    """Mark a task complete (no body), or reopen it with `{"is_completed": false}`.

    Idempotent, not a toggle: repeating the request changes nothing more."""
    completed = payload.is_completed if payload is not None else True
    versions = accepted_versions(request.headers.get("if-match"), task_id)
    task = await task_service.set_completed(
        request.app.state.database, user_id, task_id, completed, versions=versions
    )
    return _task(request, task)


@router.delete(
    "/tasks/{task_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(NotFound, PreconditionFailed),
    openapi_extra=request_headers("If-Match"),
    name="delete_task",
)
async def delete_task(request: Request, user_id: CurrentUserId, task_id: UUID) -> Response:
    """Delete a task."""
    versions = accepted_versions(request.headers.get("if-match"), task_id)
    await task_service.delete(request.app.state.database, user_id, task_id, versions=versions)
    return Response(status_code=204)


@router.get("/stats", response_model=Envelope[TaskStats], name="get_stats")
async def get_stats(request: Request, user_id: CurrentUserId) -> Response:
    """Counts of your tasks: total, completed, pending, and overdue (pending and past due)."""
    return success(request, dict(await task_service.stats(request.app.state.database, user_id)))
