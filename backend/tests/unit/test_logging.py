"""Logging set-up: formats, levels, uvicorn's loggers, scrubbing, user references."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tasks_api.config import Settings
from tasks_api.logging_config import (
    ERROR_LOGGER,
    HANDLER_NAME,
    configure_logging,
    user_reference,
    user_reference_key,
)
from tasks_api.main import create_app
from tests.support.auth import TEST_SECRET, make_token

DATABASE_PASSWORD = "db-password-5d1e"


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "jwt_secret": TEST_SECRET,
        "database_url": f"postgresql://owner:{DATABASE_PASSWORD}@localhost/tasks",
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; the session's app needs it back.

    Only what it touches is put back: pytest adds and removes its own handlers per phase.
    """
    root = logging.getLogger()
    ours, level = [h for h in root.handlers if h.get_name() == HANDLER_NAME], root.level
    saved = {}
    for name in (ERROR_LOGGER, "uvicorn", "uvicorn.access"):
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.filters[:], logger.propagate)
    yield
    for handler in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(handler)
    for handler in ours:
        root.addHandler(handler)
    root.setLevel(level)
    for name, (handlers, filters, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.filters[:] = handlers, filters
        logger.propagate = propagate


def _configure(**overrides: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(_settings(**overrides), stream)
    return stream


class TestFormats:
    def test_json_in_production(self) -> None:
        stream = _configure(environment="production")
        logging.getLogger("tasks_api.access").info(
            "%s %s", "GET", "/health", extra={"request_id": "r-1", "status": 200}
        )
        [line] = stream.getvalue().splitlines()
        record = json.loads(line)
        assert record["msg"] == "GET /health"
        assert record["request_id"] == "r-1"
        assert record["status"] == 200
        assert record["level"] == "INFO"

    def test_json_in_test(self) -> None:
        stream = _configure()
        logging.getLogger("tasks_api").warning("careful")
        assert json.loads(stream.getvalue())["msg"] == "careful"

    def test_text_in_development(self) -> None:
        stream = _configure(environment="development")
        logging.getLogger("tasks_api.access").info(
            "GET /health 200", extra={"request_id": "r-1", "user": "abc"}
        )
        [line] = stream.getvalue().splitlines()
        assert "INFO" in line
        assert line.endswith("GET /health 200  request_id=r-1 user=abc")

    def test_log_format_overrides_the_environment(self) -> None:
        stream = _configure(environment="development", log_format="json")
        logging.getLogger("tasks_api").info("hello")
        assert json.loads(stream.getvalue())["msg"] == "hello"

    def test_an_exception_stays_on_one_json_line(self) -> None:
        stream = _configure(environment="production")
        try:
            raise ValueError("bad")
        except ValueError:
            logging.getLogger(ERROR_LOGGER).exception("unhandled error")
        [line] = stream.getvalue().splitlines()
        assert "ValueError: bad" in json.loads(line)["exc"]


class TestConfiguration:
    def test_log_level(self) -> None:
        stream = _configure(log_level="warning")
        logging.getLogger("tasks_api.access").info("quiet")
        logging.getLogger("tasks_api").warning("loud")
        assert [json.loads(line)["msg"] for line in stream.getvalue().splitlines()] == ["loud"]

    def test_configuring_again_replaces_the_handler(self) -> None:
        _configure()
        stream = _configure()
        ours = [h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME]
        assert len(ours) == 1
        logging.getLogger("tasks_api").warning("once")
        assert len(stream.getvalue().splitlines()) == 1

    def test_uvicorn_lines_go_through_ours_and_its_access_log_is_off(self) -> None:
        # As `uvicorn tasks_api.main:create_app --factory` (the Docker image) leaves them,
        # without dictConfig's closing of every handler (pytest's too).
        for name in ("uvicorn", "uvicorn.access"):
            logging.getLogger(name).addHandler(logging.StreamHandler(io.StringIO()))
            logging.getLogger(name).propagate = False
        stream = _configure(environment="production")
        assert not logging.getLogger("uvicorn.access").hasHandlers()
        logging.getLogger("uvicorn.error").info("Started server process")
        assert json.loads(stream.getvalue())["logger"] == "uvicorn.error"

    async def test_a_production_app_logs_json_lines(self) -> None:
        app = create_app(_settings(environment="production"))
        handler = next(h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME)
        stream = io.StringIO()
        handler.setStream(stream)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/health?probe=1")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        [line] = [line for line in lines if line["logger"] == "tasks_api.access"]
        assert line["request_id"] == response.headers["x-request-id"]
        assert line["route"] == "/health"
        assert "probe" not in json.dumps(line)


class TestScrubbing:
    def _log_error(self, exc: Exception) -> None:
        try:
            raise exc
        except Exception:
            logging.getLogger(ERROR_LOGGER).exception("unhandled error")

    def test_tokens_secrets_and_request_data_leave_the_trace(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        stream = _configure(environment="production", log_user_key="k" * 40)
        token = make_token("alice")
        leaks = {
            "token": token,
            "opaque bearer": "opaque-bearer-value",
            "secret": TEST_SECRET,
            "log key": "k" * 40,
            "database password": DATABASE_PASSWORD,
            "sql parameter": "sql-param-marker",
            "validation input": "pydantic-input-marker",
        }
        message = (
            f"Authorization: Bearer opaque-bearer-value; token {token}; key {TEST_SECRET}; "
            f"log key {'k' * 40}; dsn postgresql://owner:{DATABASE_PASSWORD}@db/tasks\n"
            "[SQL: INSERT INTO tasks (title) VALUES ($1)]\n"
            "[parameters: ('sql-param-marker',)]\n"
            "  Input should be a valid string [type=string_type, "
            "input_value='pydantic-input-marker', input_type=str]"
        )
        self._log_error(RuntimeError(message))
        output = stream.getvalue()
        assert "RuntimeError" in output
        for name, leak in leaks.items():
            assert leak not in output, name
            # Any other handler (here pytest's) gets the scrubbed text too.
            assert leak not in caplog.text, name

    def test_locals_are_not_rendered(self) -> None:
        stream = _configure(environment="production")

        def handler_with_a_body() -> None:
            body = {"title": "local-body-marker"}
            raise KeyError(len(body))

        try:
            handler_with_a_body()
        except KeyError:
            logging.getLogger(ERROR_LOGGER).exception("unhandled error")
        assert "handler_with_a_body" in stream.getvalue()
        assert "local-body-marker" not in stream.getvalue()

    def test_messages_of_other_libraries_are_scrubbed(self) -> None:
        stream = _configure(environment="production")
        token = make_token("alice")
        logging.getLogger("some.library").warning("retrying with %s", f"Bearer {token}")
        assert token not in stream.getvalue()
        assert "Bearer [REDACTED]" in stream.getvalue()


class TestUserReference:
    def test_stable_across_instances_and_keyed_by_user(self) -> None:
        key, same = user_reference_key(_settings()), user_reference_key(_settings())
        assert user_reference(key, "alice") == user_reference(same, "alice")
        assert user_reference(key, "alice") != user_reference(key, "bob")
        assert len(user_reference(key, "alice")) == 16
        assert "alice" not in user_reference(key, "alice")

    def test_the_key_is_a_secret(self) -> None:
        alice = [
            user_reference(user_reference_key(settings), "alice")
            for settings in (
                _settings(),
                _settings(jwt_secret="another-secret-" + "y" * 40),
                _settings(log_user_key="log-user-key-" + "z" * 40),
            )
        ]
        assert len(set(alice)) == 3

    def test_log_user_key_wins_over_the_jwt_secret(self) -> None:
        key = "log-user-key-" + "z" * 40
        assert user_reference_key(_settings(log_user_key=key)) == user_reference_key(
            _settings(log_user_key=key, jwt_secret="another-secret-" + "y" * 40)
        )

    def test_without_a_secret_the_jwks_url_keys_it(self) -> None:
        settings = _settings(jwt_secret=None, jwks_url="https://auth.example.com/api/auth/jwks")
        other = _settings(jwt_secret=None, jwks_url="https://other.example.com/jwks")
        assert user_reference_key(settings) != user_reference_key(other)
