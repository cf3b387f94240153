"""Bearer token verification with PyJWT: algorithms pinned per key type, claims checked."""

import jwt

from tasks_api.config import Settings
from tasks_api.errors import Unauthorized

# Larger tokens are rejected before any parsing; real ones are well under 2 KB.
MAX_TOKEN_LENGTH = 8192
MAX_USER_ID_LENGTH = 255
HMAC_ALGORITHMS = frozenset({"HS256"})


class InvalidToken(Unauthorized):
    default_message = "The bearer token is invalid."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class ExpiredToken(InvalidToken):
    default_message = "The bearer token has expired."


class MissingToken(Unauthorized):
    def __init__(self) -> None:
        super().__init__(headers={"WWW-Authenticate": "Bearer"})


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._hmac_algorithms = sorted(HMAC_ALGORITHMS.intersection(settings.jwt_algorithms))
        self._user_claim = settings.jwt_user_id_claim
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._options: jwt.types.Options = {
            "require": ["exp"],
            # Without a configured audience an `aud` claim is not ours to judge.
            "verify_aud": self._audience is not None,
            "verify_iss": self._issuer is not None,
        }

    def verify(self, token: str) -> str:
        """Return the user id the token speaks for, or raise a 401 error."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken from None
        algorithm = header.get("alg")
        # The secret is only ever used for HMAC algorithms: never `none`, never an
        # asymmetric algorithm whose public key could be passed off as an HMAC secret.
        if self._secret is None or algorithm not in self._hmac_algorithms:
            raise InvalidToken
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=self._hmac_algorithms,
                options=self._options,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredToken from None
        except jwt.PyJWTError:
            raise InvalidToken from None
        return self._user_id(claims)

    def _user_id(self, claims: dict[str, object]) -> str:
        user_id = claims.get(self._user_claim)
        if not isinstance(user_id, str) or not 1 <= len(user_id) <= MAX_USER_ID_LENGTH:
            raise InvalidToken
        return user_id
