"""Public keys from JWKS_URL: fetched without blocking, parsed once, refreshed sparingly."""

import asyncio
import contextlib
import json
import logging
import math
import time
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from tasks_api.errors import ServiceUnavailable

logger = logging.getLogger("tasks_api.auth")

ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "ES256", "RS256"})
# Only key types that cannot be HMAC secrets: an `oct` key published in a JWKS would let anyone
# who can read the JWKS mint tokens, so such a key is never loaded.
_PUBLIC_KEY_TYPES = frozenset({"OKP", "EC", "RSA"})
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")
MIN_RSA_BITS = 2048
# Better Auth's set is a few hundred bytes per key; anything far larger is not a key set.
MAX_JWKS_BYTES = 256 * 1024
MAX_KEYS = 100
# How long a token with a new `kid` may wait for the fetch that can find its key. With a longer
# JWKS_REFRESH_INTERVAL_SECONDS such a token is told to retry (503) instead of held.
MAX_KEY_WAIT_SECONDS = 5.0

# Keys are looked up by (kid, alg) only: `kid` is a dictionary key, never a path or a URL.
KeyId = tuple[str | None, str]


class KeysUnavailable(ServiceUnavailable):
    default_message = "The keys that verify bearer tokens cannot be fetched right now; retry."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.headers["Retry-After"] = str(retry_after)


def _public_key(jwk: Any, algorithms: frozenset[str]) -> jwt.PyJWK | None:
    """The JWK as a ready verification key, or None if it is not one we may use."""
    if not isinstance(jwk, dict) or jwk.get("kty") not in _PUBLIC_KEY_TYPES:
        return None
    if jwk.get("use", "sig") != "sig" or any(member in jwk for member in _PRIVATE_MEMBERS):
        return None
    if not isinstance(jwk.get("kid", ""), str):
        return None
    try:
        key = jwt.PyJWK(jwk)
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None
    if key.algorithm_name not in algorithms:
        return None
    if isinstance(key.key, RSAPublicKey) and key.key.key_size < MIN_RSA_BITS:
        return None
    return key


def parse_jwks(document: Any, algorithms: frozenset[str]) -> dict[KeyId, jwt.PyJWK]:
    """Usable keys of a JWK set; keys we cannot or may not use are skipped, not fatal."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the document is not a JWK set")
    keys: dict[KeyId, jwt.PyJWK] = {}
    for jwk in document["keys"][:MAX_KEYS]:
        key = _public_key(jwk, algorithms)
        if key is not None:
            keys.setdefault((jwk.get("kid"), key.algorithm_name), key)
    return keys


class JwksCache:
    """Keys by (kid, alg), parsed once per fetch so a request only does a dictionary lookup.

    An unknown `kid` triggers a fetch, but at most one per `refresh_interval` and only one at
    a time, however many requests wait on it: random `kid`s cannot turn into a flood of
    fetches (they wait, like a new key's tokens, and are then refused). Known keys are re-read
    after `max_age` in the background, and kept while the endpoint is down (tokens signed with
    them stay valid until they expire).
    """

    def __init__(
        self,
        url: str,
        *,
        algorithms: frozenset[str],
        timeout: float,
        refresh_interval: float,
        max_age: float,
    ) -> None:
        self.url = url
        self.algorithms = algorithms & ASYMMETRIC_ALGORITHMS
        self._timeout = timeout
        self._refresh_interval = refresh_interval
        self._max_age = max_age
        self._keys: dict[KeyId, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._available = True
        self._fetch: asyncio.Task[None] | None = None
        # Created on first use, inside the running loop, and closed by `aclose` at shutdown.
        self._client: httpx.AsyncClient | None = None

    async def get(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        """The key for this token header, or None when a fresh key set has none.

        An unknown `kid` is decided by a fetch: the one in flight, a new one, or, when the
        last one was too recent, the next allowed one, which this request waits for (single
        flight, `refresh_interval` at most). A key the issuer has just started signing with
        is thus found, never refused because the API has not seen it yet.

        Raises KeysUnavailable when the key set cannot be read and no cached key matches:
        the token may well be good, so the caller is told to retry, not that it is invalid.
        """
        key = self._keys.get((kid, algorithm))
        if key is not None:
            if self._fetched_at is None or time.monotonic() - self._fetched_at > self._max_age:
                self._start_fetch()
            return key
        fetch = self._start_fetch()
        if fetch is None:
            # The last attempt failed: the endpoint is down, and waiting would only hold the
            # request until the same answer. A known key would have been served above.
            if not self._available:
                raise KeysUnavailable(self._retry_after())
            wait = self._next_fetch_in()
            if wait > MAX_KEY_WAIT_SECONDS:
                raise KeysUnavailable(math.ceil(wait))
            fetch = self._schedule_fetch(wait)
        # Shielded: a client that hangs up must not cancel the fetch others wait on.
        await asyncio.shield(fetch)
        key = self._keys.get((kid, algorithm))
        if key is None and not self._available:
            raise KeysUnavailable(self._retry_after())
        return key

    def kids(self, algorithm: str) -> list[str | None]:
        """The key ids the current set holds for `algorithm`: what a token could name."""
        return [kid for kid, alg in self._keys if alg == algorithm]

    def _next_fetch_in(self) -> float:
        if self._attempted_at is None:
            return 0.0
        return max(0.0, self._attempted_at + self._refresh_interval - time.monotonic())

    def _start_fetch(self) -> asyncio.Task[None] | None:
        """The fetch in flight, a new one if the interval allows it, else None."""
        if self._fetch is not None:
            return self._fetch
        if self._next_fetch_in() > 0:
            return None
        return self._schedule_fetch(0.0)

    def _schedule_fetch(self, delay: float) -> asyncio.Task[None]:
        """A fetch that starts in `delay` seconds; until it is done, every caller shares it."""
        self._attempted_at = time.monotonic() + delay
        self._fetch = asyncio.create_task(self._refresh(delay), name="jwks-refresh")
        return self._fetch

    def _retry_after(self) -> int:
        return max(1, math.ceil(self._next_fetch_in()))

    async def _refresh(self, delay: float = 0.0) -> None:
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            keys = await self._download()
        except Exception as exc:  # whatever went wrong, there are no new keys
            self._available = False
            logger.warning(
                "JWKS fetch from %s failed (%s: %s); %d cached keys kept",
                self.url,
                type(exc).__name__,
                exc,
                len(self._keys),
            )
        else:
            if not keys:
                logger.warning("JWKS at %s holds no usable key", self.url)
            self._keys = keys
            self._fetched_at = time.monotonic()
            self._available = True
        finally:
            self._fetch = None

    async def _download(self) -> dict[KeyId, jwt.PyJWK]:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, headers={"Accept": "application/json"}
            )
        body = bytearray()
        # httpx's timeout bounds each read; this bounds the whole fetch, trickle included.
        async with asyncio.timeout(self._timeout):
            async with self._client.stream("GET", self.url) as response:
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}")
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
        return parse_jwks(json.loads(body), self.algorithms)

    async def aclose(self) -> None:
        if self._fetch is not None:
            self._fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fetch
        if self._client is not None:
            await self._client.aclose()
            self._client = None
