"""Request id, `Cache-Control`, the access log line, request metrics, and the last line of
defence for errors: one pure ASGI layer, so the request path pays for one wrapper only."""

import logging
import re
from collections.abc import Collection
from time import perf_counter

import uuid_utils
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks_api.errors import MAX_URL_BYTES, AppError, URITooLong
from tasks_api.logging_config import ACCESS_LOGGER, ERROR_LOGGER, user_reference
from tasks_api.metrics import Metrics
from tasks_api.responses import error_body

logger = logging.getLogger(ERROR_LOGGER)
access_logger = logging.getLogger(ACCESS_LOGGER)

# A client's id is echoed into headers and logs, so only a conservative alphabet is kept.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")
# Logged and counted for requests no route took (404s, CORS preflights): never the raw
# path, which holds user ids and would give every scanner's URL its own time series.
UNMATCHED_ROUTE = "unmatched"
_INFO = logging.INFO


def url_bytes(scope: Scope) -> int:
    path = scope.get("raw_path") or scope["path"].encode()
    query = scope["query_string"]
    return len(path) + (len(query) + 1 if query else 0)


def _incoming_request_id(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value if _SANE_REQUEST_ID.fullmatch(value) else None
    return None


def _route_template(scope: Scope) -> str:
    # Set by the router on this same scope once a route matched: `/api/{user_id}/tasks`.
    route = scope.get("route")
    if route is not None:
        return str(route.path_format)
    # A mounted app (the docs' assets) gets no "route", but its static prefix is what moved
    # from `app_root_path` to `root_path`.
    mounted_at = scope.get("app_root_path")
    if mounted_at is not None:
        return f"{scope['root_path'][len(mounted_at) :]}/{{path}}"
    return UNMATCHED_ROUTE


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        user_key: bytes,
        cors_origins: Collection[str] = (),
        cors_exposed_headers: Collection[str] = (),
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._user_key = user_key
        self._cors_origins = {origin.encode() for origin in cors_origins}
        self._cors_exposed = ", ".join(cors_exposed_headers).encode()

    def _cors_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        """CORS headers for the 500 rendered here, outside the CORS middleware: without
        them a browser hides the envelope and its request id from the page."""
        origin = next((value for name, value in scope["headers"] if name == b"origin"), None)
        if origin is None or origin not in self._cors_origins:
            return []
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", self._cors_exposed),
            (b"vary", b"Origin"),
        ]

    async def _uri_too_long(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = error_body(URITooLong(), scope["state"]["request_id"])
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *self._cors_headers(scope),
        ]
        await send({"type": "http.response.start", "status": 414, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = perf_counter()
        # uuid_utils: a new id in a fraction of the stdlib's time, the same text form.
        raw_id = _incoming_request_id(scope) or str(uuid_utils.uuid4()).encode()
        request_id = raw_id.decode()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        extra = [(b"x-request-id", raw_id)]
        if scope["path"].startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        app = self.app if url_bytes(scope) <= MAX_URL_BYTES else self._uri_too_long
        try:
            await app(scope, receive, send_with_headers)
        except Exception:
            # Nothing of the exception reaches the client: no trace, no SQL, no secret. The
            # log gets the trace, scrubbed of tokens and request data (logging_config).
            user_id = state.get("user_id")
            logger.exception(
                "unhandled error",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "route": _route_template(scope),
                    "user": user_reference(self._user_key, user_id) if user_id else None,
                },
            )
            if not status:
                body = error_body(AppError(), request_id)
                await send_with_headers(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            *self._cors_headers(scope),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        # A cancelled request (BaseException) answered nothing and is neither logged nor
        # counted.
        seconds = perf_counter() - started_at
        method = scope["method"]
        route = _route_template(scope)
        self._metrics.observe(method, route, status, seconds)
        if access_logger.isEnabledFor(_INFO):
            user_id = state.get("user_id")
            duration_ms = seconds * 1000
            # The record `.info()` would make, without its stack walk for a file and line
            # that an access line has no use for (a third of the line's cost).
            record = access_logger.makeRecord(
                ACCESS_LOGGER,
                _INFO,
                "",
                0,
                "%s %s %s %.1fms",
                (method, route, status, duration_ms),
                None,
                extra={
                    "request_id": request_id,
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration_ms, 3),
                    "user": user_reference(self._user_key, user_id) if user_id else None,
                },
            )
            access_logger.handle(record)
