from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from asyncpg import Record
from fastapi import APIRouter, Depends, Header, Query, Request, Response

from tasks_api.auth.dependencies import CurrentUserId
from tasks_api.database import SessionDep
from tasks_api.errors import (
    AppError,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from tasks_api.models.idempotency_key import KEY_MAX
from tasks_api.responses import success
from tasks_api.routers._body import json_body
from tasks_api.routers._conditional import accepted_versions, etag, none_match
from tasks_api.routers._openapi import error_responses, json_request_body, success_headers
from tasks_api.schemas.envelope import Envelope, ListEnvelope
from tasks_api.schemas.task import TaskComplete, TaskCreate, TaskPublic, TaskStats, TaskUpdate
from tasks_api.schemas.task_query import TaskListQuery
from tasks_api.services import idempotency_service, task_service
from tasks_api.services.cursor import CursorSigner

router = APIRouter(
    prefix="/api/{user_id}",
    tags=["tasks"],
    responses=error_responses(
        Unauthorized, Forbidden, ValidationFailed, ServiceUnavailable, AppError
    ),
)

IfMatch = Annotated[str | None, Header(description="An ETag of the task: write only if current.")]
_WRITE_ERRORS = error_responses(NotFound, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType)


def _task(request: Request, task: Mapping[str, Any] | Record, status_code: int = 200) -> Response:
    return success(request, dict(task), status_code=status_code, headers={"ETag": etag(task)})


async def _cursor_signer(request: Request) -> CursorSigner:
    # async def: FastAPI runs a plain def dependency in its thread pool. Built once per app.
    state = request.app.state
    signer: CursorSigner | None = getattr(state, "cursor_signer", None)
    if signer is None:
        signer = state.cursor_signer = CursorSigner.from_settings(state.settings)
    return signer


@router.get("/tasks", response_model=ListEnvelope[TaskPublic], name="list_tasks")
async def list_tasks(
    request: Request,
    user_id: CurrentUserId,
    session: SessionDep,
    query: Annotated[TaskListQuery, Query()],
    signer: Annotated[CursorSigner, Depends(_cursor_signer)],
) -> Response:
    """List your tasks: filters, a sort, and pages that follow `meta.next_cursor`."""
    tasks, meta = await task_service.list_tasks(session, user_id, query, signer)
    return success(request, tasks, meta=meta)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=KEY_MAX,
        description="Makes the create safe to retry (1-255 characters of your choice, e.g. a "
        "UUID; yours alone, remembered at least 24 hours). Sent again with the same body, it "
        "replays the first 201 and creates nothing; with another body it is a 422; while the "
        "first request is still running, a 409.",
    ),
]
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
    openapi_extra=json_request_body(TaskCreate),
    name="create_task",
)
async def create_task(
    request: Request,
    user_id: CurrentUserId,
    session: SessionDep,
    payload: Annotated[TaskCreate, Depends(json_body(TaskCreate))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create a task; with an Idempotency-Key, retrying it never creates a second one."""
    task, replayed = await idempotency_service.create(session, user_id, payload, idempotency_key)
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
    name="get_task",
)
async def get_task(
    request: Request,
    user_id: CurrentUserId,
    session: SessionDep,
    task_id: UUID,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Get one task; answers 304 when If-None-Match names its current ETag."""
    task = await task_service.get(session, user_id, task_id)
    tag = etag(task)
    if none_match(if_none_match, tag):
        return Response(status_code=304, headers={"ETag": tag})
    return _task(request, task)


@router.put(
    "/tasks/{task_id}",
    response_model=Envelope[TaskPublic],
    responses=success_headers(200, "ETag") | _WRITE_ERRORS,
    openapi_extra=json_request_body(TaskUpdate),
    name="update_task",
)
@router.patch(
    "/tasks/{task_id}",
    response_model=Envelope[TaskPublic],
    responses=success_headers(200, "ETag") | _WRITE_ERRORS,
    openapi_extra=json_request_body(TaskUpdate),
    name="patch_task",
)
async def update_task(
    request: Request,
    user_id: CurrentUserId,
    session: SessionDep,
    task_id: UUID,
    payload: Annotated[TaskUpdate, Depends(json_body(TaskUpdate))],
    if_match: IfMatch = None,
) -> Response:
    """Change the fields given and leave the rest as they are."""
    versions = accepted_versions(if_match, task_id)
    task = await task_service.update(session, user_id, task_id, payload, versions=versions)
    return _task(request, task)


@router.patch(
    "/tasks/{task_id}/complete",
    response_model=Envelope[TaskPublic],
    responses=success_headers(200, "ETag") | _WRITE_ERRORS,
    openapi_extra=json_request_body(TaskComplete, required=False),
    name="complete_task",
)
async def complete_task(
    request: Request,
    user_id: CurrentUserId,
    session: SessionDep,
    task_id: UUID,
    payload: Annotated[TaskComplete | None, Depends(json_body(TaskComplete, optional=True))],
    if_match: IfMatch = None,
) -> Response:
    """Mark a task complete (no body), or reopen it with `{"is_completed": false}`.

    Idempotent, not a toggle: repeating the request changes nothing more."""
    completed = payload.is_completed if payload is not None else True
    versions = accepted_versions(if_match, task_id)
    task = await task_service.set_completed(session, user_id, task_id, completed, versions=versions)
    return _task(request, task)


@router.delete(
    "/tasks/{task_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(NotFound, PreconditionFailed),
    name="delete_task",
)
async def delete_task(
    user_id: CurrentUserId, session: SessionDep, task_id: UUID, if_match: IfMatch = None
) -> Response:
    """Delete a task."""
    versions = accepted_versions(if_match, task_id)
    await task_service.delete(session, user_id, task_id, versions=versions)
    return Response(status_code=204)


@router.get("/stats", response_model=Envelope[TaskStats], name="get_stats")
async def get_stats(request: Request, user_id: CurrentUserId, session: SessionDep) -> Response:
    """Counts of your tasks: total, completed, pending, and overdue (pending and past due)."""
    return success(request, dict(await task_service.stats(session, user_id)))
