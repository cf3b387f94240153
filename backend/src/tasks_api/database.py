"""Engine, sessions, and the per-transaction switch to the application role and user."""

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction

from tasks_api.auth.dependencies import CurrentUserId
from tasks_api.config import Settings
from tasks_api.database_url import to_asyncpg, uses_transaction_pooler

logger = logging.getLogger(__name__)

# Created by the first migration; it has no BYPASSRLS, so the policies on `tasks` hold for it.
APP_ROLE = "tasks_app"
USER_SETTING = "app.user_id"

# One round trip switches the role and sets the user for this transaction only (is_local),
# as PostgREST does; nothing outlives the transaction, so a transaction-mode pooler is safe.
_ACT_AS_USER = text(
    "SELECT set_config('role', :role, true), set_config('app.user_id', :user_id, true), "
    "set_config('statement_timeout', :timeout, true)"
)


class UserScopedSession(Session):
    """A session whose every transaction runs as APP_ROLE for `info["user_id"]`."""


@event.listens_for(UserScopedSession, "after_begin")
def _act_as_user(session: Session, _tx: SessionTransaction, connection: Connection) -> None:
    connection.execute(
        _ACT_AS_USER,
        {
            "role": APP_ROLE,
            # An empty user matches no row: a session without a user sees nothing.
            "user_id": session.info.get("user_id", ""),
            "timeout": session.info.get("statement_timeout", "0"),
        },
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
            # A connection that died while pooled (restart, Neon suspending) is found out
            # and replaced on checkout, and the rest of the pool is invalidated with it.
            pool_pre_ping=True,
            connect_args=connect_args,
        )
        self._statement_timeout = str(settings.db_statement_timeout_ms)
        self._sessions = async_sessionmaker(
            self.engine, sync_session_class=UserScopedSession, expire_on_commit=False
        )

    def session(self, user_id: str) -> AsyncSession:
        info: dict[str, Any] = {"user_id": user_id, "statement_timeout": self._statement_timeout}
        return self._sessions(info=info)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        logger.info("database pool closed")


async def get_session(request: Request, user_id: CurrentUserId) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response is sent.

    The connection is taken from the pool lazily, on the first query, so a request
    rejected by validation never touches the database.
    """
    database: Database = request.app.state.database
    async with database.session(user_id) as session, session.begin():
        yield session


# scope="function": the commit runs before the response is sent, so a failed commit is
# an error response, never a 2xx for lost data.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
