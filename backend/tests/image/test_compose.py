"""docker-compose.yml, validated and brought up with Docker Compose v2, then taken down.

The registry's images are replaced by the local stand-ins through an override file that
only renames images (standins/compose.override.yml); everything else is the file's own.
"""

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.image import engine, images
from tests.image.conftest import CONTAINER_PREFIX, free_port
from tests.support.auth import TEST_SECRET, User

pytestmark = pytest.mark.image

COMPOSE_FILE = engine.ROOT / "docker-compose.yml"
OVERRIDE = images.STANDINS / "compose.override.yml"
PROJECT_LABEL = "com.docker.compose.project"


@dataclass
class Compose:
    binary: Path
    project: str
    files: list[Path]
    # Only what is set here: neither the caller's environment nor a developer's .env counts.
    variables: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
        if os.environ.get("DOCKER_HOST"):
            env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
        command = [str(self.binary), "--project-name", self.project, "--env-file", os.devnull]
        for file in self.files:
            command += ["--file", str(file)]
        result = subprocess.run(  # noqa: S603
            [*command, *args],
            capture_output=True,
            text=True,
            env={**env, **self.variables},
            cwd=engine.ROOT,
            timeout=600,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result


def _project() -> str:
    return f"{CONTAINER_PREFIX}{secrets.token_hex(4)}"


def test_config_validates_the_file_and_requires_its_secrets() -> None:
    compose = Compose(images.compose_binary(), _project(), [COMPOSE_FILE])
    compose.variables = {"JWT_SECRET": TEST_SECRET, "POSTGRES_PASSWORD": "pw"}
    resolved = json.loads(compose.run("config", "--format", "json").stdout)
    assert set(resolved["services"]) == {"db", "migrate", "api"}
    assert resolved["services"]["api"]["environment"]["DATABASE_URL"] == (
        "postgresql://tasks:pw@db:5432/tasks"
    )

    for missing in ("JWT_SECRET", "POSTGRES_PASSWORD"):
        compose.variables = {"JWT_SECRET": TEST_SECRET, "POSTGRES_PASSWORD": "pw"}
        del compose.variables[missing]
        refused = compose.run("config", "--quiet", check=False)
        assert refused.returncode != 0
        assert f"set {missing}" in refused.stderr


@pytest.fixture
def stack(docker: engine.Docker, api_image: str) -> Iterator[Compose]:
    compose = Compose(images.compose_binary(), _project(), [COMPOSE_FILE, OVERRIDE])
    compose.variables = {
        "JWT_SECRET": TEST_SECRET,
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "API_PORT": str(free_port()),
        "TASKS_API_IMAGE": api_image,
        "STANDIN_POSTGRES_IMAGE": images.postgres_image(docker),
    }
    try:
        yield compose
    finally:
        compose.run("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)


def _left_behind(docker: engine.Docker, project: str) -> dict[str, list[str]]:
    label = f"label={PROJECT_LABEL}={project}"
    return {
        kind: docker.run(*command, "--filter", label, "--quiet").stdout.split()
        for kind, command in {
            "containers": ("ps", "--all"),
            "networks": ("network", "ls"),
            "volumes": ("volume", "ls"),
        }.items()
    }


def test_up_brings_db_migrate_and_api_to_healthy_and_down_removes_everything(
    docker: engine.Docker, stack: Compose
) -> None:
    stack.run("up", "--detach", "--no-build", "--pull=never")

    def states() -> dict[str, dict[str, object]]:
        ids = stack.run("ps", "--all", "--quiet").stdout.split()
        found: dict[str, dict[str, object]] = {}
        for container in json.loads(docker.run("inspect", *ids).stdout) if ids else []:
            found[container["Config"]["Labels"]["com.docker.compose.service"]] = container["State"]
        return found

    def health(service: str) -> str:
        state = states().get(service, {})
        status = state.get("Health", {})
        return str(status.get("Status", "")) if isinstance(status, dict) else ""

    engine.wait_for(lambda: health("api") in {"healthy", "unhealthy"}, 120, "the api's health")
    final = states()
    assert health("api") == "healthy", stack.run("logs").stdout[-4000:]
    assert health("db") == "healthy"
    assert final["migrate"]["Status"] == "exited"
    assert final["migrate"]["ExitCode"] == 0

    base_url = f"http://127.0.0.1:{stack.variables['API_PORT']}"
    ready = httpx.get(f"{base_url}/health/ready", timeout=10)
    assert ready.status_code == 200
    user = User()
    created = httpx.post(
        f"{base_url}{user.tasks_url}", json={"title": "composed"}, headers=user.headers, timeout=10
    )
    assert created.status_code == 201, created.text
    fetched = httpx.get(
        f"{base_url}{user.task_url(created.json()['data']['id'])}", headers=user.headers, timeout=10
    )
    assert fetched.json()["data"]["title"] == "composed"

    assert all(_left_behind(docker, stack.project).values())
    stack.run("down", "--volumes", "--timeout", "10")
    assert _left_behind(docker, stack.project) == {"containers": [], "networks": [], "volumes": []}
