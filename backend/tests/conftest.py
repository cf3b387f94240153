from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from tasks_api.config import Settings
from tasks_api.main import create_app
from tests.support import pgbouncer
from tests.support.auth import TEST_SECRET, User
from tests.support.database import OWNER_PASSWORD, OWNER_ROLE, TestCluster, alembic, test_cluster
from tests.support.openapi import OpenAPIChecker

ALLOWED_ORIGIN = "http://localhost:5173"


@pytest.fixture(scope="session")
def cluster() -> Iterator[TestCluster]:
    with test_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
async def database_url(cluster: TestCluster) -> AsyncIterator[str]:
    """One migrated database for the session, owned by the Neon-like owner role."""
    await cluster.ensure_owner_role()
    name = await cluster.create_database("tasks_test")
    url = cluster.owner_url(name)
    await alembic(url, "upgrade", "head")
    yield url
    await cluster.drop_database(name)


@pytest.fixture(scope="session")
def app_database_url(cluster: TestCluster, database_url: str) -> Iterator[str]:
    """What the API's engine connects to: direct, or through PgBouncer with TEST_PGBOUNCER=1."""
    if not pgbouncer.wanted():
        yield database_url
        return
    with pgbouncer.pgbouncer(cluster.admin_url, {OWNER_ROLE: OWNER_PASSWORD}) as bouncer:
        yield bouncer.url(make_url(database_url).database or "", OWNER_ROLE, OWNER_PASSWORD)


@pytest.fixture(scope="session")
def settings(app_database_url: str, database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        database_url=app_database_url,
        # LISTEN needs a session: behind PgBouncer the listener connects directly.
        database_direct_url=database_url if app_database_url != database_url else None,
        jwt_secret=TEST_SECRET,
        cors_origins=[ALLOWED_ORIGIN],
        db_pool_size=5,
        db_max_overflow=60,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
def openapi(app: FastAPI) -> OpenAPIChecker:
    return OpenAPIChecker(app.openapi())


@pytest.fixture
async def client(app: FastAPI, openapi: OpenAPIChecker) -> AsyncIterator[httpx.AsyncClient]:
    async def check(response: httpx.Response) -> None:
        await response.aread()
        openapi.check(response)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks={"response": [check]}
    ) as client:
        yield client


@pytest.fixture
def alice() -> User:
    return User()


@pytest.fixture
def bob() -> User:
    return User()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection as the owner role, for looking behind the API."""
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
def create_task(client: httpx.AsyncClient) -> Any:
    async def create(user: User, **fields: Any) -> dict[str, Any]:
        body = {"title": "A task", **fields}
        response = await client.post(user.tasks_url, json=body, headers=user.headers)
        assert response.status_code == 201, response.text
        return response.json()["data"]

    return create


@pytest.fixture
def sent_sql(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL text of every statement sent on any asyncpg connection during the test."""
    sent: list[str] = []
    for name in ("execute", "fetch", "fetchrow", "fetchval"):
        original = getattr(asyncpg.Connection, name)

        def recorder(
            self: asyncpg.Connection, query: str, *args: Any, _original: Any = original, **kw: Any
        ) -> Any:
            sent.append(query)
            return _original(self, query, *args, **kw)

        monkeypatch.setattr(asyncpg.Connection, name, recorder)
    return sent
