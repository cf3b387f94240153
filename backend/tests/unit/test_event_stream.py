"""The stream response on its own: a reader that stops reading is dropped, its place freed."""

import asyncio
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent
from starlette.types import Message

from tasks_api.change_hub import ChangeHub
from tasks_api.routers.sync import _EventStream


async def test_a_stuck_reader_is_dropped_and_frees_its_place() -> None:
    hub = ChangeHub(max_streams_per_user=1)
    subscription = hub.open("alice")
    other = hub.open("bob")

    async def events() -> AsyncIterator[ServerSentEvent]:
        while True:
            yield ServerSentEvent(data="change")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()  # a client whose socket buffer is full

    async def receive() -> Message:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    response = _EventStream(subscription, events(), ping=0, send_timeout=0.1)
    await asyncio.wait_for(response({"type": "http", "method": "GET"}, receive, send), 5)
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    # Its place is free again; the other user's stream was never held up.
    hub.open("alice").close()
    hub.wake("bob")
    assert other.woken.is_set()
