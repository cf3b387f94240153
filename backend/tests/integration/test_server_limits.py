"""The HTTP server as `tasks-api run` serves: a URL the app accepts reaches it, a longer one
gets the envelope and a request id from the server itself, never uvicorn's plain text."""

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from tasks_api.config import Settings
from tasks_api.errors import MAX_URL_BYTES
from tasks_api.main import create_app
from tasks_api.server import HttpToolsProtocol
from tests.support.auth import User


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[tuple[str, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(settings), http=HttpToolsProtocol, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield sock.getsockname()
    server.should_exit = True
    thread.join(10)


def _get(address: tuple[str, int], target: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    lines = [f"GET {target} HTTP/1.1", "Host: test", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection(address, timeout=30) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), parsed, body


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(1, id="one-byte-over"),
        pytest.param(30_000, id="past-httptools-limit"),
        pytest.param(200_000, id="far-past"),
    ],
)
def test_an_overlong_url_gets_the_envelope(server: tuple[str, int], extra: int) -> None:
    user = User()
    target = f"{user.tasks_url}?q="
    target += "a" * (MAX_URL_BYTES - len(target) + extra)
    status, headers, body = _get(server, target, user.headers)
    assert status == 414
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "URI_TOO_LONG"
    assert error["request_id"] == headers["x-request-id"]
    assert headers["cache-control"] == "no-store"


def test_a_url_at_the_limit_reaches_the_app(server: tuple[str, int]) -> None:
    user = User()
    target = f"{user.tasks_url}?note="
    target += "a" * (MAX_URL_BYTES - len(target))
    status, _, body = _get(server, target, user.headers)
    assert status == 200, body


def test_a_malformed_request_gets_the_envelope(server: tuple[str, int]) -> None:
    status, headers, body = _get(server, "/health", {"Bad Header": "x"})
    assert status == 400
    error = json.loads(body)["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["request_id"] == headers["x-request-id"]
