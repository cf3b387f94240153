"""Request id, `Cache-Control` on the API, and the last line of defence for errors."""

import logging
import re
from uuid import uuid4

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks_api.errors import AppError
from tasks_api.responses import error_body

logger = logging.getLogger("tasks_api.errors")

# A client's id is echoed into headers and logs, so only a conservative alphabet is kept.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")


def _incoming_request_id(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value if _SANE_REQUEST_ID.fullmatch(value) else None
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_id = _incoming_request_id(scope) or str(uuid4()).encode()
        request_id = raw_id.decode()
        scope.setdefault("state", {})["request_id"] = request_id
        extra = [(b"x-request-id", raw_id)]
        if scope["path"].startswith("/api/"):
            extra.append((b"cache-control", b"no-store"))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Nothing of the exception reaches the client: no trace, no SQL, no secret.
            logger.exception("unhandled error", extra={"request_id": request_id})
            if started:
                return
            body = error_body(AppError(), request_id)
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
