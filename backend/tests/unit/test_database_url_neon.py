"""DATABASE_URL as Neon prints it (direct and `-pooler`), and the libpq corners around it."""

import logging
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from tasks_api.database_url import DatabaseUrlError, to_asyncpg, uses_transaction_pooler

NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
NEON_POOLER_HOST = "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech"
NEON_QUERY = "sslmode=require&channel_binding=require"


def _asyncpg_kwargs(raw: str) -> dict[str, Any]:
    """What SQLAlchemy's dialect hands asyncpg.connect, without connecting."""
    url, connect_args = to_asyncpg(raw)
    engine = create_async_engine(url, connect_args=connect_args)
    _, kwargs = engine.dialect.create_connect_args(engine.url)
    return {**kwargs, **connect_args}


@pytest.fixture
def no_root_cert(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A home with no ~/.postgresql/root.crt, as on a server or in a container."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    return tmp_path


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


class TestNeonDirect:
    def test_the_string_as_printed(self, caplog: pytest.LogCaptureFixture) -> None:
        raw = f"postgresql://neondb_owner:npg_AbC123@{NEON_HOST}/neondb?{NEON_QUERY}"
        with caplog.at_level(logging.WARNING):
            url, connect_args = to_asyncpg(raw)
        assert url.drivername == "postgresql+asyncpg"
        assert (url.host, url.username, url.password, url.database) == (
            NEON_HOST,
            "neondb_owner",
            "npg_AbC123",
            "neondb",
        )
        assert dict(url.query) == {}
        assert connect_args == {"ssl": "require"}
        assert caplog.records == []  # channel_binding is known, not "unsupported"

    def test_keeps_prepared_statements(self) -> None:
        _, connect_args = to_asyncpg(f"postgresql://u:p@{NEON_HOST}/neondb?{NEON_QUERY}")
        assert not uses_transaction_pooler(connect_args)
        assert "statement_cache_size" not in connect_args

    def test_endpoint_option_for_clients_without_sni_is_dropped(self) -> None:
        raw = f"postgresql://u:p@{NEON_HOST}/neondb?options=endpoint%3Dep-cool-darkness-123456"
        _, connect_args = to_asyncpg(raw)
        assert "server_settings" not in connect_args

    def test_verify_full_with_the_system_root_store(self, no_root_cert: Path) -> None:
        raw = f"postgresql://u:p@{NEON_HOST}/neondb?sslmode=verify-full&sslrootcert=system"
        context = to_asyncpg(raw)[1]["ssl"]
        assert isinstance(context, ssl.SSLContext)
        assert context.check_hostname
        assert context.verify_mode == ssl.CERT_REQUIRED

    def test_sslrootcert_system_alone_means_verify_full(self, no_root_cert: Path) -> None:
        context = to_asyncpg(f"postgresql://u:p@{NEON_HOST}/neondb?sslrootcert=system")[1]["ssl"]
        assert isinstance(context, ssl.SSLContext)
        assert context.check_hostname

    def test_verify_full_without_a_root_cert_uses_the_system_store(
        self, no_root_cert: Path
    ) -> None:
        # asyncpg alone would refuse: ~/.postgresql/root.crt does not exist.
        context = to_asyncpg(f"postgresql://u:p@{NEON_HOST}/neondb?sslmode=verify-full")[1]["ssl"]
        assert isinstance(context, ssl.SSLContext)
        assert context.check_hostname
        assert context.verify_mode == ssl.CERT_REQUIRED

    def test_verify_full_with_a_root_crt_in_home_is_asyncpgs(
        self, no_root_cert: Path, ca_file: Path
    ) -> None:
        (no_root_cert / ".postgresql").mkdir()
        (no_root_cert / ".postgresql" / "root.crt").write_bytes(ca_file.read_bytes())
        assert to_asyncpg(f"postgresql://u:p@{NEON_HOST}/db?sslmode=verify-full")[1]["ssl"] == (
            "verify-full"
        )

    def test_verify_ca_with_a_root_cert_file(self, ca_file: Path) -> None:
        raw = f"postgresql://u:p@{NEON_HOST}/db?sslmode=verify-ca&sslrootcert={ca_file}"
        context = to_asyncpg(raw)[1]["ssl"]
        assert isinstance(context, ssl.SSLContext)
        assert not context.check_hostname
        assert context.verify_mode == ssl.CERT_REQUIRED

    def test_require_with_a_root_cert_verifies_the_chain_as_libpq_does(self, ca_file: Path) -> None:
        raw = f"postgresql://u:p@{NEON_HOST}/db?sslmode=require&sslrootcert={ca_file}"
        context = to_asyncpg(raw)[1]["ssl"]
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert not context.check_hostname

    def test_direct_tls_negotiation(self) -> None:
        raw = f"postgresql://u:p@{NEON_HOST}/db?sslmode=require&sslnegotiation=direct"
        assert to_asyncpg(raw)[1] == {"ssl": "require", "direct_tls": True}


class TestNeonPooler:
    def test_pooler_host_turns_named_statements_off(self) -> None:
        url, connect_args = to_asyncpg(f"postgresql://u:p@{NEON_POOLER_HOST}/neondb?{NEON_QUERY}")
        assert url.host == NEON_POOLER_HOST
        assert uses_transaction_pooler(connect_args)
        assert connect_args["statement_cache_size"] == 0
        assert connect_args["prepared_statement_cache_size"] == 0
        # The empty name is PostgreSQL's unnamed statement: nothing to collide or leak.
        assert connect_args["prepared_statement_name_func"]() == ""

    def test_sqlalchemy_takes_the_pooler_arguments(self) -> None:
        kwargs = _asyncpg_kwargs(f"postgresql://u:p@{NEON_POOLER_HOST}/neondb?{NEON_QUERY}")
        assert kwargs["host"] == NEON_POOLER_HOST
        assert kwargs["ssl"] == "require"

    @pytest.mark.parametrize("value", ["true", "1", "True"])
    def test_pgbouncer_true_on_any_host(self, value: str) -> None:
        raw = f"postgresql://u:p@127.0.0.1:6432/db?pgbouncer={value}"
        url, connect_args = to_asyncpg(raw)
        assert uses_transaction_pooler(connect_args)
        assert "pgbouncer" not in url.query

    def test_pgbouncer_false_keeps_named_statements_on_a_pooler_host(self) -> None:
        # For a PgBouncer 1.21+ with max_prepared_statements (Neon's): its own remapping.
        raw = f"postgresql://u:p@{NEON_POOLER_HOST}/neondb?pgbouncer=false"
        assert not uses_transaction_pooler(to_asyncpg(raw)[1])

    def test_invalid_pgbouncer_value(self) -> None:
        with pytest.raises(DatabaseUrlError, match="pgbouncer"):
            to_asyncpg("postgresql://u:p@h/db?pgbouncer=maybe")

    def test_a_host_merely_containing_pooler_is_not_neon(self) -> None:
        assert not uses_transaction_pooler(to_asyncpg("postgresql://u@my-pooler.local/db")[1])


class TestUrlForms:
    @pytest.mark.parametrize(
        "scheme", ["postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"]
    )
    def test_schemes(self, scheme: str) -> None:
        url, _ = to_asyncpg(f"{scheme}://u:p@db.example.com:5433/app")
        assert url.drivername == "postgresql+asyncpg"
        assert url.port == 5433

    def test_unknown_scheme(self) -> None:
        with pytest.raises(DatabaseUrlError, match="mysql"):
            to_asyncpg("mysql://u:p@h/db")

    def test_percent_encoded_password(self) -> None:
        url, _ = to_asyncpg("postgres://u:p%40ss%3Aw%2Fd%25%3F@h/db")
        assert url.password == "p@ss:w/d%?"
        assert _asyncpg_kwargs("postgres://u:p%40ss%3Aw%2Fd%25%3F@h/db")["password"] == "p@ss:w/d%?"

    def test_unix_socket(self) -> None:
        kwargs = _asyncpg_kwargs("postgresql:///tasks?host=/var/run/postgresql&port=5433")
        assert kwargs["host"] == "/var/run/postgresql"
        assert kwargs["port"] == 5433
        assert kwargs["database"] == "tasks"

    def test_several_hosts_in_the_authority(self) -> None:
        raw = "postgresql://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write"
        kwargs = _asyncpg_kwargs(raw)
        assert kwargs["host"] == ["h1", "h2"]
        assert kwargs["port"] == [5432, 5433]
        assert kwargs["target_session_attrs"] == "read-write"
        assert kwargs["password"] == "p"

    def test_several_hosts_without_ports(self) -> None:
        kwargs = _asyncpg_kwargs("postgresql://u@h1,h2/db")
        assert kwargs["host"] == ["h1", "h2"]
        assert kwargs["port"] == [5432, 5432]

    def test_libpq_parameters_for_the_login(self) -> None:
        url, _ = to_asyncpg("postgresql://h/?user=app&password=s%26cret&dbname=tasks")
        assert (url.username, url.password, url.database) == ("app", "s&cret", "tasks")
        assert isinstance(url, URL)

    def test_options_become_server_settings(self) -> None:
        raw = "postgresql://u@h/db?options=-c%20search_path%3Dapp%20--lock-timeout%3D5s"
        settings = to_asyncpg(raw)[1]["server_settings"]
        assert settings == {"search_path": "app", "lock_timeout": "5s"}

    @pytest.mark.parametrize(("given", "expected"), [("10", 10.0), ("1", 2.0), ("0", None)])
    def test_connect_timeout(self, given: str, expected: float | None) -> None:
        assert to_asyncpg(f"postgresql://u@h/db?connect_timeout={given}")[1].get("timeout") == (
            expected
        )

    def test_non_numeric_connect_timeout(self) -> None:
        with pytest.raises(DatabaseUrlError, match="connect_timeout"):
            to_asyncpg("postgresql://u@h/db?connect_timeout=soon")

    @pytest.mark.parametrize("mode", ["disable", "allow", "prefer"])
    def test_opportunistic_modes_are_asyncpgs(self, mode: str) -> None:
        # asyncpg implements libpq's try-TLS-or-not order for these itself.
        assert to_asyncpg(f"postgresql://u@h/db?sslmode={mode}")[1] == {"ssl": mode}

    def test_unknown_sslmode(self) -> None:
        with pytest.raises(DatabaseUrlError, match="sslmode"):
            to_asyncpg("postgresql://u@h/db?sslmode=sometimes")

    def test_unknown_parameter_is_dropped_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING):
            url, connect_args = to_asyncpg("postgresql://u@h/db?fallback_application_name=x")
        assert dict(url.query) == {}
        assert connect_args == {}
        assert "fallback_application_name" in caplog.text
