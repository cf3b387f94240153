"""Turn a PostgreSQL URL as Neon, Heroku or a laptop writes it into what asyncpg accepts."""

import logging
import os
import re
import shlex
import ssl
from pathlib import Path
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
_IGNORED = {"channel_binding", "sslcompression", "gssencmode", "keepalives"}
# Neon names its PgBouncer endpoint `<endpoint>-pooler.<region>...`.
_NEON_POOLER_HOST = re.compile(r"^ep-[a-z0-9-]+-pooler\.", re.IGNORECASE)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# libpq's multi-host form (`h1:5432,h2:5433`) sits in the authority, which SQLAlchemy's URL
# parser cannot split; its `?host=h1:5432&host=h2:5433` form it can.
_AUTHORITY = re.compile(
    r"^(?P<scheme>[^:/]+://)(?P<userinfo>[^@/?#]*@)?(?P<hosts>[^/?#]*)(?P<rest>.*)$"
)


class DatabaseUrlError(ValueError):
    pass


def _unnamed_statement() -> str:
    """PostgreSQL's unnamed statement lives until the next Parse on the same connection,
    so no name can collide on, or leak into, a server connection a pooler shares."""
    return ""


def to_asyncpg(raw: str) -> tuple[URL, dict[str, Any]]:
    """Return the SQLAlchemy URL and the `connect_args` for asyncpg."""
    try:
        url = make_url(_split_host_list(raw.strip()))
    except Exception as exc:
        raise DatabaseUrlError("DATABASE_URL is not a valid PostgreSQL URL") from exc
    if url.drivername not in _SCHEMES:
        raise DatabaseUrlError(
            f"DATABASE_URL must start with postgresql:// or postgres:// (got {url.drivername}://)"
        )
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    server_settings: dict[str, str] = {}

    # libpq also takes these as parameters; the authority wins when both are given.
    for key, attribute in (("user", "username"), ("password", "password"), ("dbname", "database")):
        value = _single(query.pop(key, None))
        if value and not getattr(url, attribute):
            url = url.set(**{attribute: value})

    connect_args.update(_ssl_args(query))
    timeout = _single(query.pop("connect_timeout", None))
    if timeout is not None:
        seconds = _number("connect_timeout", timeout)
        if seconds > 0:  # libpq: zero or less means wait forever; our default applies then
            connect_args["timeout"] = max(seconds, 2.0)  # libpq's floor
    app_name = _single(query.pop("application_name", None))
    if app_name:
        server_settings["application_name"] = app_name
    options = _single(query.pop("options", None))
    if options:
        server_settings.update(_parse_options(options))
    if _uses_transaction_pooler(url, _single(query.pop("pgbouncer", None))):
        connect_args.update(
            statement_cache_size=0,
            prepared_statement_cache_size=0,
            prepared_statement_name_func=_unnamed_statement,
        )
    multihost = isinstance(query.get("host"), tuple) or "," in str(query.get("host", ""))
    for key in list(query):
        if key in _PASSTHROUGH:
            connect_args[key] = _single(query.pop(key))
        elif key == "host":
            continue  # a unix socket directory or several hosts: SQLAlchemy's dialect reads it
        elif key == "port" and not multihost:
            connect_args["port"] = int(_number("port", _single(query.pop(key)) or "5432"))
        elif key == "port":
            continue
        else:
            query.pop(key)
            if key not in _IGNORED:
                logger.warning("DATABASE_URL parameter %r is not supported and was ignored", key)
    if server_settings:
        connect_args["server_settings"] = server_settings
    return url.set(drivername="postgresql+asyncpg", query=query), connect_args


def uses_transaction_pooler(connect_args: dict[str, Any]) -> bool:
    return connect_args.get("prepared_statement_name_func") is _unnamed_statement


def _uses_transaction_pooler(url: URL, flag: str | None) -> bool:
    """`pgbouncer=true` (Prisma's spelling) or a Neon `-pooler` host: no named statements.

    A transaction-mode pooler hands each transaction whichever server connection is free,
    so a statement prepared by name in one transaction is missing, or already taken, in
    the next. PgBouncer 1.21+ with `max_prepared_statements` (Neon's) remaps names, but
    older ones (Debian 12 ships 1.18) and other poolers do not.
    """
    if flag is not None:
        if flag.lower() in _TRUE:
            return True
        if flag.lower() in _FALSE:
            return False
        raise DatabaseUrlError(f"DATABASE_URL has an invalid pgbouncer value: {flag}")
    hosts = [url.host or ""]
    query_hosts = url.query.get("host")
    if query_hosts:
        hosts += [query_hosts] if isinstance(query_hosts, str) else list(query_hosts)
    return any(_NEON_POOLER_HOST.match(host) for host in hosts)


def _split_host_list(raw: str) -> str:
    match = _AUTHORITY.match(raw)
    if not match or "," not in match["hosts"]:
        return raw
    hosts = []
    for spec in match["hosts"].split(","):
        host, _, port = spec.rpartition(":") if not spec.endswith("]") else (spec, "", "")
        if not host:
            host, port = port, ""
        hosts.append(f"host={host.strip('[]')}:{port or '5432'}")
    rest = match["rest"]
    path, _, query = rest.partition("?")
    joined = "&".join([*hosts, query] if query else hosts)
    return f"{match['scheme']}{match['userinfo'] or ''}{path or '/'}?{joined}"


