"""Engine, transactions, and the per-transaction switch to the application role and user."""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.sql import ClauseElement

from tasks_api.config import Settings
from tasks_api.database_url import to_asyncpg, uses_transaction_pooler
from tasks_api.db_pool import SteadyQueuePool

logger = logging.getLogger(__name__)

# Created by the first migration; it has no BYPASSRLS, so the policies on `tasks` hold for it.
APP_ROLE = "tasks_app"
USER_SETTING = "app.user_id"

_DIALECT = PGDialect_asyncpg()


class Query:
    """A statement built with SQLAlchemy Core over the SQLModel tables, compiled once.

    Requests run it on the pooled asyncpg connection directly: no per-execution cache key,
    compilation, greenlet switch or result processing (SQLAlchemy's Session was a third of
    the API's CPU time per request; see specs/performance.md).
    """

    __slots__ = ("_constants", "_names", "sql")

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        self.sql = str(compiled)
        self._names = tuple(compiled.positiontup or ())
        # Values SQLAlchemy bound itself (the 1 of `version + 1`), by name, and the model's
        # scalar column defaults it would otherwise fill in at execution.
        self._constants = {k: v for k, v in compiled.params.items() if v is not None}
        for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
            if column.default is not None and column.default.is_scalar:
                self._constants[column.key] = column.default.arg

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        constants = self._constants
        return [params[n] if n in params else constants[n] for n in self._names]


def _literal(value: str) -> str:
    """A string literal whose meaning does not depend on standard_conforming_strings."""
    if "\x00" in value:
        raise ValueError("NUL cannot be sent to PostgreSQL")
    return "E'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def begin_script(user_id: str, statement_timeout_ms: str, retention_days: str = "30") -> str:
    """BEGIN and the switch to APP_ROLE for `user_id`, as one simple-protocol round trip.

    Every setting is local to the transaction (SET LOCAL), as PostgREST does it: nothing
    outlives the transaction, so a transaction-mode pooler is safe and the next user of
    the connection starts clean. SET statements, not `SELECT set_config(...)`: a utility
    statement is neither analysed nor planned, ~55,000 fewer instructions in PostgreSQL on
    every request (the simple protocol caches no plan). The user id is a verified token's
    claim, sent as a quoted literal because the simple protocol, the only one that takes
    several statements in one message, has no parameters.
    """
    return (
        f"BEGIN; SET LOCAL ROLE {APP_ROLE}; "
        f"SET LOCAL {USER_SETTING} = {_literal(user_id)}; "
        f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}; "
        # Read by the write triggers when they purge expired tombstones (migration 0004).
        f"SET LOCAL app.sync_retention_days = {int(retention_days)}"
    )


# Backoff between connect attempts: 0.1 s doubling to 1 s, with jitter so that a fleet of
# instances does not reconnect in lockstep.
_FIRST_RETRY_DELAY = 0.1
_MAX_RETRY_DELAY = 1.0
# statement_timeout cancels a slow query on the server; this client-side bound, a little
# later, catches a server that has stopped answering at all.
_COMMAND_TIMEOUT_MARGIN = 5.0


def _is_transient(exc: BaseException) -> bool:
    """A database that is starting, restarting or unreachable, as opposed to misconfigured."""
    if isinstance(exc, OSError | TimeoutError):  # refused, reset, no socket yet, timed out
        return True
    sqlstate = getattr(exc, "sqlstate", None) or ""
    # 08: connection failure (PgBouncer's "no server connection" too); 57P01-03: shutting
    # down, crashed, starting up.
    return sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03"}


