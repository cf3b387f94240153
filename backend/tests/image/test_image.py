"""The production image, run as an operator runs it: its user, migrations, health, API, stop."""

import asyncio
import json
from collections.abc import Awaitable, Callable

import asyncpg
import httpx
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.image import engine
from tests.image.conftest import Container, EmbeddedDatabase, migrate
from tests.support.auth import User

pytestmark = pytest.mark.image

# What a container has to write to change what it runs: its package, the entry points and
# site-packages of its virtualenv (a .pth file runs at every start), its migrations.
WRITE_PROBE = """
import json, os, pathlib, sys, tasks_api
code = pathlib.Path(tasks_api.__file__).parent
venv = pathlib.Path(sys.prefix)
targets = [
    code / "main.py", code / "injected.py",
    venv / "bin" / "uvicorn", venv / "bin" / "injected",
    venv / "lib" / "python3.11" / "site-packages" / "injected.pth",
    pathlib.Path("/app/alembic.ini"), pathlib.Path("/app/alembic/env.py"),
    pathlib.Path("/app/injected"),
]
writable = []
for target in targets:
    try:
        with open(target, "a"):
            pass
    except PermissionError:
        continue
    writable.append(str(target))
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "writable": writable,
                  "checked": len(targets)}))
"""
# Docker's default for `docker stop` and Compose: SIGTERM, then SIGKILL after this long.
STOP_GRACE_SECONDS = 10


def _probe(docker: engine.Docker, image: str, *options: str) -> dict[str, object]:
    result = docker.run("run", "--rm", *options, image, "python", "-c", WRITE_PROBE)
    probe: dict[str, object] = json.loads(result.stdout)
    return probe


def test_runs_as_a_non_root_user_that_cannot_write_its_code(
    docker: engine.Docker, api_image: str
) -> None:
    as_built = _probe(docker, api_image)
    assert as_built["uid"] == as_built["gid"] == 10001
    assert as_built["writable"] == []
    # The probe does find what is writable: root may write every one of those paths.
    as_root = _probe(docker, api_image, "--user", "0")
    assert as_root["uid"] == 0
    assert isinstance(as_root["writable"], list)
    assert len(as_root["writable"]) == as_root["checked"] == 8


async def test_alembic_upgrade_head_in_the_image_migrates_a_fresh_database(
    docker: engine.Docker, api_image: str, embedded: EmbeddedDatabase, fresh_database: str
) -> None:
    head = ScriptDirectory.from_config(
        Config(str(engine.BACKEND / "alembic.ini"))
    ).get_current_head()
    admin_url = embedded.cluster.url_for(fresh_database, embedded.cluster.admin_user)
    connection = await asyncpg.connect(admin_url)
    try:
        tables_before = await connection.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
        migrate(docker, api_image, embedded, fresh_database)
        version = await connection.fetchval("SELECT version_num FROM alembic_version")
        tasks = await connection.fetchrow(
            "SELECT tableowner, rowsecurity FROM pg_tables WHERE tablename = 'tasks'"
        )
        # Run again, as every `docker compose up` does: nothing left to do, and no error.
        migrate(docker, api_image, embedded, fresh_database)
        version_again = await connection.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await connection.close()
    assert tables_before == 0
    assert version == version_again == head
    assert tasks is not None
    assert dict(tasks) == {"tableowner": "tasks_owner", "rowsecurity": True}


@pytest.fixture(scope="module")
def api(start_api: Callable[..., Container], migrated_database: str) -> Container:
    return start_api(migrated_database)


def test_answers_ready_and_its_healthcheck_turns_healthy(api: Container) -> None:
    response = httpx.get(f"{api.base_url}/health/ready", timeout=5)
    assert response.status_code == 200
    assert response.json()["data"] == {"status": "ready", "database": "ok"}

    def health() -> str:
        status = api.state()["Health"]
        assert isinstance(status, dict)
        return str(status["Status"])

    # Docker runs the image's HEALTHCHECK every 10 s; "starting" until the first verdict.
    engine.wait_for(lambda: health() != "starting", 60, "the HEALTHCHECK's first verdict")
    assert health() == "healthy"


def test_create_list_and_get_with_a_minted_token(api: Container) -> None:
    user = User()
    with httpx.Client(base_url=api.base_url, headers=user.headers, timeout=10) as client:
        created = client.post(user.tasks_url, json={"title": "Ship the image"})
        assert created.status_code == 201, created.text
        task = created.json()["data"]
        assert task["title"] == "Ship the image"
        assert created.headers["Location"].endswith(user.task_url(task["id"]))

        listed = client.get(user.tasks_url)
        assert listed.status_code == 200, listed.text
        assert [item["id"] for item in listed.json()["data"]] == [task["id"]]

        fetched = client.get(user.task_url(task["id"]))
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["data"] == task

    anonymous = httpx.get(f"{api.base_url}{user.tasks_url}", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "UNAUTHORIZED"


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll; the limit only bounds a hang."""
    try:
        async with asyncio.timeout(60):
            while True:
                if await condition():
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within 60 s: {what}") from None


async def test_sigterm_answers_the_request_in_flight_then_exits_within_the_grace_period(
    docker: engine.Docker,
    start_api: Callable[..., Container],
    migrated_database: str,
    embedded: EmbeddedDatabase,
) -> None:
    # A statement timeout longer than the test keeps the held request from timing out itself.
    api = await asyncio.to_thread(start_api, migrated_database, "DB_STATEMENT_TIMEOUT_MS=120000")
    user = User()
    admin_url = embedded.cluster.url_for(migrated_database, embedded.cluster.admin_user)
    holder = await asyncpg.connect(admin_url)
    watcher = await asyncpg.connect(admin_url)
    try:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=120) as client:
            created = await client.post(
                user.tasks_url, json={"title": "held"}, headers=user.headers
            )
            assert created.status_code == 201, created.text
            # The request in flight: a list that waits on this lock until the test lets it go.
            lock = holder.transaction()
            await lock.start()
            await holder.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
            in_flight = asyncio.create_task(client.get(user.tasks_url, headers=user.headers))

            async def request_waits_on_the_lock() -> bool:
                waiting = await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = $1 AND wait_event_type = 'Lock'",
                    migrated_database,
                )
                return bool(waiting)

            await _until(request_waits_on_the_lock, "the request to reach the database")
            stop = asyncio.create_task(
                asyncio.to_thread(
                    docker.run,
                    "stop",
                    f"--time={STOP_GRACE_SECONDS}",
                    api.name,
                    timeout=STOP_GRACE_SECONDS + 60,
                )
            )

            async def shutting_down() -> bool:
                return "Shutting down" in await asyncio.to_thread(api.logs)

            await _until(shutting_down, "uvicorn to take the SIGTERM")
            assert not in_flight.done()
            assert api.state()["Running"] is True
            await lock.rollback()
            response = await in_flight
            await stop
    finally:
        await holder.close()
        await watcher.close()

    assert response.status_code == 200, response.text
    assert [item["title"] for item in response.json()["data"]] == ["held"]
    state = api.state()
    assert state["Running"] is False
    # Docker's SIGKILL at the end of the grace period would leave 137.
    assert state["ExitCode"] == 0, api.logs()[-4000:]
