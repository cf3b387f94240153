"""Docker for the image tests: Debian's client, and its dockerd when no engine answers.

The images themselves are built by `images.py`; see specs/container.md.
"""

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

BACKEND = Path(__file__).resolve().parents[2]
ROOT = BACKEND.parent
# Debian's docker.io client: the machine's other one (/usr/local/bin) builds only with buildx.
DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")
# Proxy settings are Docker's predefined build arguments: passed on by name (the value stays
# in the environment, out of the command line and out of the repository).
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
BUILD_SECONDS = 1200


class DockerError(RuntimeError):
    pass


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll until `condition` holds; the limit only bounds a hang, no result depends on it."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {seconds:.0f} s: {what}")
        time.sleep(0.2)


class Docker:
    def __init__(self, binary: str = DOCKER) -> None:
        if not Path(binary).exists():
            raise DockerError(f"{binary} is missing: `make test-image` installs docker.io")
        self.binary = binary
        # Debian's 20.10 client uses BuildKit (cache mounts) only when asked.
        self.env = {**os.environ, "DOCKER_BUILDKIT": "1"}

    def run(
        self, *args: str, check: bool = True, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(  # noqa: S603 (our own arguments)
            [self.binary, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            input=input,
            check=False,
        )
        if check and result.returncode != 0:
            raise DockerError(
                f"docker {' '.join(args[:3])} ... exited {result.returncode}:\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        return result

    def answers(self) -> bool:
        return self.run("version", check=False, timeout=30).returncode == 0

    def has_image(self, tag: str) -> bool:
        return self.run("image", "inspect", tag, check=False).returncode == 0

    def build(self, tag: str, context: Path, dockerfile: Path, **build_args: str) -> None:
        args = ["build", "--progress=plain", "--network=host", "--tag", tag]
        args += ["--file", str(dockerfile)]
        for name, value in build_args.items():
            args += ["--build-arg", f"{name}={value}"]
        for name in PROXY_VARIABLES:
            if os.environ.get(name):
                args += ["--build-arg", name]
        self.run(*args, str(context), timeout=BUILD_SECONDS)


@contextmanager
def daemon(docker: Docker, log: Path) -> Iterator[bool]:
    """A running engine: the one that answers, or Debian's dockerd started (and stopped) here.
    Yields whether this started it."""
    if docker.answers():
        yield False
        return
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603
            [dockerd], stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for(lambda: process.poll() is not None or docker.answers(), 90, "dockerd to answer")
        if process.poll() is not None:
            raise DockerError(f"dockerd exited {process.returncode}; see {log}")
        yield True
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
