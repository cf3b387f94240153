"""The real server in a subprocess, static pages on other origins, and Debian's Chromium.

Nothing here downloads a browser: Playwright only drives the Chromium that apt installed
(`make e2e`; CI installs it). A missing Chromium fails the run rather than skipping it.
"""

import functools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Request, Route, async_playwright

from tests.support.auth import TEST_SECRET

STATIC_DIR = Path(__file__).parent / "static"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# A name that resolves to 127.0.0.1 inside Chromium only. Swagger UI treats "localhost"
# specially, so the docs are also loaded under a host name, as a deployment serves them.
DOCS_HOST = "tasks-api.test"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", DOCS_HOST})
# From the machine facts: without the background-networking flags Chromium keeps calling
# Google's hosts, which a closed network refuses. Playwright adds --headless, --no-sandbox
# (as root) and a fresh --user-data-dir itself.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    f"--host-resolver-rules=MAP {DOCS_HOST} 127.0.0.1",
]
SERVER_START_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class StaticSite:
    """`tests/e2e/static` served on its own port: a browser origin of its own."""

    server: ThreadingHTTPServer
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@contextmanager
def _static_site() -> Iterator[StaticSite]:
    handler = functools.partial(_QuietHandler, directory=str(STATIC_DIR))
    site = StaticSite(ThreadingHTTPServer(("127.0.0.1", 0), handler))
    try:
        yield site
    finally:
        site.close()


@pytest.fixture(scope="session")
def allowed_site() -> Iterator[StaticSite]:
    with _static_site() as site:
        yield site


@pytest.fixture(scope="session")
def disallowed_site() -> Iterator[StaticSite]:
    with _static_site() as site:
        yield site


@dataclass(frozen=True)
class Server:
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def docs_url(self) -> str:
        return f"http://{DOCS_HOST}:{self.port}"


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"tasks-api run exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"tasks-api run was not ready in {SERVER_START_SECONDS} s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def server(database_url: str, allowed_site: StaticSite) -> Iterator[Server]:
    """`tasks-api run`, as a developer starts it, on the suite's migrated database."""
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "e2e-server.log"
    port = _free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_SECRET,
        "CORS_ORIGINS": allowed_site.origin,
        "LOG_LEVEL": "WARNING",
    }
    command = [Path(sys.executable).with_name("tasks-api"), "run", "--host", "127.0.0.1"]
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 (our own entry point)
            [*command, "--port", str(port)], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        running = Server(port)
        _wait_until_ready(process, running.url, log)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def api(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """The served API, seen from outside any browser."""
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `apt-get install chromium` (Debian's), or set "
            "CHROMIUM to another binary; the e2e tests never download a browser"
        )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()


@dataclass
class Traffic:
    """Every request a page made, and the ones that tried to leave the machine."""

    requests: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)

    def record(self, request: Request) -> bool:
        self.requests.append(f"{request.method} {request.url}")
        local = urlsplit(request.url).hostname in LOCAL_HOSTS
        if not local:
            self.external.append(request.url)
        return local


@pytest.fixture
async def offline_context(browser: Browser) -> AsyncIterator[tuple[BrowserContext, Traffic]]:
    """A fresh profile whose network ends at this machine: any other host is aborted."""
    traffic = Traffic()

    async def only_local(route: Route) -> None:
        if traffic.record(route.request):
            await route.continue_()
        else:
            await route.abort("blockedbyclient")

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.route("**/*", only_local)
    yield context, traffic
    await context.close()


@pytest.fixture
async def watched_context(browser: Browser) -> AsyncIterator[tuple[BrowserContext, Traffic]]:
    """A fresh profile whose requests are only watched, never intercepted.

    With interception on, Playwright answers CORS preflights itself, which would hide what
    the API answers them; so the CORS tests look at the traffic without routing it.
    """
    traffic = Traffic()
    context = await browser.new_context()
    context.on("request", traffic.record)
    yield context, traffic
    await context.close()