def _single(value: str | tuple[str, ...] | None) -> str | None:
    return value[-1] if isinstance(value, tuple) else value


def _number(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DatabaseUrlError(f"DATABASE_URL has a non-numeric {name}: {value}") from None


def _ssl_args(query: dict[str, Any]) -> dict[str, Any]:
    """libpq's sslmode and friends, as asyncpg's `ssl` and `direct_tls`."""
    mode = _single(query.pop("sslmode", None)) or _single(query.pop("ssl", None))
    root_cert = _single(query.pop("sslrootcert", None))
    cert = _single(query.pop("sslcert", None))
    key = _single(query.pop("sslkey", None))
    password = _single(query.pop("sslpassword", None))
    negotiation = _single(query.pop("sslnegotiation", None))
    for unsupported in ("sslcrl", "sslcrldir", "sslsni", "ssl_min_protocol_version"):
        if query.pop(unsupported, None) is not None:
            logger.warning(
                "DATABASE_URL parameter %r is not supported and was ignored", unsupported
            )
    args: dict[str, Any] = {}
    if negotiation == "direct":
        args["direct_tls"] = True
    if mode is None:
        if root_cert == "system":  # libpq 16+: a system root store implies verify-full
            mode = "verify-full"
        elif cert is None:
            return args
        else:
            mode = "prefer"
    mode = {"true": "require", "false": "disable"}.get(mode.lower(), mode.lower())
    if mode not in _SSL_MODES:
        raise DatabaseUrlError(f"DATABASE_URL has an unknown sslmode: {mode}")
    args["ssl"] = _ssl_context(mode, root_cert, cert, key, password)
    return args


def _ssl_context(
    mode: str, root_cert: str | None, cert: str | None, key: str | None, password: str | None
) -> str | ssl.SSLContext:
    verify = mode in {"verify-ca", "verify-full"} or (
        # libpq: `require` with a root certificate verifies the server's chain.
        mode == "require" and root_cert not in (None, "system")
    )
    if not verify:
        if cert is None or mode in {"disable", "allow", "prefer"}:
            return mode  # asyncpg does libpq's try-TLS-then-plain dance for these itself
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif root_cert in (None, "system") and (root_cert == "system" or not _default_root_cert()):
        # asyncpg would refuse verify-full without ~/.postgresql/root.crt; Neon's and most
        # clouds' certificates chain to public CAs, so the system store is the right one.
        context = ssl.create_default_context()
    elif root_cert is None:
        return mode  # asyncpg reads ~/.postgresql/root.crt or PGSSLROOTCERT itself
    else:
        context = ssl.create_default_context(cafile=root_cert)
    context.check_hostname = mode == "verify-full"
    if cert is not None:
        context.load_cert_chain(cert, keyfile=key, password=password)
    return context


def _default_root_cert() -> bool:
    if os.environ.get("PGSSLROOTCERT"):
        return True
    try:
        return (Path.home() / ".postgresql" / "root.crt").is_file()
    except RuntimeError:  # no home directory
        return False


def _parse_options(options: str) -> dict[str, str]:
    """`-c key=value` and `--key=value` pairs become server settings; Neon's `endpoint=` is
    for clients without SNI, which asyncpg is not, so it is dropped."""
    settings: dict[str, str] = {}
    words = shlex.split(options)
    for i, word in enumerate(words):
        pair = None
        if word.startswith("--") and "=" in word:
            name, value = word[2:].split("=", 1)
            pair = f"{name.replace('-', '_')}={value}"
        elif word.startswith("-c") and len(word) > 2:
            pair = word[2:]
        elif word == "-c" and i + 1 < len(words):
            pair = words[i + 1]
        if pair and "=" in pair:
            key, value = pair.split("=", 1)
            settings[key.strip()] = value.strip()
    return settings


# Neon's endpoint host with the pooler's suffix: `ep-x-123-pooler.region...` -> `ep-x-123.`.
_NEON_POOLER_LABEL = re.compile(r"^(ep-[a-z0-9-]+)-pooler(\.)", re.IGNORECASE)


def listen_url(database_url: str, direct_url: str | None) -> tuple[str, str | None]:
    """The URL to LISTEN on (a session of its own), and a warning when it may not work.

    LISTEN needs a session: through a transaction pooler the listening server connection
    is handed to other clients after each transaction and notifications never arrive.
    DATABASE_DIRECT_URL wins; a Neon `-pooler` host is turned into its direct host (same
    credentials, same database); otherwise DATABASE_URL itself.
    """
    if direct_url:
        return direct_url, None
    match = _AUTHORITY.match(database_url.strip())
    if match and _NEON_POOLER_HOST.match(match["hosts"]):
        hosts = _NEON_POOLER_LABEL.sub(r"\1\2", match["hosts"], count=1)
        return f"{match['scheme']}{match['userinfo'] or ''}{hosts}{match['rest']}", None
    _, connect_args = to_asyncpg(database_url)
    if uses_transaction_pooler(connect_args):
        return database_url, (
            "DATABASE_URL goes through a transaction pooler (pgbouncer=true) and "
            "DATABASE_DIRECT_URL is not set: LISTEN needs a session, so live changes may "
            "not reach the event streams; set DATABASE_DIRECT_URL to a direct connection"
        )
    return database_url, None
