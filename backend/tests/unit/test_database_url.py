"""DATABASE_URL as people paste it, turned into what SQLAlchemy's asyncpg dialect needs."""

import logging
from typing import Any

import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from tasks_api.database_url import DatabaseUrlError, to_asyncpg

NEON = (
    "postgresql://u:p@ep-x-pooler.eu-central-1.aws.neon.tech/neondb"
    "?sslmode=require&channel_binding=require"
)


def _asyncpg_kwargs(url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
    """What asyncpg.connect() is finally called with."""
    engine = create_async_engine(url)
    try:
        _, kwargs = engine.dialect.create_connect_args(url)
    finally:
        engine.sync_engine.dispose()
    return {**kwargs, **connect_args}


class TestToAsyncpg:
    def test_neon(self, caplog: pytest.LogCaptureFixture) -> None:
        url, connect_args = to_asyncpg(NEON)
        assert url.drivername == "postgresql+asyncpg"
        assert dict(url.query) == {}
        assert connect_args["ssl"] == "require"
        assert "channel_binding" not in connect_args
        kwargs = _asyncpg_kwargs(url, connect_args)
        assert kwargs["host"] == "ep-x-pooler.eu-central-1.aws.neon.tech"
        assert (kwargs["user"], kwargs["password"], kwargs["database"]) == ("u", "p", "neondb")
        # channel_binding is known and dropped on purpose: nothing to warn the operator about.
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    def test_heroku_scheme(self) -> None:
        url, connect_args = to_asyncpg("postgres://u:secret@db.example.com:6543/app")
        assert url.drivername == "postgresql+asyncpg"
        assert connect_args == {}
        kwargs = _asyncpg_kwargs(url, connect_args)
        assert kwargs == {
            "host": "db.example.com",
            "port": 6543,
            "user": "u",
            "password": "secret",
            "database": "app",
        }

    def test_asyncpg_scheme_is_kept(self) -> None:
        raw = "postgresql+asyncpg://u:p@localhost:5432/tasks"
        url, connect_args = to_asyncpg(raw)
        assert url.render_as_string(hide_password=False) == raw
        assert connect_args == {}

    def test_local(self) -> None:
        url, connect_args = to_asyncpg("  postgresql://postgres@127.0.0.1/tasks \n")
        assert url.render_as_string(hide_password=False) == (
            "postgresql+asyncpg://postgres@127.0.0.1/tasks"
        )
        assert connect_args == {}

    def test_password_with_reserved_characters(self) -> None:
        url, _ = to_asyncpg("postgresql://u:p%40ss%2Fw%3Ard@h/d")
        assert url.password == "p@ss/w:rd"

    def test_unix_socket(self) -> None:
        url, connect_args = to_asyncpg("postgresql://u@/tasks?host=/var/run/postgresql&port=5433")
        kwargs = _asyncpg_kwargs(url, connect_args)
        assert kwargs["host"] == "/var/run/postgresql"
        assert kwargs["port"] == 5433
        assert kwargs["database"] == "tasks"

    @pytest.mark.parametrize(
        "options",
        ["-c%20statement_timeout%3D5000", "-c statement_timeout=5000", "-cstatement_timeout=5000"],
        ids=["encoded", "raw", "joined"],
    )
    def test_options_become_server_settings(self, options: str) -> None:
        url, connect_args = to_asyncpg(f"postgresql://u@h/d?options={options}")
        assert connect_args["server_settings"] == {"statement_timeout": "5000"}
        assert "options" not in url.query

    def test_several_options(self) -> None:
        _, connect_args = to_asyncpg(
            "postgresql://u@h/d?options=-c%20search_path%3Dapp%20-c%20statement_timeout%3D5s"
        )
        assert connect_args["server_settings"] == {"search_path": "app", "statement_timeout": "5s"}

    def test_application_name_and_connect_timeout(self) -> None:
        _, connect_args = to_asyncpg(
            "postgresql://u@h/d?application_name=worker&connect_timeout=10"
        )
        assert connect_args["server_settings"] == {"application_name": "worker"}
        assert connect_args["timeout"] == 10

    def test_unknown_parameter_is_dropped_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        url, connect_args = to_asyncpg("postgresql://u@h/d?frobnicate=yes&sslmode=disable")
        assert dict(url.query) == {}
        assert connect_args == {"ssl": "disable"}
        assert "frobnicate" in caplog.text
        # The engine can be built from what is left.
        assert "frobnicate" not in str(_asyncpg_kwargs(url, connect_args))

    @pytest.mark.parametrize(
        ("given", "expected"),
        [
            ("sslmode=disable", "disable"),
            ("sslmode=prefer", "prefer"),
            ("sslmode=require", "require"),
            ("sslmode=REQUIRE", "require"),
            ("ssl=true", "require"),
            ("ssl=false", "disable"),
        ],
    )
    def test_ssl_modes(self, given: str, expected: str) -> None:
        _, connect_args = to_asyncpg(f"postgresql://u@h/d?{given}")
        assert connect_args["ssl"] == expected

    @pytest.mark.parametrize(
        "raw",
        [
            "mysql://u:p@h/d",
            "sqlite:///tasks.db",
            "http://h/d",
            "not a url",
            "",
            "postgresql://u@h/d?sslmode=sometimes",
        ],
    )
    def test_invalid(self, raw: str) -> None:
        with pytest.raises(DatabaseUrlError) as error:
            to_asyncpg(raw)
        assert "DATABASE_URL" in str(error.value)

    def test_error_does_not_echo_the_password(self) -> None:
        with pytest.raises(DatabaseUrlError) as error:
            to_asyncpg("mysql://u:hunter2@h/d")
        assert "hunter2" not in str(error.value)
