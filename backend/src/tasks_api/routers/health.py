import asyncio

from fastapi import APIRouter, Request, Response

from tasks_api.database import Database
from tasks_api.errors import AppError, ServiceUnavailable
from tasks_api.responses import error, success
from tasks_api.routers._openapi import error_responses
from tasks_api.schemas.envelope import Envelope

router = APIRouter(tags=["health"])
READY_TIMEOUT_SECONDS = 2.0


@router.get(
    "/health",
    name="health",
    responses={200: {"model": Envelope[dict[str, str]]}} | error_responses(AppError),
)
async def health(request: Request) -> Response:
    """Liveness: the process answers. No database, no auth."""
    return success(request, {"status": "ok"})


@router.get(
    "/health/ready",
    name="ready",
    responses={200: {"model": Envelope[dict[str, str]]}}
    | error_responses(ServiceUnavailable, AppError),
)
async def ready(request: Request) -> Response:
    """Readiness: 200 when the database answers, else 503."""
    database: Database = request.app.state.database
    try:
        await asyncio.wait_for(database.ping(), READY_TIMEOUT_SECONDS)
    except Exception:
        return error(request, ServiceUnavailable("The database is not reachable."))
    return success(request, {"status": "ready", "database": "ok"})
