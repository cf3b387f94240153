"""The change listener after a database restart: it reconnects by itself, and the open
streams catch up from their own positions, so a change committed while nobody listened
still arrives. The module restarts a PostgreSQL of its own (as test_resilience does)."""

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tasks_api.config import Settings
from tasks_api.embedded_db import EmbeddedPostgres
from tasks_api.main import create_app
from tests.integration.test_resilience import Server
from tests.support.auth import TEST_SECRET, User
from tests.support.database import TestCluster as Cluster
from tests.support.database import alembic
from tests.support.live import Stream, open_stream, serve

WAIT_SECONDS = 20


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="tasks-api-listener-pg-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 - the server may run as its own system user
        data_dir = Path(tmp) / "data"
        server = Server(data_dir, EmbeddedPostgres(data_dir))
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
async def app(server: Server) -> AsyncIterator[FastAPI]:
    cluster = Cluster(server.admin_url)
    await cluster.ensure_owner_role()
    server.owner_url = cluster.owner_url(await cluster.create_database("tasks_listener"))
    await alembic(server.owner_url, "upgrade", "head")
    settings = Settings(
        _env_file=None, environment="test", database_url=server.owner_url, jwt_secret=TEST_SECRET
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


async def _event_for(stream: Stream, task: dict[str, object]) -> None:
    event = await stream.next_event()
    assert event is not None
    assert event.data is not None
    assert str(task["id"]) in event.data


async def test_streams_catch_up_after_a_database_restart(app: FastAPI, server: Server) -> None:
    listener = app.state.change_listener
    user = User()
    # The listener's reconnect waits at this gate, so the test can commit a change while
    # nobody listens: its notification is lost for good.
    gate = asyncio.Event()
    connect = listener._connect

    async def gated_connect() -> asyncpg.Connection:
        await gate.wait()
        return await connect()

    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
        open_stream(http, f"/api/{user.id}/events", user.headers) as stream,
    ):
        await asyncio.wait_for(listener.listening.wait(), WAIT_SECONDS)  # a stream is open
        before = await http.post(user.tasks_url, json={"title": "a"}, headers=user.headers)
        await _event_for(stream, before.json()["data"])

        listener._connect = gated_connect
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        async with asyncio.timeout(WAIT_SECONDS):
            # The loss is seen without a ping; the listener offers no event for it.
            while listener.listening.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.05)

        during = await http.post(user.tasks_url, json={"title": "b"}, headers=user.headers)
        assert during.status_code == 201, during.text
        gate.set()
        await asyncio.wait_for(listener.listening.wait(), WAIT_SECONDS)
        # The same stream, still open, gets the change it was never notified of.
        await _event_for(stream, during.json()["data"])
        after = await http.post(user.tasks_url, json={"title": "c"}, headers=user.headers)
        await _event_for(stream, after.json()["data"])
