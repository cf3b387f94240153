"""Bearer token verification with PyJWT: algorithms pinned per key type, claims checked."""

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jwt
from jwt.algorithms import HMACAlgorithm
from jwt.utils import base64url_encode

from tasks_api.auth.jwks import ASYMMETRIC_ALGORITHMS, JwksCache, KeyId
from tasks_api.auth.refusals import RefusalLog, shown
from tasks_api.config import Settings
from tasks_api.errors import Unauthorized

# Larger tokens are rejected before any parsing; real ones are well under 2 KB.
MAX_TOKEN_LENGTH = 8192
MAX_KID_LENGTH = 256
MAX_USER_ID_LENGTH = 255
HMAC_ALGORITHMS = frozenset({"HS256"})
# Names of real JWS algorithms: a token naming one we do not accept points at a configuration
# mismatch worth a log line; `none` or garbage is just a bad token.
_KNOWN_ALGORITHMS = frozenset(jwt.algorithms.get_default_algorithms()) - {"none"}
# Verified tokens remembered at most (the oldest goes first), ~1 KB each: see _Reusable.
MAX_REUSED_TOKENS = 10_000
_ISSUER_HINT = (
    "Better Auth puts the origin of its baseURL in iss and aud: scheme://host[:port], "
    "no path, no trailing slash"
)


class InvalidToken(Unauthorized):
    default_message = "The bearer token is invalid."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class ExpiredToken(InvalidToken):
    default_message = "The bearer token has expired."


class MissingToken(Unauthorized):
    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": "Bearer"})


class VerifiedToken(NamedTuple):
    user_id: str
    # The token's `exp`, in Unix seconds: an event stream ends then.
    expires_at: float


class _Reusable(NamedTuple):
    """A token that passed verification, taken again without PyJWT while the key that
    verified it is still the one the API would use for it.

    A client sends the same token with every request for the token's whole life, and its
    signature and claims were ~10 % of a request's CPU. What can change about a verified
    token is only time and keys: `exp` is checked on every reuse (`iat` and `nbf` were
    checked against "not in the future", which stays true), and the key is looked up again
    as verification would (the JWKS cache's own refresh, expiry and removal rules apply, and
    a refetched set holds new key objects, so its tokens are verified once more).
    """

    verified: VerifiedToken
    key: jwt.PyJWK
    key_id: KeyId | None  # None: the JWT_SECRET


class _PreparedHMAC(HMACAlgorithm):
    """HS256 whose secret passed PyJWT's key checks (no PEM, DER or SSH key passed off as an
    HMAC secret) once, at start-up: PyJWT would repeat them for every token."""

    def __init__(self, secret: bytes) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._prepared = super().prepare_key(secret)

    def prepare_key(self, key: str | bytes) -> bytes:
        return self._prepared if key == self._prepared else super().prepare_key(key)


