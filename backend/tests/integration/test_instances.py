"""Two API instances (two `tasks-api run` processes) on one database: a write through one
reaches a stream on the other within a second, with PostgreSQL as the only broker; and a
SIGTERM does not wait for open streams."""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tasks_api.config import Settings
from tests.support.auth import TEST_SECRET, User
from tests.support.live import free_port, open_stream

START_SECONDS = 60
FAN_OUT_SECONDS = 1.0  # API.md, Live changes
# Without sse-starlette's shutdown hook uvicorn would wait for the stream forever.
SHUTDOWN_SECONDS = 15


@dataclass
class Instance:
    process: asyncio.subprocess.Process
    url: str
    log: Path


@asynccontextmanager
async def instance(settings: Settings, log: Path) -> AsyncIterator[Instance]:
    assert settings.database_url is not None
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "JWT_SECRET": TEST_SECRET,
        "LOG_LEVEL": "WARNING",
    }
    if settings.database_direct_url is not None:
        env["DATABASE_DIRECT_URL"] = settings.database_direct_url.get_secret_value()
    port = free_port()
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "tasks_api.cli", "run", "--host", "127.0.0.1"],
            *["--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    running = Instance(process, f"http://127.0.0.1:{port}", log)
    try:
        await _wait_until_ready(running)
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _wait_until_ready(running: Instance) -> None:
    deadline = time.monotonic() + START_SECONDS
    async with httpx.AsyncClient(base_url=running.url, timeout=2) as client:
        while time.monotonic() < deadline:
            if running.process.returncode is not None:
                pytest.fail(f"the instance exited:\n{running.log.read_text()}")
            try:
                if (await client.get("/health/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"the instance was not ready:\n{running.log.read_text()}")


async def test_a_write_through_one_instance_reaches_a_stream_on_the_other(
    settings: Settings, tmp_path: Path, alice: User
) -> None:
    async with (
        instance(settings, tmp_path / "a.log") as first,
        instance(settings, tmp_path / "b.log") as second,
        httpx.AsyncClient(base_url=first.url, timeout=10) as writer,
        httpx.AsyncClient(base_url=second.url, timeout=10) as reader,
    ):
        async with open_stream(reader, f"/api/{alice.id}/events", alice.headers) as stream:
            # The second instance's listener may still be connecting: the first event can
            # come from its catch-up, so latency is measured from the second write on.
            latencies = []
            for i in range(6):
                created = await writer.post(
                    alice.tasks_url, json={"title": f"via A {i}"}, headers=alice.headers
                )
                assert created.status_code == 201
                written = time.monotonic()
                event = await stream.next_event()
                assert event is not None
                assert event.data is not None
                assert created.json()["data"]["id"] in event.data
                latencies.append(time.monotonic() - written)
        assert max(latencies[1:]) < FAN_OUT_SECONDS, latencies

        # SIGTERM with a stream open: the stream ends and the process exits at once.
        async with open_stream(reader, f"/api/{alice.id}/events", alice.headers) as stream:
            second.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            while (block := await stream.next()) is not None:
                assert block.event is None
            code = await asyncio.wait_for(second.process.wait(), SHUTDOWN_SECONDS)
        assert code in (0, -signal.SIGTERM), second.log.read_text()
        assert time.monotonic() - started < SHUTDOWN_SECONDS
