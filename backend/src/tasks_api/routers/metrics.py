from fastapi import APIRouter, Request, Response

from tasks_api.metrics import Metrics

# Operational, not part of the API contract: no auth, not in OpenAPI. Operators keep it off
# the public internet (it tells which routes are used and how the pool is doing).
router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    app_metrics: Metrics = request.app.state.metrics
    body, content_type = app_metrics.render(request.headers.get("accept"))
    return Response(body, headers={"Content-Type": content_type})