class TokenVerifier:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        allowed = frozenset(settings.jwt_algorithms)
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._hmac_algorithms = HMAC_ALGORITHMS & allowed if self._secret else frozenset()
        # Prepared once: as a PyJWK the secret can only verify HS256, and its key checks run
        # at start-up instead of for every token (_PreparedHMAC).
        self._hmac_key: jwt.PyJWK | None = None
        if self._secret is not None and self._hmac_algorithms:
            self._hmac_key = jwt.PyJWK(
                {"kty": "oct", "k": base64url_encode(self._secret.encode()).decode()},
                algorithm="HS256",
            )
            self._hmac_key.Algorithm = _PreparedHMAC(self._hmac_key.key)
        self._jwks: JwksCache | None = None
        if settings.jwks_url and ASYMMETRIC_ALGORITHMS & allowed:
            self._jwks = JwksCache(
                settings.jwks_url,
                algorithms=allowed,
                timeout=settings.jwks_timeout_seconds,
                refresh_interval=settings.jwks_refresh_interval_seconds,
                max_age=settings.jwks_cache_seconds,
            )
        self._user_claim = settings.jwt_user_id_claim
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._refusals = RefusalLog()
        self._clock = clock
        # Only tokens that passed: nothing a refused token sends is kept.
        self._reusable: dict[str, _Reusable] = {}
        self._options: jwt.types.Options = {
            "require": ["exp"],
            # Without a configured audience an `aud` claim is not ours to judge.
            "verify_aud": self._audience is not None,
            "verify_iss": self._issuer is not None,
            "enforce_minimum_key_length": True,
        }

    async def verify(self, token: str) -> str:
        """Return the user id the token speaks for, or raise a 401 (or 503) error."""
        return (await self.verify_token(token)).user_id

    async def verify_token(self, token: str) -> VerifiedToken:
        """The user the token speaks for and when it expires; a 401 (or 503) error if none."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken
        reusable = self._reusable.get(token)
        if reusable is not None and await self._still_trusted(reusable):
            # PyJWT's rule: expired once `exp` <= now - leeway.
            if reusable.verified.expires_at <= self._clock() - self._leeway:
                raise ExpiredToken
            return reusable.verified
        key_id: KeyId | None = None
        if self._jwks is None and self._hmac_key is not None:
            # The secret is the only key: PyJWT checks `alg` against HS256 itself, so the
            # header need not be parsed twice.
            algorithm, key = "HS256", self._hmac_key
        else:
            try:
                header = jwt.get_unverified_header(token)
            except jwt.PyJWTError:
                raise InvalidToken from None
            algorithm, key = await self._key_for(header)
            if key is not self._hmac_key:
                key_id = (header.get("kid"), algorithm)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options=self._options,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredToken from None
        except jwt.PyJWTError as error:
            self._report(error, token)
            raise InvalidToken from None
        # PyJWT has checked that `exp` is there and a number.
        verified = VerifiedToken(self._user_id(claims), float(claims["exp"]))
        if len(self._reusable) >= MAX_REUSED_TOKENS:
            del self._reusable[next(iter(self._reusable))]
        self._reusable[token] = _Reusable(verified, key, key_id)
        return verified

    async def _still_trusted(self, reusable: _Reusable) -> bool:
        if reusable.key_id is None:
            return reusable.key is self._hmac_key
        assert self._jwks is not None  # a key id is only recorded for a JWKS key
        return await self._jwks.get(*reusable.key_id) is reusable.key

    def _report(self, error: jwt.PyJWTError, token: str) -> None:
        """Log the refusals that a configuration explains (rate-limited, never the token).

        PyJWT checks the signature before the claims, so an `iss` or `aud` seen here comes
        from a token that the issuer really signed: the API's settings are what is wrong.
        """
        claim = error.claim if isinstance(error, jwt.MissingRequiredClaimError) else None
        if isinstance(error, jwt.InvalidIssuerError) or claim == "iss":
            self._refusals.report(
                "issuer",
                "iss %s is not JWT_ISSUER %s (%s)",
                shown(_unverified_claim(token, "iss")),
                shown(self._issuer),
                _ISSUER_HINT,
            )
        elif isinstance(error, jwt.InvalidAudienceError) or claim == "aud":
            self._refusals.report(
                "audience",
                "aud %s does not contain JWT_AUDIENCE %s (%s)",
                shown(_unverified_claim(token, "aud")),
                shown(self._audience),
                _ISSUER_HINT,
            )
        elif isinstance(error, jwt.InvalidAlgorithmError):
            try:
                algorithm = jwt.get_unverified_header(token).get("alg")
            except jwt.PyJWTError:
                return
            self._refuse_algorithm(algorithm)

    def _refuse_algorithm(self, algorithm: object) -> None:
        if not isinstance(algorithm, str) or algorithm not in _KNOWN_ALGORITHMS:
            return
        accepted = sorted(self._hmac_algorithms | (self._jwks.algorithms if self._jwks else set()))
        self._refusals.report(
            "algorithm",
            "alg %s is not accepted; accepted: %s (JWT_ALGORITHMS; HS256 needs JWT_SECRET, "
            "EdDSA/ES256/RS256 need JWKS_URL)",
            shown(algorithm),
            ", ".join(accepted) or "none",
        )

    async def _key_for(self, header: dict[str, Any]) -> tuple[str, jwt.PyJWK]:
        """The one key that may verify this token, chosen by its algorithm's key type.

        The secret only ever verifies HMAC tokens and JWKS keys only asymmetric ones, so a
        public key can never be passed off as an HMAC secret, and `none` matches nothing.
        Only `alg` and `kid` are read: `jku`, `x5u`, `x5c` and `jwk` would let the token
        name its own key, so they are ignored.
        """
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise InvalidToken
        if self._hmac_key is not None and algorithm in self._hmac_algorithms:
            return algorithm, self._hmac_key
        if self._jwks is None or algorithm not in self._jwks.algorithms:
            self._refuse_algorithm(algorithm)
            raise InvalidToken
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or len(kid) > MAX_KID_LENGTH):
            raise InvalidToken
        key = await self._jwks.get(kid, algorithm)
        if key is None:
            self._refusals.report(
                "unknown_kid",
                "no %s key with kid %s in the JWKS at %s, fetched just now; it lists: %s "
                "(is JWKS_URL this issuer's?)",
                algorithm,
                shown(kid),
                self._jwks.url,
                ", ".join(shown(known) for known in self._jwks.kids(algorithm)) or "no such key",
            )
            raise InvalidToken
        return algorithm, key

    def _user_id(self, claims: dict[str, object]) -> str:
        user_id = claims.get(self._user_claim)
        # PostgreSQL text cannot hold NUL: such an id could never own a task.
        if (
            not isinstance(user_id, str)
            or not 1 <= len(user_id) <= MAX_USER_ID_LENGTH
            or "\x00" in user_id
        ):
            raise InvalidToken
        return user_id

    async def aclose(self) -> None:
        if self._jwks is not None:
            await self._jwks.aclose()


def _unverified_claim(token: str, name: str) -> object:
    try:
        return jwt.decode(token, options={"verify_signature": False}).get(name)
    except jwt.PyJWTError:
        return None
