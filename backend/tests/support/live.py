"""A real HTTP server for an app of the test process, and a small SSE client.

httpx's ASGI transport collects a whole response before it returns, which an endless event
stream never finishes: streams are read over a socket from uvicorn serving the same app.
"""

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

# Long enough for a loaded CI machine; a stream that says nothing this long has failed.
EVENT_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """uvicorn on a free port for an app whose lifespan the caller runs; yields its URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Event:
    event: str | None = None
    data: str | None = None
    id: str | None = None
    comments: list[str] = field(default_factory=list)


class Stream:
    """One open `GET .../events`, read event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> Event | None:
        """The next event or comment block; None when the server ended the stream."""
        async with asyncio.timeout(EVENT_TIMEOUT):
            block = Event()
            seen = False
            async for line in self._lines:
                if line == "":
                    if seen:
                        return block
                    continue
                seen = True
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    block.comments.append(value)
                elif name in ("event", "data", "id"):
                    setattr(block, name, value)
            return None

    async def next_event(self) -> Event | None:
        """The next real event, skipping comment blocks (keep-alives)."""
        while True:
            block = await self.next()
            if block is None or block.event is not None:
                return block


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any
) -> AsyncIterator[Stream]:
    request = client.build_request("GET", url, headers=headers, params=params)
    response = await client.send(request, stream=True)
    try:
        assert response.status_code == 200, (await response.aread()).decode()
        yield Stream(response)
    finally:
        await response.aclose()
