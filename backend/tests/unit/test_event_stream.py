"""The stream on its own: a stuck reader is dropped, woken streams take turns reading."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import ServerSentEvent
from starlette.types import Message

from tasks_api.change_hub import ChangeHub
from tasks_api.routers.sync import _EventStream
from tasks_api.services import event_service, sync_service
from tasks_api.services.cursor import CursorSigner
from tasks_api.services.sync_service import FeedPage


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


async def test_woken_streams_take_turns_at_the_database(monkeypatch: Any) -> None:
    """A reconnect wakes every stream at once; only `concurrent_reads` read at a time."""
    hub = ChangeHub(max_streams_per_user=10, concurrent_reads=2)
    running = peak = reads = 0
    all_read = asyncio.Event()

    async def read_page(*_args: Any, **_kwargs: Any) -> FeedPage:
        nonlocal running, peak, reads
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        reads += 1
        if reads == 6:
            all_read.set()
        return FeedPage([], 1, has_more=False)

    monkeypatch.setattr(sync_service, "read_page", read_page)
    streams = []
    for i in range(6):
        context = event_service.StreamContext(
            database=None,  # type: ignore[arg-type]
            hub=hub,
            signer=CursorSigner(b"k" * 32),
            user_id=f"user-{i}",
            expires_at=time.time() + 60,
            keepalive_seconds=60,
        )
        events = event_service._events(context, hub.open(context.user_id), FeedPage([], 1, False))
        streams.append(asyncio.create_task(anext(events)))  # waits for a wake-up
    await asyncio.sleep(0)
    hub.wake_all()
    await asyncio.wait_for(all_read.wait(), 5)
    for task in streams:
        task.cancel()
    await asyncio.gather(*streams, return_exceptions=True)
    assert (reads, peak) == (6, 2)
