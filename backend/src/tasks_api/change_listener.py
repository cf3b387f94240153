"""One LISTEN connection per instance: a commit anywhere wakes this instance's streams.

The write triggers run `pg_notify('task_changes', user_id)` inside the writing transaction,
so PostgreSQL delivers it at commit, to every instance. The payload names the user, never
a task: each woken stream reads its own changes under row-level security.

The connection is held only while the instance has open streams (and up to one check
interval after the last one closes): an idle session does not keep a Neon compute awake,
but the listener's ping and its reconnects would, so with nobody streaming there is no
listener at all and the compute can scale to zero (README, "Live changes on Neon").
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from tasks_api.change_hub import ChangeHub
from tasks_api.config import Settings
from tasks_api.database_url import listen_url, to_asyncpg

logger = logging.getLogger(__name__)

CHANNEL = "task_changes"
# asyncpg.connect's own keywords; the rest of `to_asyncpg`'s connect_args are SQLAlchemy's.
_ASYNCPG_ARGS = {"ssl", "direct_tls", "server_settings", "target_session_attrs"}
_FIRST_RETRY_DELAY = 0.2
_MAX_RETRY_DELAY = 5.0
# A connection that dies silently (a network partition) is found by this ping, and a
# listener with no stream left to wake closes at the next one.
PING_INTERVAL_SECONDS = 30.0

Connect = Callable[[], Awaitable[asyncpg.Connection]]


def connector(settings: Settings) -> Connect:
    """Opens the listening connection: DATABASE_DIRECT_URL, a Neon direct host, or
    DATABASE_URL (see database_url.listen_url)."""
    if settings.database_url is None:
        raise RuntimeError("DATABASE_URL is not set")
    direct = settings.database_direct_url
    url_text, warning = listen_url(
        settings.database_url.get_secret_value(),
        direct.get_secret_value() if direct is not None else None,
    )
    if warning:
        logger.warning(warning)
    url, connect_args = to_asyncpg(url_text)
    _, kwargs = PGDialect_asyncpg().create_connect_args(url)
    kwargs.update({k: v for k, v in connect_args.items() if k in _ASYNCPG_ARGS})
    kwargs.setdefault("server_settings", {}).setdefault("application_name", "tasks-api")
    kwargs["port"] = connect_args.get("port", kwargs.get("port"))
    timeout = connect_args.get("timeout", settings.db_connect_timeout)

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(timeout=timeout, **kwargs)

    return connect


class ChangeListener:
    def __init__(
        self, connect: Connect, hub: ChangeHub, *, ping_interval: float = PING_INTERVAL_SECONDS
    ) -> None:
        self._connect = connect
        self._hub = hub
        self._ping_interval = ping_interval
        self._task: asyncio.Task[None] | None = None
        self._connection: asyncpg.Connection | None = None
        self._stopping = False
        # Set while LISTEN is in place (tests wait for it).
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="change-listener")

    async def stop(self) -> None:
        self._stopping = True
        connection = self._connection
        if connection is not None and not connection.is_closed():
            # A clean Terminate: the server does not count the session as abandoned.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 2)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = _FIRST_RETRY_DELAY
        while not self._stopping:
            await self._hub.in_use.wait()
            try:
                await self._listen()
                delay = _FIRST_RETRY_DELAY  # it was up: the next loss starts a fresh backoff
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("change listener: no connection (%r); retrying", exc)
            # Jitter, so a fleet of instances does not reconnect in lockstep.
            await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311
            delay = min(delay * 2, _MAX_RETRY_DELAY)

    async def _listen(self) -> None:
        connection = await self._connect()
        self._connection = connection
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._notified)
            self.listening.set()
            logger.info("change listener: listening on %s", CHANNEL)
            # Notifications sent while nobody listened are lost: every stream reads again
            # from its own position, so nothing committed in the gap is missed.
            self._hub.wake_all()
            while not lost.is_set():
                try:
                    async with asyncio.timeout(self._ping_interval):
                        await lost.wait()
                except TimeoutError:
                    if not self._hub.in_use.is_set():
                        logger.info("change listener: no open stream; connection closed")
                        await connection.close(timeout=self._ping_interval)
                        return
                    await connection.execute("SELECT 1", timeout=self._ping_interval)
            if not self._stopping:
                logger.warning("change listener: connection lost; reconnecting")
        finally:
            self.listening.clear()
            self._connection = None
            if not connection.is_closed():
                connection.terminate()

    def _notified(self, _connection: Any, _pid: int, _channel: str, user_id: str) -> None:
        self._hub.wake(user_id)
