"""Test databases on a real PostgreSQL: the embedded server, or TEST_DATABASE_URL's.

The migrations and the API run as `tasks_owner`, a role made like Neon's owner role:
LOGIN and CREATEROLE, no SUPERUSER, owner of its database. So role creation, grants
and the per-transaction role switch are exercised the way production runs them.
"""

import asyncio
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy.engine import make_url

from tests.support.auth import User

if TYPE_CHECKING:
    from tasks_api.embedded_db import EmbeddedPostgres

OWNER_ROLE = "tasks_owner"
OWNER_PASSWORD = "tasks_owner_test_password"


class TestCluster:
    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def url_for(self, database: str, user: str, password: str | None = None) -> str:
        url = make_url(self.admin_url).set(
            drivername="postgresql", database=database, username=user, password=password
        )
        return url.render_as_string(hide_password=False)

    async def _admin(self) -> asyncpg.Connection:
        url = make_url(self.admin_url)
        host = url.query.get("host") or url.host
        port = url.query.get("port") or url.port
        return await asyncpg.connect(
            host=str(host),
            port=int(str(port)) if port else None,
            user=url.username,
            password=url.password,
            database=url.database or "postgres",
        )

    async def ensure_owner_role(self) -> None:
        admin = await self._admin()
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", OWNER_ROLE)
            if not exists:
                await admin.execute(
                    f"CREATE ROLE {OWNER_ROLE} LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS "
                    f"PASSWORD '{OWNER_PASSWORD}'"
                )
        finally:
            await admin.close()

    async def create_database(self, prefix: str) -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        admin = await self._admin()
        try:
            await admin.execute(f'CREATE DATABASE "{name}" OWNER {OWNER_ROLE}')
            # PostgreSQL 15+ gives the public schema to pg_database_owner; older ones do not.
            await admin.execute(f'GRANT ALL ON DATABASE "{name}" TO {OWNER_ROLE}')
        finally:
            await admin.close()
        schema_owner = await asyncpg.connect(self.url_for(name, self.admin_user))
        try:
            await schema_owner.execute(f"ALTER SCHEMA public OWNER TO {OWNER_ROLE}")
        finally:
            await schema_owner.close()
        return name

    @property
    def admin_user(self) -> str:
        return make_url(self.admin_url).username or "postgres"

    async def drop_database(self, name: str) -> None:
        admin = await self._admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    def owner_url(self, database: str) -> str:
        return self.url_for(database, OWNER_ROLE, OWNER_PASSWORD)


@contextmanager
def test_cluster() -> Iterator[TestCluster]:
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield TestCluster(given)
        return
    from tasks_api.embedded_db import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="tasks-api-test-pg-") as tmp:
        data_dir = Path(tmp) / "data"
        # The server runs as its own system user when we are root: it must reach its dir.
        os.chmod(tmp, 0o755)  # noqa: S103
        server = _with_connection_limit(EmbeddedPostgres(data_dir), data_dir)
        try:
            yield TestCluster(server.url())
        finally:
            server.stop()


# The suite holds up to ~100 connections at its peak (the session app's pool, the racing
# tests' overflow, the apps of the event, instance and schemathesis tests, their listeners):
# PostgreSQL's default of 100 left no headroom, and a slow machine closing connections late
# ran out of slots.
MAX_CONNECTIONS = 300


def _with_connection_limit(server: "EmbeddedPostgres", data_dir: Path) -> "EmbeddedPostgres":
    async def configure() -> None:
        connection = await asyncpg.connect(server.url())
        try:
            await connection.execute(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
        finally:
            await connection.close()

    from tasks_api.embedded_db import EmbeddedPostgres

    asyncio.run(configure())
    server.stop()  # max_connections takes a restart
    return EmbeddedPostgres(data_dir)


def run_alembic(url: str, action: str, revision: str) -> None:
    """Alembic's env.py runs its own event loop, so it gets a thread of its own."""
    from alembic.config import Config

    from alembic import command
    from tasks_api.cli import BACKEND_DIR

    config = Config(str(BACKEND_DIR / "alembic.ini"))
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    getattr(command, action)(config, revision)


async def alembic(url: str, action: str, revision: str) -> None:
    await asyncio.to_thread(run_alembic, url, action, revision)


@asynccontextmanager
async def as_user(db: asyncpg.Connection, user: User) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on a raw connection as the app role for `user`, as the API runs."""
    async with db.transaction():
        await db.execute(
            "SELECT set_config('role', 'tasks_app', true), set_config('app.user_id', $1, true)",
            user.id,
        )
        yield db


async def lock_waits(
    watcher: asyncpg.Connection, request: "asyncio.Task[Any]", locktype: str
) -> int:
    """How many lock requests of `locktype` wait, once one does or `request` has finished
    (at most ~5 s): a test's way to know its request is blocked behind the lock it holds."""
    waiting = 0
    for _ in range(500):
        waiting = await watcher.fetchval(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = $1", locktype
        )
        if waiting or request.done():
            break
        await asyncio.sleep(0.01)
    return waiting
