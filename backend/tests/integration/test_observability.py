"""The access log, what never reaches a log, and GET /metrics."""

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from tasks_api.config import Settings
from tasks_api.logging_config import ACCESS_LOGGER, HANDLER_NAME
from tasks_api.main import create_app
from tasks_api.services import task_service
from tests.support.auth import TEST_SECRET, User

BODY_MARKER = "body-marker-7f3a9c"
QUERY_MARKER = "query-marker-2b8e41"
USER_REFERENCE = re.compile(r"[0-9a-f]{16}")
# The process_* metrics are read from /proc: Linux (CI, containers), not a Mac.
HAS_PROC = Path("/proc/self/stat").exists()


@pytest.fixture
def log_output(app: FastAPI) -> Iterator[io.StringIO]:
    """What our handler writes (JSON lines in the test environment), for this test only."""
    # The test client's own request lines name the URL it called; the server's never do.
    # (Not caplog.set_level: it would also raise caplog's handler to WARNING.)
    client_logger = logging.getLogger("httpx")
    client_level = client_logger.level
    client_logger.setLevel(logging.WARNING)
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)  # type: ignore[arg-type]
    client_logger.setLevel(client_level)


def _lines(output: io.StringIO, request_id: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.getvalue().splitlines()]
    return [line for line in lines if line.get("request_id") == request_id]


def _access_lines(output: io.StringIO, response: httpx.Response) -> list[dict[str, Any]]:
    lines = _lines(output, response.headers["x-request-id"])
    return [line for line in lines if line["logger"] == ACCESS_LOGGER]


