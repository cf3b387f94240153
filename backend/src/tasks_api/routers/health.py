import asyncio

from fastapi import APIRouter, Request, Response

from tasks_api.database import Database
from tasks_api.errors import ServiceUnavailable
from tasks_api.responses import error, success
from tasks_api.routers._openapi import error_responses

router = APIRouter(tags=["health"])
READY_TIMEOUT_SECONDS = 2.0


@router.get("/health", name="health")
async def health(request: Request) -> Response:
    """Liveness: the process answers. No database, no auth."""
    return success(request, {"status": "ok"})


@router.get("/health/ready", name="ready", responses=error_responses(ServiceUnavailable))
async def ready(request: Request) -> Response:
    """Readiness: 200 when the database answers, else 503."""
    database: Database = request.app.state.database
    try:
        await asyncio.wait_for(database.ping(), READY_TIMEOUT_SECONDS)
    except Exception:
        return error(request, ServiceUnavailable("The database is not reachable."))
    return success(request, {"status": "ready", "database": "ok"})
