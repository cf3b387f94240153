"""The pool keeps overflow connections through bursts and lets surplus ones go later."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import event, func, select

from tasks_api import db_pool, exception_handlers
from tasks_api.config import Settings
from tasks_api.database import Database, Query, Transaction
from tasks_api.main import create_app
from tests.support.auth import User

_SLEEP = Query(select(func.pg_sleep(0.05)))


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.model_copy(update={"db_pool_size": 2, "db_max_overflow": 3}))
    yield database
    await database.dispose()


def _count_connects(database: Database) -> list[object]:
    opened: list[object] = []
    event.listen(database.engine.sync_engine, "connect", lambda *args: opened.append(args[0]))
    return opened


async def _burst(database: Database, size: int) -> None:
    async def one() -> None:
        transaction = database.transaction("someone")
        await transaction.fetchrow(_SLEEP)
        await transaction.commit()

    await asyncio.gather(*(one() for _ in range(size)))


async def test_a_second_burst_opens_no_connection(database: Database) -> None:
    opened = _count_connects(database)
    await _burst(database, 5)
    assert len(opened) == 5  # pool_size 2 + max_overflow 3, all needed at once
    for _ in range(3):
        await _burst(database, 5)
    assert len(opened) == 5, "overflow connections were closed and opened again"
    assert database.engine.pool.checkedout() == 0


async def test_surplus_connections_close_once_idle(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _burst(database, 5)
    pool = database.engine.pool
    assert pool.checkedin() + len(pool._parked) == 5  # type: ignore[attr-defined]
    monkeypatch.setattr(db_pool, "SURPLUS_IDLE_SECONDS", 0.0)
    await _burst(database, 1)
    assert pool._parked == []  # type: ignore[attr-defined]
    assert pool.checkedin() == 2  # back to pool_size
    assert pool.checkedout() == 0


_ONE = Query(select(1))


@contextlib.asynccontextmanager
async def _two_connections(settings: Settings, pool_timeout: float) -> AsyncIterator[Database]:
    # Two, so that the open transactions these tests hold also fit behind the test
    # PgBouncer's three server connections (TEST_PGBOUNCER=1).
    database = Database(
        settings.model_copy(
            update={"db_pool_size": 1, "db_max_overflow": 1, "db_pool_timeout": pool_timeout}
        )
    )
    try:
        yield database
    finally:
        await database.dispose()


async def _hold(database: Database, count: int) -> list[Transaction]:
    """`count` open transactions, each holding a connection."""
    held = [database.transaction("someone") for _ in range(count)]
    for transaction in held:
        await transaction.fetchrow(_ONE)
    return held


async def test_a_waiting_request_is_not_overtaken(settings: Settings) -> None:
    # SQLAlchemy's pool queue let a request arriving just as a connection came back take
    # it from the request already waiting, which went to the back of the line again.
    async with _two_connections(settings, pool_timeout=5) as database:
        held = await _hold(database, 2)  # every connection the pool may open
        order: list[str] = []

        async def request(name: str) -> None:
            transaction = database.transaction("someone")
            await transaction.fetchrow(_ONE)
            order.append(name)
            await transaction.commit()

        waiting = asyncio.create_task(request("waiting"))
        await asyncio.sleep(0.05)
        assert database.waiting == 1
        await held.pop().commit()
        await request("newcomer")  # no await between the hand-back and its arrival
        await waiting
        assert order == ["waiting", "newcomer"]
        assert database.waiting == 0
        for transaction in held:
            await transaction.commit()


async def test_the_readiness_ping_waits_in_the_same_line(settings: Settings) -> None:
    async with _two_connections(settings, pool_timeout=5) as database:
        held = await _hold(database, 2)
        order: list[str] = []

        async def ping() -> None:
            await database.ping()
            order.append("ping")

        pinging = asyncio.create_task(ping())
        await asyncio.sleep(0.05)
        assert database.waiting == 1
        await held.pop().commit()
        newcomer = database.transaction("someone")
        await newcomer.fetchrow(_ONE)
        order.append("newcomer")
        await pinging
        assert order == ["ping", "newcomer"]
        await newcomer.commit()
        for transaction in held:
            await transaction.commit()


async def test_a_request_waits_no_longer_than_the_pool_timeout(settings: Settings) -> None:
    async with _two_connections(settings, pool_timeout=0.2) as database:
        held = await _hold(database, 2)
        late = database.transaction("someone")
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError) as waited:
            await late.fetchrow(_ONE)
        assert exception_handlers._is_unavailable(waited.value)  # answered 503
        assert 0.2 <= asyncio.get_running_loop().time() - started < 2
        for transaction in held:
            await transaction.commit()
        # Every connection came back: the next two requests need no wait.
        for transaction in await _hold(database, 2):
            await transaction.rollback()


async def test_over_the_wait_a_request_is_answered_503(settings: Settings) -> None:
    # The overload case of issue #6 end to end: every connection busy for longer than
    # DB_POOL_TIMEOUT, so the request gets a 503 in about that time, not a hang.
    app = create_app(
        settings.model_copy(
            update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": 0.3}
        )
    )
    user = User()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        (busy,) = await _hold(app.state.database, 1)
        started = asyncio.get_running_loop().time()
        response = await client.get(user.tasks_url, headers=user.headers)
        waited = asyncio.get_running_loop().time() - started
        await busy.commit()
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert "Retry-After" in response.headers
        assert 0.3 <= waited < 2
        after = await client.get(user.tasks_url, headers=user.headers)
        assert after.status_code == 200