class _Connector:
    """Opens asyncpg connections, retrying a database that is waking up or restarting.

    A cold start (Neon resuming a suspended compute, a restart, a failover) gets `budget`
    seconds in all, attempts included, with backoff. Once a connect has used up its budget
    the database is taken for down, and each later connect makes a single attempt until one
    succeeds: during an outage requests are answered 503 at once rather than each one
    waiting out the budget, and a database that comes back is used at the first attempt.
    """

    def __init__(self, budget: float) -> None:
        self._budget = budget
        self._down = False

    async def __call__(self, *args: Any, **kwargs: Any) -> asyncpg.Connection:
        deadline = time.monotonic() + float(kwargs.pop("timeout", self._budget))
        delay = _FIRST_RETRY_DELAY
        attempt = 1
        while True:
            remaining = deadline - time.monotonic()
            try:
                connection = await asyncpg.connect(*args, timeout=max(remaining, 0.05), **kwargs)
            except Exception as exc:
                remaining = deadline - time.monotonic()
                if not _is_transient(exc):
                    raise
                if self._down or remaining <= delay:
                    if not self._down:
                        logger.warning("database unreachable after %d attempts: %r", attempt, exc)
                    self._down = True
                    raise
                logger.info("database not reachable yet (attempt %d): %r", attempt, exc)
                await asyncio.sleep(random.uniform(delay / 2, delay))  # noqa: S311
                delay = min(delay * 2, _MAX_RETRY_DELAY)
                attempt += 1
                continue
            if self._down:
                logger.warning("database reachable again")
                self._down = False
            return connection


class Database:
    def __init__(self, settings: Settings) -> None:
        if settings.database_url is None:
            raise RuntimeError("DATABASE_URL is not set")
        url, connect_args = to_asyncpg(settings.database_url.get_secret_value())
        # The whole connect, retries included, fits in DB_CONNECT_TIMEOUT (or the URL's
        # connect_timeout), so a request waits at most that long for a new connection.
        connect_args.setdefault("timeout", settings.db_connect_timeout)
        connect_args.setdefault("server_settings", {}).setdefault("application_name", "tasks-api")
        if settings.db_statement_timeout_ms > 0:
            connect_args.setdefault(
                "command_timeout",
                settings.db_statement_timeout_ms / 1000 + _COMMAND_TIMEOUT_MARGIN,
            )
        self.transaction_pooler = uses_transaction_pooler(connect_args)
        if self.transaction_pooler:
            logger.info("transaction pooler: prepared statements are unnamed and not cached")
        # SQLAlchemy's asyncpg dialect opens connections with this callable when given one.
        connect_args["async_creator_fn"] = _Connector(connect_args["timeout"])
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_recycle=settings.db_pool_recycle,
            # A request waits this long for a pooled connection before it is answered 503.
            pool_timeout=settings.db_pool_timeout,
            poolclass=SteadyQueuePool,
            # Pre-ping, without a round trip per request: see _check_alive.
            pool_pre_ping=False,
            # The connection used last is handed out first: it is the one least likely to
            # need that ping, and the surplus ones stay idle long enough to be recycled.
            pool_use_lifo=True,
            # Transactions end with our own COMMIT or ROLLBACK (Transaction).
            pool_reset_on_return=None,
            connect_args=connect_args,
        )
        event.listen(self.engine.sync_engine, "connect", _stamp)
        event.listen(self.engine.sync_engine, "checkin", _stamp)
        event.listen(self.engine.sync_engine, "checkout", _check_alive)
        self.statement_timeout = str(settings.db_statement_timeout_ms)
        self.retention_days = str(settings.sync_retention_days)
        # Requests queue here, first come first served, for one of the pool's connections.
        # The pool's own queue lets a newcomer take a connection that was handed to a
        # waiter, which then queues again at the back: under load most requests went
        # through at once while a few waited seconds (p99 6x the median, max ~4 s).
        self._slots = asyncio.Semaphore(settings.db_pool_size + settings.db_max_overflow)
        self._slot_timeout = settings.db_pool_timeout
        self.waiting = 0  # requests in that line now (/metrics)

    def transaction(self, user_id: str) -> "Transaction":
        return Transaction(self, user_id)

    async def _take_slot(self) -> None:
        """Wait in line for a connection; after DB_POOL_TIMEOUT, TimeoutError (a 503)."""
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns without suspending
            return
        self.waiting += 1
        try:
            async with asyncio.timeout(self._slot_timeout):
                await self._slots.acquire()
        finally:
            self.waiting -= 1

    def _give_slot(self) -> None:
        self._slots.release()

    async def ping(self) -> None:
        # In the same line as requests: outside it, the probe's connection would go to
        # whichever request was let in next, and a busy instance would report not ready.
        await self._take_slot()
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        finally:
            self._give_slot()

    async def dispose(self) -> None:
        await self.engine.dispose()
        logger.info("database pool closed")


