"""Turn a PostgreSQL URL as Neon, Heroku or a laptop writes it into what asyncpg accepts."""

import logging
import shlex
import ssl
from typing import Any

from sqlalchemy.engine import URL, make_url

logger = logging.getLogger(__name__)

_SCHEMES = {
    "postgres",
    "postgresql",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
}
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
# libpq parameters that asyncpg takes under the same name.
_PASSTHROUGH = {"target_session_attrs", "krbsrvname", "gsslib"}
# libpq parameters with no asyncpg equivalent that are safe to drop; channel binding needs
# SCRAM-SHA-256-PLUS, which asyncpg does not implement: TLS itself still applies.
_IGNORED = {"channel_binding", "sslcompression", "gssencmode", "sslnegotiation", "keepalives"}


class DatabaseUrlError(ValueError):
    pass


def to_asyncpg(raw: str) -> tuple[URL, dict[str, Any]]:
    """Return the SQLAlchemy URL and the `connect_args` for asyncpg."""
    try:
        url = make_url(raw.strip())
    except Exception as exc:
        raise DatabaseUrlError("DATABASE_URL is not a valid PostgreSQL URL") from exc
    if url.drivername not in _SCHEMES:
        raise DatabaseUrlError(
            f"DATABASE_URL must start with postgresql:// or postgres:// (got {url.drivername}://)"
        )
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    server_settings: dict[str, str] = {}

    mode = _single(query.pop("sslmode", None)) or _single(query.pop("ssl", None))
    root_cert = _single(query.pop("sslrootcert", None))
    if mode is not None:
        mode = {"true": "require", "false": "disable"}.get(mode.lower(), mode.lower())
        if mode not in _SSL_MODES:
            raise DatabaseUrlError(f"DATABASE_URL has an unknown sslmode: {mode}")
        connect_args["ssl"] = _ssl_context(mode, root_cert)

    timeout = _single(query.pop("connect_timeout", None))
    if timeout is not None:
        connect_args["timeout"] = float(timeout)
    app_name = _single(query.pop("application_name", None))
    if app_name:
        server_settings["application_name"] = app_name
    options = _single(query.pop("options", None))
    if options:
        server_settings.update(_parse_options(options))
    for key in list(query):
        if key in _PASSTHROUGH:
            connect_args[key] = _single(query.pop(key))
        elif key == "host":
            continue  # e.g. a unix socket directory: SQLAlchemy's asyncpg dialect reads it
        elif key == "port":
            connect_args["port"] = int(_single(query.pop(key)) or 5432)
        else:
            query.pop(key)
            if key not in _IGNORED and not key.startswith("ssl"):
                logger.warning("DATABASE_URL parameter %r is not supported and was ignored", key)
    if server_settings:
        connect_args["server_settings"] = server_settings
    return url.set(drivername="postgresql+asyncpg", query=query), connect_args


def _single(value: str | tuple[str, ...] | None) -> str | None:
    return value[-1] if isinstance(value, tuple) else value


def _ssl_context(mode: str, root_cert: str | None) -> str | ssl.SSLContext:
    if mode in {"verify-ca", "verify-full"} and root_cert and root_cert != "system":
        context = ssl.create_default_context(cafile=root_cert)
        context.check_hostname = mode == "verify-full"
        return context
    return mode


def _parse_options(options: str) -> dict[str, str]:
    """`-c key=value` pairs become server settings; Neon's `endpoint=` is for clients
    without SNI, which asyncpg is not, so it is dropped."""
    settings: dict[str, str] = {}
    words = shlex.split(options)
    for i, word in enumerate(words):
        pair = word[2:] if word.startswith("-c") and len(word) > 2 else None
        if word == "-c" and i + 1 < len(words):
            pair = words[i + 1]
        if pair and "=" in pair:
            key, value = pair.split("=", 1)
            settings[key.strip()] = value.strip()
    return settings
