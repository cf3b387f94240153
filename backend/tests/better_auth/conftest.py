"""Better Auth's own Node server in front of the API, both as real processes.

`make test-better-auth` installs the pinned npm packages (e2e/better-auth, clients/typescript)
and bundles the typed client's example page; these fixtures start `node server.mjs` (one per
Better Auth configuration) and `tasks-api run` configured as the README says: JWKS_URL,
JWT_ISSUER and JWT_AUDIENCE = the origin of Better Auth's baseURL, no JWT_SECRET.
"""

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

# The browser fixture is shared with the e2e tests (Debian's Chromium, no download).
from tests.e2e.conftest import ARTIFACTS, _free_port, _wait_until_ready, browser  # noqa: F401

REPO = Path(__file__).resolve().parents[3]
BETTER_AUTH_DIR = REPO / "e2e" / "better-auth"
CLIENT_DIR = REPO / "clients" / "typescript"
PAGE_DIR = CLIENT_DIR / "example"
BETTER_AUTH_SECRET = "better-auth-test-secret-" + secrets.token_hex(16)
START_SECONDS = 30
PASSWORD = "correct horse battery staple"


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _spawn(command: list[str], env: dict[str, str], name: str, cwd: Path | None = None) -> Process:
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 (our own servers)
            command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT
        )
    return Process(process, log)


@dataclass
class Account:
    """A user signed up with Better Auth; its session cookie lives in `session`."""

    id: str
    email: str
    session: httpx.AsyncClient

    async def token(self) -> str:
        """`GET /api/auth/token`, as a frontend asks for the JWT it sends to the API."""
        response = await self.session.get("/api/auth/token")
        assert response.status_code == 200, response.text
        token: str = response.json()["token"]
        return token

    async def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token()}"}


@dataclass
class BetterAuth:
    port: int
    process: Process
    accounts: list[Account] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The origin: what Better Auth puts in `iss` and `aud`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/api/auth/jwks"

    async def published_kids(self) -> set[str]:
        async with httpx.AsyncClient(timeout=10) as client:
            keys = (await client.get(self.jwks_url)).json()["keys"]
        return {key["kid"] for key in keys}

    async def sign_up(self) -> Account:
        session = httpx.AsyncClient(base_url=self.url, timeout=10)
        email = f"user-{secrets.token_hex(6)}@example.com"
        response = await session.post(
            "/api/auth/sign-up/email",
            json={"email": email, "password": PASSWORD, "name": "Ada Lovelace"},
        )
        assert response.status_code == 200, response.text
        account = Account(response.json()["user"]["id"], email, session)
        self.accounts.append(account)
        return account

    async def aclose(self) -> None:
        for account in self.accounts:
            await account.session.aclose()


@contextmanager
def better_auth_server(name: str, **env: str) -> Iterator[BetterAuth]:
    """`node server.mjs` on a free port; `env` picks the configuration (see server.mjs)."""
    node = shutil.which("node")
    if node is None or not (BETTER_AUTH_DIR / "node_modules" / "better-auth").is_dir():
        pytest.fail("Node and e2e/better-auth/node_modules are needed: run `make test-better-auth`")
    port = _free_port()
    # A trailing slash, as the README once advised: Better Auth keeps only the origin.
    environment = {
        **os.environ,
        "PORT": str(port),
        "BETTER_AUTH_URL": f"http://127.0.0.1:{port}/",
        "BETTER_AUTH_SECRET": BETTER_AUTH_SECRET,
        **env,
    }
    process = _spawn([node, "server.mjs"], environment, f"better-auth-{name}", BETTER_AUTH_DIR)
    server = BetterAuth(port, process)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.process.poll() is not None:
                pytest.fail(f"Better Auth exited:\n{process.output()}")
            try:
                if httpx.get(f"{server.url}/api/auth/ok", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"Better Auth was not up in {START_SECONDS} s:\n{process.output()}")
            time.sleep(0.1)
        yield server
    finally:
        process.stop()


@dataclass
class Api:
    port: int
    process: Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.process.output()


@contextmanager
def api_server(name: str, database_url: str, better_auth: BetterAuth, **env: str) -> Iterator[Api]:
    """`tasks-api run` with the settings the README gives for Better Auth."""
    port = _free_port()
    environment = {
        **{key: value for key, value in os.environ.items() if key != "JWT_SECRET"},
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "JWKS_URL": better_auth.jwks_url,
        "JWT_ISSUER": better_auth.url,
        "JWT_AUDIENCE": better_auth.url,
        "CORS_ORIGINS": better_auth.url,
        "LOG_LEVEL": "WARNING",
        **env,
    }
    command = [str(Path(sys.executable).with_name("tasks-api")), "run", "--host", "127.0.0.1"]
    process = _spawn([*command, "--port", str(port)], environment, f"better-auth-api-{name}")
    try:
        api = Api(port, process)
        _wait_until_ready(process.process, api.url, process.log)
        yield api
    finally:
        process.stop()


@dataclass
class Stack:
    better_auth: BetterAuth
    api: Api
    client: httpx.AsyncClient


@contextmanager
def _stack_processes(
    name: str, database_url: str, auth_env: dict[str, str], api_env: dict[str, str]
) -> Iterator[tuple[BetterAuth, Api]]:
    with (
        better_auth_server(name, **auth_env) as auth,
        api_server(name, database_url, auth, **api_env) as api,
    ):
        yield auth, api


StartStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def start_stack(database_url: str) -> AsyncIterator[StartStack]:
    """Starts a Better Auth + API pair of its own for this test: `await start_stack(name, ...)`."""
    exits = ExitStack()
    stacks: list[Stack] = []

    async def start(
        name: str,
        auth_env: dict[str, str] | None = None,
        api_env: dict[str, str] | None = None,
    ) -> Stack:
        auth, api = exits.enter_context(
            _stack_processes(name, database_url, auth_env or {}, api_env or {})
        )
        stack = Stack(auth, api, httpx.AsyncClient(base_url=api.url, timeout=30))
        stacks.append(stack)
        return stack

    with exits:
        try:
            yield start
        finally:
            for stack in stacks:
                await stack.client.aclose()
                await stack.better_auth.aclose()


@pytest.fixture(scope="session")
async def main_stack(database_url: str) -> AsyncIterator[Stack]:
    """Better Auth with the jwt() plugin's defaults (EdDSA), serving the example page too."""
    with _stack_processes("eddsa", database_url, {"STATIC_DIR": str(PAGE_DIR)}, {}) as (auth, api):
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
            yield Stack(auth, api, client)
        await auth.aclose()


@pytest.fixture
async def account(main_stack: Stack) -> Account:
    return await main_stack.better_auth.sign_up()