class Transaction:
    """One unit of work: one pooled connection, one transaction, run as APP_ROLE for one
    user. The services open one per request with `async with`:

        async with database.transaction(user_id) as tx:
            row = await tx.fetchrow(...)

    It commits when the block ends, rolls back on an error and drops the connection when
    the request is cancelled, so the commit happens before the response is built: a failed
    commit is an error response, never a 2xx for lost data. The connection is taken on the
    first query, so a request rejected by validation never touches the database. Three
    round trips for a one-statement request: BEGIN with the role switch, the statement,
    COMMIT.
    """

    __slots__ = ("_connection", "_database", "_entry", "_user_id")

    def __init__(self, database: Database, user_id: str) -> None:
        self._database = database
        self._user_id = user_id
        self._entry: PoolProxiedConnection | None = None
        self._connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> "Transaction":
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.commit()
        elif issubclass(exc_type, Exception):
            await self.rollback()
        else:
            self.discard()  # cancelled: no await may be relied on any more

    async def fetch(self, query: Query, **params: Any) -> list[asyncpg.Record]:
        connection = self._connection or await self._begin()
        return await connection.fetch(query.sql, *query.args(params))

    async def fetchrow(self, query: Query, **params: Any) -> asyncpg.Record | None:
        connection = self._connection or await self._begin()
        return await connection.fetchrow(query.sql, *query.args(params))

    async def _begin(self) -> asyncpg.Connection:
        database = self._database
        await database._take_slot()
        try:
            self._entry = await database.engine.raw_connection()
        except BaseException:
            database._give_slot()
            raise
        connection: asyncpg.Connection = self._entry.driver_connection
        try:
            await connection.execute(
                begin_script(
                    self._user_id,
                    database.statement_timeout,
                    database.retention_days,
                )
            )
        except BaseException:
            self.discard()
            raise
        self._connection = connection
        return connection

    async def commit(self) -> None:
        await self._end("COMMIT")  # a failed COMMIT discards the connection (_end)

    async def rollback(self) -> None:
        # The error that caused the rollback is the one to report, not a failed ROLLBACK.
        with contextlib.suppress(Exception):
            await self._end("ROLLBACK")

    def discard(self) -> None:
        """Drop the connection now, with no round trip and nothing to await: for a
        cancelled request (every later await would be cancelled too) or a transaction in
        an unknown state. The pool opens a new connection in its place."""
        entry, self._entry = self._entry, None
        self._connection = None
        if entry is None:
            return
        with contextlib.suppress(Exception):
            entry.driver_connection.terminate()
        entry.detach()
        self._database._give_slot()

    async def _end(self, command: str) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            await connection.execute(command)
        except BaseException:
            # A connection whose transaction did not end cleanly is not given to anyone else.
            self.discard()
            raise
        self._connection = None
        entry, self._entry = self._entry, None
        if entry is not None:
            # Synchronous: a checkin only queues or parks the connection (SteadyQueuePool
            # closes surplus ones at checkout, which runs in SQLAlchemy's greenlet), so no
            # greenlet is spawned to give it back.
            try:
                entry.close()
            finally:
                self._database._give_slot()


# A pooled connection idle longer than this is pinged before use (SQLAlchemy's pre-ping);
# a busy pool's connections are younger, so they cost no round trip.
PRE_PING_AFTER_SECONDS = 1.0


def _stamp(_dbapi_connection: Any, record: ConnectionPoolEntry, *_args: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _check_alive(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    """Hand out no dead connection: one the server closed (restart, Neon suspending its
    compute) is known to asyncpg at no cost; one idle a while is pinged as well."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("connection closed while pooled")
    if time.monotonic() - record.info.get("idle_since", 0.0) > PRE_PING_AFTER_SECONDS:
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("pre-ping failed") from exc
