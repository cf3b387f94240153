"""SQLAlchemy's asyncio QueuePool, without the connect/close churn of its overflow.

QueuePool closes an overflow connection whenever it comes back to a queue already
holding `pool_size` idle ones. Under asyncio, requests finish in bursts: the queue fills
for a moment, connections are closed, and the requests that were about to wait open new
ones at once. Measured with the defaults (10 + 20) at 64 concurrent requests: about 45
new connections a second, each a backend fork, and on Neon a TLS and SCRAM handshake.

Here such a connection is parked instead, handed out before a new one is opened, and
closed by a later checkout once it has been surplus for `SURPLUS_IDLE_SECONDS`: the pool
still grows to at most `pool_size + max_overflow` and shrinks back to `pool_size` when
load falls.
"""

import time
from typing import Any

from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util import queue as sqla_queue
from sqlalchemy.util.concurrency import in_greenlet

SURPLUS_IDLE_SECONDS = 30.0


class SteadyQueuePool(AsyncAdaptedQueuePool):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (entry, parked at), oldest first.
        self._parked: list[tuple[ConnectionPoolEntry, float]] = []

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        # Never closes anything, so a checkin needs no greenlet (Transaction._end).
        try:
            self._pool.put(record, False)
        except sqla_queue.Full:
            self._parked.append((record, time.monotonic()))

    def _do_get(self) -> ConnectionPoolEntry:
        self._close_surplus()
        if self._parked:
            return self._parked.pop()[0]
        return super()._do_get()

    def _close_surplus(self) -> None:
        # Closing awaits the driver, which needs SQLAlchemy's greenlet: a checkout runs in
        # one (AsyncEngine.raw_connection), a synchronous checkin does not.
        if not in_greenlet():
            return
        deadline = time.monotonic() - SURPLUS_IDLE_SECONDS
        while self._parked and self._parked[0][1] < deadline:
            record, _ = self._parked.pop(0)
            try:
                record.close()
            finally:
                self._dec_overflow()

    def checkedout(self) -> int:
        return super().checkedout() - len(self._parked)

    def dispose(self) -> None:
        while self._parked:
            record, _ = self._parked.pop()
            try:
                record.close()
            finally:
                self._dec_overflow()
        super().dispose()
