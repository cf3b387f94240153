"""Who is streaming on this instance: per user, the open event streams and their wake-ups.

A wake-up is an asyncio.Event per stream: setting one that is already set does nothing, so a
burst of notifications costs each stream one read of the feed, never a queue that grows.
"""

import asyncio
import uuid
from collections.abc import Callable

from tasks_api.errors import TooManyRequests


class Subscription:
    """One open stream's place: `woken` is set when its user's data may have changed."""

    __slots__ = ("_hub", "ended", "user_id", "woken")

    def __init__(self, hub: "ChangeHub", user_id: str) -> None:
        self._hub = hub
        self.user_id = user_id
        self.woken = asyncio.Event()
        # Set when the server shuts down: the stream ends at its next wait.
        self.ended = False

    def end(self) -> None:
        self.ended = True
        self.woken.set()

    def close(self) -> None:
        """Give the place back; safe to call more than once."""
        self._hub._remove(self)


class ChangeHub:
    def __init__(self, max_streams_per_user: int, concurrent_reads: int = 5) -> None:
        self._max = max_streams_per_user
        # Woken streams read the feed through this: after a reconnect wakes a thousand of
        # them at once they take turns, instead of taking every pooled connection from
        # the requests (and timing out in the pool's line themselves).
        self.reads = asyncio.Semaphore(concurrent_reads)
        self._streams: dict[str, set[Subscription]] = {}
        # Set while any stream is open: the listener only holds its connection then.
        self.in_use = asyncio.Event()
        # This instance in task_listeners, and what runs when a user's last stream here
        # closes (event_service.track_listeners: its task_listeners row goes).
        self.instance = str(uuid.uuid4())
        self.on_user_idle: Callable[[str], None] | None = None
        self._registrations: dict[str, asyncio.Lock] = {}

    def registration(self, user_id: str) -> asyncio.Lock:
        """Orders a user's row in task_listeners: added and removed one at a time."""
        return self._registrations.setdefault(user_id, asyncio.Lock())

    def has_streams(self, user_id: str) -> bool:
        return user_id in self._streams

    def open(self, user_id: str) -> Subscription:
        """A place for one more stream of `user_id`, or a 429 when the user has them all."""
        streams = self._streams.setdefault(user_id, set())
        if len(streams) >= self._max:
            raise TooManyRequests
        subscription = Subscription(self, user_id)
        streams.add(subscription)
        self.in_use.set()
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        streams = self._streams.get(subscription.user_id)
        if streams is None:
            return
        streams.discard(subscription)
        if not streams:
            del self._streams[subscription.user_id]
            if not self._streams:
                self.in_use.clear()
            if self.on_user_idle is not None:
                self.on_user_idle(subscription.user_id)

    def wake(self, user_id: str) -> None:
        for subscription in self._streams.get(user_id, ()):
            subscription.woken.set()

    def wake_all(self) -> None:
        """After notifications may have been missed (the listener reconnected)."""
        for streams in self._streams.values():
            for subscription in streams:
                subscription.woken.set()

    def close(self) -> None:
        """The app shuts down: every stream ends."""
        for streams in list(self._streams.values()):
            for subscription in list(streams):
                subscription.end()

    @property
    def open_streams(self) -> int:
        return sum(len(streams) for streams in self._streams.values())
