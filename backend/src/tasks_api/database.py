"""Engine, sessions, and the per-transaction switch to the application role and user."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

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
from tasks_api.database_url import to_asyncpg

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


class Database:
    def __init__(self, settings: Settings) -> None:
        if settings.database_url is None:
            raise RuntimeError("DATABASE_URL is not set")
        url, connect_args = to_asyncpg(settings.database_url.get_secret_value())
        connect_args.setdefault("timeout", settings.db_connect_timeout)
        connect_args.setdefault("server_settings", {}).setdefault("application_name", "tasks-api")
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_recycle=settings.db_pool_recycle,
            pool_timeout=settings.db_pool_timeout,
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
