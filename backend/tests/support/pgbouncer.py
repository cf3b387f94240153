"""A PgBouncer in transaction mode in front of the test server, like Neon's `-pooler` host.

`TEST_PGBOUNCER=1` routes the API's engine through it; migrations and the tests' own
connections stay direct, as the README tells operators to do on Neon.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import make_url

# Fewer server connections than the app's pool holds, so consecutive transactions of one
# client land on different server connections, the case that breaks named statements.
SERVER_POOL_SIZE = 3


def wanted() -> bool:
    return os.environ.get("TEST_PGBOUNCER", "") not in ("", "0")


class PgBouncer:
    def __init__(self, port: int, work_dir: Path) -> None:
        self.port = port
        self.work_dir = work_dir

    def url(self, database: str, user: str, password: str) -> str:
        # pgbouncer=true: no named prepared statements (see database_url.py).
        return (
            f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:"
            f"{self.port}/{quote(database, safe='')}?pgbouncer=true"
        )

    def log(self) -> str:
        path = self.work_dir / "pgbouncer.log"
        return path.read_text() if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as(backend_host: str) -> str | None:
    """PgBouncer refuses to run as root: it runs as whoever may open the server's socket."""
    if os.geteuid() != 0:
        return None
    if backend_host.startswith("/"):
        return pwd.getpwuid(os.stat(backend_host).st_uid).pw_name
    return "nobody"


@contextmanager
def pgbouncer(admin_url: str, users: dict[str, str]) -> Iterator[PgBouncer]:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        raise RuntimeError("TEST_PGBOUNCER is set but pgbouncer is not installed")
    url = make_url(admin_url)
    host = str(url.query.get("host") or url.host or "127.0.0.1")
    backend_port = int(str(url.query.get("port") or url.port or 5432))
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="tasks-api-pgbouncer-") as tmp:
        work_dir = Path(tmp)
        user = _run_as(host)
        (work_dir / "userlist.txt").write_text(
            "".join(f'"{name}" "{password}"\n' for name, password in users.items())
        )
        (work_dir / "pgbouncer.ini").write_text(
            f"""[databases]
* = host={host} port={backend_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {work_dir / "userlist.txt"}
pool_mode = transaction
default_pool_size = {SERVER_POOL_SIZE}
max_client_conn = 1000
logfile = {work_dir / "pgbouncer.log"}
pidfile = {work_dir / "pgbouncer.pid"}
server_login_retry = 1
query_wait_timeout = 30
{f"user = {user}" if user else ""}
"""
        )
        if user:
            record = pwd.getpwnam(user)
            os.chmod(tmp, 0o755)  # noqa: S103 - it is read by the user pgbouncer becomes
            for path in work_dir.iterdir():
                os.chown(path, record.pw_uid, record.pw_gid)
            os.chown(tmp, record.pw_uid, record.pw_gid)
        process = subprocess.Popen(  # noqa: S603
            [binary, str(work_dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        bouncer = PgBouncer(port, work_dir)
        try:
            _wait_for(port, process, bouncer)
            yield bouncer
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stderr is not None:
                process.stderr.close()


def _wait_for(port: int, process: subprocess.Popen[bytes], bouncer: PgBouncer) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"pgbouncer exited: {stderr}{bouncer.log()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on {port}: {bouncer.log()}")
