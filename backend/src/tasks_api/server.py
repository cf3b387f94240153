"""Uvicorn's httptools protocol, with the requests it refuses itself answered as the API
answers: the error envelope and an `X-Request-ID`, never a text/plain line.

httptools cannot take a URL of 65,535 bytes or more (it keeps offsets in 16 bits), and
uvicorn answers that, like any request it cannot parse, with `400 Invalid HTTP request
received.` Here a URL is refused as soon as it passes MAX_URL_BYTES, with the same 414 the
app gives (middleware.request_context), before the server has buffered the rest of it.
`tasks-api run` serves with this class; plain uvicorn takes it as
`--http tasks_api.server:HttpToolsProtocol`.
"""

import uuid_utils
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsProtocol

from tasks_api.errors import MAX_URL_BYTES, AppError, URITooLong, ValidationFailed
from tasks_api.responses import error_body


class _URLTooLong(Exception):
    """Stops the parser: httptools turns it into an HttpParserError, which uvicorn answers
    with send_400_response."""


# How long the rest of a refused request is read and dropped before the connection closes.
LINGER_SECONDS = 5.0


class HttpToolsProtocol(_HttpToolsProtocol):
    _url_too_long = False
    _draining = False

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return  # the rest of a refused request: read, so the answer is not lost
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_too_long = False

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._url_too_long = True
            raise _URLTooLong

    def send_400_response(self, msg: str) -> None:
        error: AppError = (
            URITooLong()
            if self._url_too_long
            else ValidationFailed.field("request", "is not a valid HTTP/1.1 request")
        )
        request_id = str(uuid_utils.uuid4()).encode()
        body = error_body(error, request_id.decode())
        content = [STATUS_LINE[error.status_code]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"x-request-id: " + request_id + b"\r\n",
                # As the request-context middleware adds to every /api answer.
                b"cache-control: no-store\r\n"
                if getattr(self, "url", b"").startswith(b"/api/")
                else b"",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        # Closing with the client's bytes still unread would make the kernel send a reset,
        # which can destroy the answer before the client reads it (a long URL is still
        # arriving). Half-close instead, drop what follows, and close when the client has
        # read (its end of file) or after a while.
        self._draining = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()
