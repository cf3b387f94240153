"""The production image, built and run (`make test-image`; the `image` marker).

The engine is Debian's dockerd, started here when none answers and stopped at the end only
then. The PostgreSQL under the containers is the suite's embedded server: a container reaches
it through its unix socket, bind-mounted into the container (no TCP port on the host, so
parallel runs cannot collide). Every container this starts is removed, answered or not.
"""

import json
import os
import secrets
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.image import engine, images
from tests.support.auth import TEST_SECRET
from tests.support.database import OWNER_PASSWORD, OWNER_ROLE, TestCluster

# Where the embedded server's socket appears inside a container.
CONTAINER_SOCKET_DIR = "/run/tasks-api-db"
DOCKERD_LOG = Path(tempfile.gettempdir()) / "tasks-api-image-tests-dockerd.log"
START_SECONDS = 90
# Every container, and every compose project, these tests start is named with it.
CONTAINER_PREFIX = "tasks-api-image-test-"
_image_size: dict[str, int] = {}


@pytest.fixture(scope="session")
def docker() -> Iterator[engine.Docker]:
    client = engine.Docker()
    # The containers' secret: `--env JWT_SECRET` passes it by name from here, never on the
    # command line that `ps` shows.
    client.env["JWT_SECRET"] = TEST_SECRET
    with engine.daemon(client, DOCKERD_LOG):
        yield client
        left = client.run("ps", "--all", "--quiet", "--filter", f"name={CONTAINER_PREFIX}")
        assert left.stdout.split() == [], "containers of these tests were left behind"


@pytest.fixture(scope="session")
def api_image(docker: engine.Docker) -> str:
    image = images.api_image(docker)
    _image_size[image] = int(docker.run("image", "inspect", "--format={{.Size}}", image).stdout)
    return image


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for image, size in _image_size.items():
        terminalreporter.write_line(
            f"image {image}: {size / 1e6:.0f} MB ({size:,} bytes; on the stand-in base images)"
        )


@dataclass(frozen=True)
class EmbeddedDatabase:
    """The embedded server, seen from the host and from a container."""

    cluster: TestCluster
    socket_path: str
    port: int

    def container_url(self, database: str) -> str:
        return (
            f"postgresql://{OWNER_ROLE}:{OWNER_PASSWORD}@/{database}"
            f"?host={CONTAINER_SOCKET_DIR}&port={self.port}"
        )

    @property
    def mount(self) -> list[str]:
        target = f"{CONTAINER_SOCKET_DIR}/.s.PGSQL.{self.port}"
        return ["--volume", f"{self.socket_path}:{target}"]


@pytest.fixture(scope="session")
def embedded() -> Iterator[EmbeddedDatabase]:
    """Always the embedded server: a container cannot reach TEST_DATABASE_URL's loopback."""
    from tasks_api.embedded_db import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="tasks-api-image-pg-") as tmp:
        os.chmod(tmp, 0o755)  # noqa: S103 (the server runs as its own user when we are root)
        server = EmbeddedPostgres(Path(tmp) / "data")
        try:
            socket_path = f"{server.socket_dir}/.s.PGSQL.{server.port}"
            yield EmbeddedDatabase(TestCluster(server.url()), socket_path, server.port)
        finally:
            server.stop()


@pytest.fixture
async def fresh_database(embedded: EmbeddedDatabase) -> str:
    """A new, empty database owned by the Neon-like owner role (dropped with the server)."""
    await embedded.cluster.ensure_owner_role()
    return await embedded.cluster.create_database("tasks_image")


def migrate(docker: engine.Docker, image: str, embedded: EmbeddedDatabase, database: str) -> str:
    """`alembic upgrade head` as the compose `migrate` service runs it: the image, its user."""
    result = docker.run(
        "run",
        "--rm",
        *embedded.mount,
        "--env",
        f"DATABASE_URL={embedded.container_url(database)}",
        "--env",
        "JWT_SECRET",
        image,
        "alembic",
        "upgrade",
        "head",
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
async def migrated_database(
    docker: engine.Docker, api_image: str, embedded: EmbeddedDatabase
) -> str:
    await embedded.cluster.ensure_owner_role()
    database = await embedded.cluster.create_database("tasks_image_api")
    migrate(docker, api_image, embedded, database)
    return database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Container:
    docker: engine.Docker
    name: str
    base_url: str

    def inspect(self) -> dict[str, object]:
        result = self.docker.run("inspect", self.name)
        document: list[dict[str, object]] = json.loads(result.stdout)
        return document[0]

    def state(self) -> dict[str, object]:
        state = self.inspect()["State"]
        assert isinstance(state, dict)
        return state

    def logs(self) -> str:
        result = self.docker.run("logs", self.name)
        return result.stdout + result.stderr

    def answers_ready(self) -> bool:
        if not self.state().get("Running"):
            raise AssertionError(f"the container stopped:\n{self.logs()[-4000:]}")
        try:
            return httpx.get(f"{self.base_url}/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture(scope="module")
def start_api(
    docker: engine.Docker, api_image: str, embedded: EmbeddedDatabase
) -> Iterator[Callable[..., Container]]:
    """Start the image's own command (no override) on a migrated database; removed after."""
    started: list[Container] = []

    def start(database: str, *env: str) -> Container:
        name = f"{CONTAINER_PREFIX}{secrets.token_hex(4)}"
        port = free_port()
        container = Container(docker, name, f"http://127.0.0.1:{port}")
        started.append(container)
        docker.run(
            "run",
            "--detach",
            "--name",
            name,
            "--publish",
            f"127.0.0.1:{port}:8000",
            *embedded.mount,
            "--env",
            f"DATABASE_URL={embedded.container_url(database)}",
            "--env",
            "JWT_SECRET",
            *(arg for variable in env for arg in ("--env", variable)),
            api_image,
        )
        engine.wait_for(container.answers_ready, START_SECONDS, "/health/ready to answer 200")
        return container

    yield start
    for container in started:
        docker.run("rm", "--force", "--volumes", container.name, check=False)
