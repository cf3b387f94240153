"""Signing keys like Better Auth's and a JWKS server on 127.0.0.1, for the auth tests."""

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

JWKS_PATH = "/api/auth/jwks"
_ALGORITHM_CLASSES: dict[str, Any] = {
    "EdDSA": OKPAlgorithm,
    "ES256": ECAlgorithm,
    "RS256": RSAAlgorithm,
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def random_id(length: int = 32) -> str:
    """Better Auth's ids (users and keys): random letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def signing_input(header: dict[str, Any], payload: dict[str, Any]) -> bytes:
    def segment(part: dict[str, Any]) -> str:
        return b64url(json.dumps(part, separators=(",", ":")).encode())

    return f"{segment(header)}.{segment(payload)}".encode()


def hmac_token(
    header: dict[str, Any], payload: dict[str, Any], secret: str | bytes, digest: str = "sha256"
) -> str:
    """Signed by hand, so any header and any key (even an empty one) can be used."""
    key = secret.encode() if isinstance(secret, str) else secret
    message = signing_input(header, payload)
    signature = hmac.new(key, message, getattr(hashlib, digest)).digest()
    return f"{message.decode()}.{b64url(signature)}"


def unsigned_token(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return f"{signing_input(header, payload).decode()}.{signature}"


def better_auth_claims(
    base_url: str, user_id: str | None = None, expires_in: int = 15 * 60, **extra: Any
) -> dict[str, Any]:
    """What Better Auth's JWT plugin puts in a token by default: the user, `sub`, and
    `iss`/`aud` set to the origin of its base URL, valid for 15 minutes."""
    user_id = user_id or random_id()
    now = int(time.time())
    return {
        "id": user_id,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "emailVerified": True,
        "image": None,
        "createdAt": "2026-11-21T19:24:00.123Z",
        "updatedAt": "2026-11-21T19:24:00.123Z",
        "iat": now,
        "sub": user_id,
        "exp": now + expires_in,
        "iss": base_url,
        "aud": base_url,
        **extra,
    }


@dataclass
class SigningKey:
    algorithm: str
    private_key: Any
    kid: str = field(default_factory=random_id)

    @classmethod
    def generate(cls, algorithm: str, kid: str | None = None) -> "SigningKey":
        private_key: Any
        if algorithm == "EdDSA":
            private_key = ed25519.Ed25519PrivateKey.generate()
        elif algorithm == "ES256":
            private_key = ec.generate_private_key(ec.SECP256R1())
        elif algorithm == "RS256":
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise ValueError(algorithm)
        return cls(algorithm, private_key, kid or random_id())

    def public_jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        """The public key as Better Auth's `/api/auth/jwks` lists it: JWK members plus `kid`."""
        jwk = json.loads(_ALGORITHM_CLASSES[self.algorithm].to_jwk(self.private_key.public_key()))
        jwk["kid"] = self.kid
        if with_alg:
            jwk["alg"] = self.algorithm
        return jwk

    def sign(
        self,
        payload: dict[str, Any],
        *,
        algorithm: str | None = None,
        **header: Any,
    ) -> str:
        """A compact JWS with header `{alg, kid}` (as Better Auth's) plus any extra members."""
        full_header = {"alg": algorithm or self.algorithm, "kid": self.kid, **header}
        full_header = {name: value for name, value in full_header.items() if value is not None}
        message = signing_input(full_header, payload)
        signature = get_default_algorithms()[self.algorithm].sign(message, self.private_key)
        return f"{message.decode()}.{b64url(signature)}"


class JwksServer:
    """Serves a JWK set over real HTTP from a thread, and records every request it gets.

    `mode` makes it misbehave: "error" answers 500, "garbage" answers 200 with no JSON,
    "slow" waits `delay` seconds before answering.
    """

    def __init__(self, keys: list[dict[str, Any]] | None = None) -> None:
        self.keys: list[dict[str, Any]] = list(keys or [])
        self.mode = "ok"
        self.delay = 0.0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return self.base_url + JWKS_PATH

    @property
    def fetches(self) -> int:
        return len(self.requests)

    def publish(self, *keys: SigningKey) -> None:
        self.keys = [key.public_jwk() for key in keys]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(self.path)
                if server.mode == "slow":
                    time.sleep(server.delay)
                if self.path != JWKS_PATH:
                    self._send(404, b"{}")
                elif server.mode == "error":
                    self._send(500, b"oops")
                elif server.mode == "garbage":
                    self._send(200, b"<html>not a key set</html>")
                else:
                    self._send(200, json.dumps({"keys": server.keys}).encode())

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # The client may have given up waiting (the timeout tests).
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> "JwksServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def jwks_server(*keys: SigningKey) -> Iterator[JwksServer]:
    with JwksServer([key.public_jwk() for key in keys]) as server:
        yield server


def unused_port_url() -> str:
    """A JWKS URL on which nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{JWKS_PATH}"
