import logging
from typing import Annotated, Any

import anyio
from fastapi import Query, Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from tasks_api.auth.dependencies import CurrentUserId
from tasks_api.change_hub import Subscription
from tasks_api.errors import (
    SyncTokenExpired,
    TooManyRequests,
)
from tasks_api.responses import success
from tasks_api.routers._openapi import HEADERS, error_responses, request_headers
from tasks_api.routers._shared import cursor_signer, user_router
from tasks_api.schemas.sync import ChangesEnvelope, ChangesQuery, EventsQuery
from tasks_api.services import event_service, sync_service

logger = logging.getLogger(__name__)
_SHUTDOWN_GRACE_SECONDS = 2.0

router = user_router("sync", SyncTokenExpired)


@router.get("/changes", response_model=ChangesEnvelope, name="list_changes")
async def list_changes(
    request: Request, user_id: CurrentUserId, query: Annotated[ChangesQuery, Query()]
) -> Response:
    """Every change since a sync token, deletions included, each task once, in order."""
    data, meta = await sync_service.changes(
        request.app.state.database, cursor_signer(request), user_id, query.since, query.limit
    )
    return success(request, data, meta=meta)


class _EventStream(EventSourceResponse):
    """The SSE response that gives its stream's place back however it ends, and drops a
    reader too slow to take an event within the send timeout instead of erroring."""

    def __init__(self, subscription: Subscription, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # RequestContextMiddleware sets it on every /api response; once is enough.
        del self.headers["cache-control"]
        self._subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            logger.info("event stream dropped: the reader did not keep up")
        finally:
            self._subscription.close()


_STREAM = {
    200: {
        "description": "Server-Sent Events: `event: upsert|delete`, `data:` the change as "
        "`changes` gives it (one JSON line), `id:` a sync token covering it; `: keep-alive` "
        "comments after 15 s of silence. Ends when the bearer token expires.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "headers": {"X-Request-ID": HEADERS["X-Request-ID"]},
    }
}


@router.get(
    "/events",
    response_class=Response,
    responses=_STREAM | error_responses(TooManyRequests),
    openapi_extra=request_headers("Last-Event-ID"),
    name="stream_events",
)
async def stream_events(
    request: Request, user_id: CurrentUserId, query: Annotated[EventsQuery, Query()]
) -> Response:
    """Your changes, live: replayed from `Last-Event-ID` (or `since`), then as they commit."""
    state = request.app.state
    settings = state.settings
    resume, field = query.since, "since"
    last_event_id = request.headers.get("last-event-id")
    if last_event_id is not None:
        # What a reconnecting client sends; it wins over the `since` of the original URL.
        resume, field = last_event_id, "Last-Event-ID"
    context = event_service.StreamContext(
        database=state.database,
        hub=state.change_hub,
        signer=cursor_signer(request),
        user_id=user_id,
        expires_at=request.state.token_expires_at,
        keepalive_seconds=settings.events_keepalive_seconds,
    )
    subscription, events = await event_service.open_stream(context, resume, field)
    # sse-starlette sees the server's SIGTERM (it hooks uvicorn's exit handler), sets this
    # event and, after the grace period, cancels the stream. Ending the stream ourselves
    # first closes it cleanly (a complete chunked body) and uvicorn does not wait for it.
    shutdown = anyio.Event()

    async def end_on_shutdown() -> None:
        await shutdown.wait()
        subscription.end()

    return _EventStream(
        subscription,
        events,
        ping=0,  # keep-alive comments come from the stream, only when it is idle
        sep=event_service.SEPARATOR,
        send_timeout=settings.events_send_timeout_seconds,
        shutdown_event=shutdown,
        shutdown_grace_period=_SHUTDOWN_GRACE_SECONDS,
        data_sender_callable=end_on_shutdown,
    )