class TestAccessLog:
    async def test_anonymous(self, client: httpx.AsyncClient, log_output: io.StringIO) -> None:
        response = await client.get("/api/someone/tasks")
        assert response.status_code == 401
        [line] = _access_lines(log_output, response)
        assert line["route"] == "/api/{user_id}/tasks"
        assert line["status"] == 401
        assert "user" not in line
        assert "someone" not in json.dumps(line)

    async def test_one_line_with_the_route_template(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: Any,
        log_output: io.StringIO,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        task = await create_task(alice)
        response = await client.get(alice.task_url(task["id"]), headers=alice.headers)
        assert response.status_code == 200

        [line] = _access_lines(log_output, response)
        assert line["level"] == "INFO"
        assert line["method"] == "GET"
        assert line["route"] == "/api/{user_id}/tasks/{task_id}"
        assert line["status"] == 200
        assert isinstance(line["duration_ms"], float)
        assert line["duration_ms"] > 0
        assert line["ts"].endswith("Z")
        assert USER_REFERENCE.fullmatch(line["user"])
        raw = json.dumps(line)
        assert alice.id not in raw
        assert task["id"] not in raw
        records = [
            record
            for record in caplog.records
            if record.name == ACCESS_LOGGER
            and getattr(record, "request_id", None) == response.headers["x-request-id"]
        ]
        assert len(records) == 1

    async def test_user_reference_is_stable_per_user(
        self, client: httpx.AsyncClient, alice: User, bob: User, log_output: io.StringIO
    ) -> None:
        references = []
        for user in (alice, alice, bob):
            response = await client.get(user.tasks_url, headers=user.headers)
            assert response.status_code == 200
            [line] = _access_lines(log_output, response)
            references.append(line["user"])
        assert references[0] == references[1] != references[2]
        assert alice.id not in references[0]
        assert references[0] not in alice.id

    async def test_unmatched_route(
        self, client: httpx.AsyncClient, alice: User, log_output: io.StringIO
    ) -> None:
        response = await client.get(f"/nowhere/{alice.id}?q={QUERY_MARKER}")
        assert response.status_code == 404
        [line] = _access_lines(log_output, response)
        assert line["route"] == "unmatched"
        assert alice.id not in log_output.getvalue()
        assert QUERY_MARKER not in log_output.getvalue()

    async def test_the_client_request_id(
        self, client: httpx.AsyncClient, log_output: io.StringIO
    ) -> None:
        response = await client.get("/health", headers={"X-Request-ID": "trace-42"})
        [line] = _access_lines(log_output, response)
        assert line["request_id"] == "trace-42"
        assert line["route"] == "/health"


class TestSecretsNeverLogged:
    async def test_token_secret_body_and_query(
        self,
        app: FastAPI,
        alice: User,
        create_task: Any,
        log_output: io.StringIO,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        token = alice.token
        headers = {"Authorization": f"Bearer {token}"}
        task = await create_task(alice)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            created = await client.post(
                f"{alice.tasks_url}?note={QUERY_MARKER}",
                json={"title": BODY_MARKER, "description": BODY_MARKER},
                headers=headers,
            )
            assert created.status_code == 201, created.text

            async def fail(*_: object, **__: object) -> None:
                # The token and the body sit in locals and in the error: neither may be logged.
                authorization = headers["Authorization"]
                body = {"title": BODY_MARKER}
                raise sa_exc.DBAPIError(
                    "UPDATE tasks SET title=$1 WHERE id=$2",
                    body,
                    RuntimeError(f"rejected {authorization} signed with {TEST_SECRET}"),
                )

            monkeypatch.setattr(task_service, "update", fail)
            failed = await client.patch(
                f"{alice.task_url(task['id'])}?note={QUERY_MARKER}",
                json={"title": BODY_MARKER},
                headers=headers,
            )
            assert failed.status_code == 500

        # The operator still gets the trace, under the request's id.
        [error] = [
            line for line in _lines(log_output, failed.headers["x-request-id"]) if "exc" in line
        ]
        assert "DBAPIError" in error["exc"]
        assert error["route"] == "/api/{user_id}/tasks/{task_id}"
        assert USER_REFERENCE.fullmatch(error["user"])
        for output in (log_output.getvalue(), caplog.text):
            for secret in (token, TEST_SECRET, BODY_MARKER, QUERY_MARKER, alice.id):
                assert secret not in output, secret


def _samples(text_format: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text_format)
        for sample in family.samples
    ]


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    found = [value for sample, got, value in samples if sample == name and got == labels]
    return found[0] if found else 0.0


class TestMetrics:
    async def test_requests_and_latency_by_route_template(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        labels = {"method": "GET", "route": "/api/{user_id}/tasks", "status": "200"}
        before = _samples((await client.get("/metrics")).text)
        for _ in range(2):
            assert (await client.get(alice.tasks_url, headers=alice.headers)).status_code == 200
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        after = _samples(response.text)

        def delta(name: str, **extra: str) -> float:
            return _value(after, name, **labels, **extra) - _value(before, name, **labels, **extra)

        assert delta("tasks_api_http_requests_total") == 2
        assert delta("tasks_api_http_request_duration_seconds_count") == 2
        assert delta("tasks_api_http_request_duration_seconds_bucket", le="+Inf") == 2
        buckets = {
            got["le"]
            for name, got, _ in after
            if name == "tasks_api_http_request_duration_seconds_bucket"
            and got["route"] == labels["route"]
        }
        assert {"0.001", "2.5", "+Inf"} <= buckets
        assert alice.id not in response.text

    async def test_pool_gauges_are_read_at_scrape_time(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings
    ) -> None:
        async with app.state.database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            samples = _samples((await client.get("/metrics")).text)
        assert _value(samples, "tasks_api_db_pool_size") == settings.db_pool_size
        assert _value(samples, "tasks_api_db_pool_max_overflow") == settings.db_max_overflow
        assert _value(samples, "tasks_api_db_pool_checked_out") >= 1
        assert _value(samples, "tasks_api_db_pool_overflow") >= 0
        assert _value(samples, "tasks_api_db_pool_waiting") == 0
        assert ("tasks_api_db_pool_checked_in", {}) in [(name, got) for name, got, _ in samples]

    async def test_process_metrics(self, client: httpx.AsyncClient) -> None:
        names = {name for name, _, _ in _samples((await client.get("/metrics")).text)}
        assert "python_info" in names
        if HAS_PROC:
            assert "process_cpu_seconds_total" in names

    async def test_no_auth_and_not_in_the_api_document(
        self, client: httpx.AsyncClient, app: FastAPI
    ) -> None:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert "/metrics" not in app.openapi()["paths"]

    async def test_openmetrics_when_asked(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        assert response.text.endswith("# EOF\n")

    async def test_each_app_has_its_own_registry(self, settings: Settings) -> None:
        first, second = create_app(settings), create_app(settings)
        assert first.state.metrics.registry is not second.state.metrics.registry
