"""Opaque list cursors: a position, signed together with the user and query it continues.

Format: base64url(JSON position) "." base64url(HMAC-SHA256(key, scope JSON, position)[:16]).
The scope is not carried, only signed: a cursor shown to another user or another query
fails the MAC exactly as an altered one does.
"""

import base64
import binascii
import hashlib
import hmac
from typing import Any
from uuid import UUID

import orjson

from tasks_api.config import Settings

_MAC_BYTES = 16
# Keeps the cursor key apart from every other use of the secret it is derived from.
_KEY_LABEL = b"tasks-api list cursor v1"


class InvalidCursor(ValueError):
    """Not a cursor this API made for this user and query."""


class CursorSigner:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()

    @classmethod
    def from_settings(cls, settings: Settings) -> "CursorSigner":
        # Every API instance shares these, so a cursor from one instance works on the next.
        secret = settings.jwt_secret or settings.database_url
        if secret is None:
            raise RuntimeError("cursors need JWT_SECRET or DATABASE_URL to sign with")
        return cls(secret.get_secret_value().encode())

    def encode(self, scope: Any, position: Any) -> str:
        payload = orjson.dumps(position, default=_uuid_text)
        return f"{_encode(payload)}.{_encode(self._mac(scope, payload))}"

    def decode(self, scope: Any, cursor: str) -> Any:
        """The position a cursor holds; InvalidCursor unless made by this key for `scope`."""
        payload_text, dot, mac_text = cursor.partition(".")
        try:
            payload, mac = _decode(payload_text), _decode(mac_text)
        except (ValueError, binascii.Error) as error:
            raise InvalidCursor from error
        if not dot or not hmac.compare_digest(mac, self._mac(scope, payload)):
            raise InvalidCursor
        return orjson.loads(payload)

    def _mac(self, scope: Any, payload: bytes) -> bytes:
        # The scope JSON ends where its outermost bracket closes, so no two (scope, payload)
        # pairs sign the same bytes.
        message = orjson.dumps(scope, option=orjson.OPT_SORT_KEYS) + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:_MAC_BYTES]


def _uuid_text(value: Any) -> str:
    # asyncpg's UUID subclass, which orjson does not take for a uuid.UUID.
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    data = base64.b64decode(
        text.encode("ascii") + b"=" * (-len(text) % 4), altchars=b"-_", validate=True
    )
    # Only the one spelling we write: an edited cursor must not decode to the same bytes
    # (through "+" for "-", padding, or the unused low bits of the last character).
    if _encode(data) != text:
        raise ValueError("not canonical base64url")
    return data
