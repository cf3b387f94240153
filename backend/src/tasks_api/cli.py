"""`tasks-api`: run the service, migrate, mint development tokens, export OpenAPI."""

import argparse
import os
import re
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tasks_api.config import MIN_SECRET_LENGTH, ConfigError, Settings, get_settings

BACKEND_DIR = Path(__file__).resolve().parents[2]
DATA_DIR = BACKEND_DIR.parent / ".data"
DEMO_USER = "demo"


def _settings() -> Settings:
    try:
        return Settings()
    except ConfigError as exc:
        sys.exit(f"tasks-api: {exc}")
    except ValueError as exc:
        first = str(exc).splitlines()
        sys.exit(f"tasks-api: invalid settings: {' '.join(first[:3])}")


def _local_secret() -> str:
    """A development secret kept with the local data, so tokens survive restarts."""
    path = DATA_DIR / "jwt_secret"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _prepare_environment(settings: Settings) -> object | None:
    """Fill in what a laptop lacks: an embedded database and a development secret."""
    server = None
    if settings.database_url is None:
        from tasks_api import embedded_db

        server, url = embedded_db.start(DATA_DIR / "postgres", "tasks")
        os.environ["DATABASE_URL"] = url
        print(f"Embedded PostgreSQL {embedded_db.PG_MAJOR} at {server.socket_dir} (data in .data/)")
    if settings.jwt_secret is None and not settings.jwks_url and not settings.is_production:
        os.environ["JWT_SECRET"] = _local_secret()
    get_settings.cache_clear()
    return server


def migrate(database_url: str, revision: str = "head") -> None:
    from alembic.config import Config

    from alembic import command

    # In a checkout alembic.ini sits next to src/; an installed package (the container
    # image) finds it in the working directory instead.
    ini = BACKEND_DIR / "alembic.ini"
    config = Config(str(ini if ini.exists() else Path.cwd() / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    command.upgrade(config, revision)


def mint_token(settings: Settings, user: str, ttl: timedelta) -> str:
    import jwt

    if settings.jwt_secret is None:
        sys.exit("tasks-api: JWT_SECRET is not set")
    now = datetime.now(UTC)
    claims: dict[str, object] = {settings.jwt_user_id_claim: user, "iat": now, "exp": now + ttl}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def _parse_ttl(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match:
        raise argparse.ArgumentTypeError("use a number and a unit: 90s, 15m, 1h, 7d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
    return timedelta(**{unit: int(match[1])})


def _run(args: argparse.Namespace) -> None:
    import uvicorn

    settings = _settings()
    server = _prepare_environment(settings)
    try:
        settings = _settings()
        assert settings.database_url is not None
        migrate(settings.database_url.get_secret_value())
        base = f"http://{args.host}:{args.port}"
        print(f"\nTasks API docs:  {base}/docs")
        if settings.jwt_secret is not None and not settings.is_production:
            token = mint_token(settings, DEMO_USER, timedelta(hours=24))
            print(f"Demo user '{DEMO_USER}': click Authorize and paste this token (valid 24 h):")
            print(f"\n{token}\n")
            print(f"Then try GET {base}/api/{DEMO_USER}/tasks. Stop with Ctrl-C.\n")
        uvicorn.run(
            "tasks_api.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            log_level=settings.log_level.lower(),
            # create_app configures logging (JSON in production) and writes one access line
            # per request with the route template; uvicorn's would log raw paths and queries.
            log_config=None,
            access_log=False,
            proxy_headers=True,
            # httptools, whose refusals (a URL past the limit, a malformed request) answer
            # with the error envelope and a request id.
            http="tasks_api.server:HttpToolsProtocol",
        )
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]
            print("Embedded PostgreSQL stopped.")


def _migrate(args: argparse.Namespace) -> None:
    settings = _settings()
    server = _prepare_environment(settings)
    try:
        url = os.environ.get("DATABASE_URL") or ""
        migrate(url, args.revision)
    finally:
        if server is not None:
            server.stop()  # type: ignore[attr-defined]


def _token(args: argparse.Namespace) -> None:
    settings = _settings()
    if settings.jwt_secret is None and not settings.is_production:
        os.environ["JWT_SECRET"] = _local_secret()
        settings = _settings()
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    if len(secret) < MIN_SECRET_LENGTH:
        sys.exit(f"tasks-api: JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters")
    print(mint_token(settings, args.user, args.ttl))


def _openapi(args: argparse.Namespace) -> None:
    import yaml

    from tasks_api.main import create_app

    document = create_app(Settings(environment="test")).openapi()
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tasks-api", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="migrate, then serve the API")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.set_defaults(handler=_run)

    mig = commands.add_parser("migrate", help="apply migrations (alembic upgrade)")
    mig.add_argument("revision", nargs="?", default="head")
    mig.set_defaults(handler=_migrate)

    token = commands.add_parser("token", help="mint an HS256 development token")
    token.add_argument("--user", required=True)
    token.add_argument("--ttl", type=_parse_ttl, default=timedelta(hours=1))
    token.set_defaults(handler=_token)

    spec = commands.add_parser("openapi", help="print or write the OpenAPI document as YAML")
    spec.add_argument("--output")
    spec.set_defaults(handler=_openapi)

    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
