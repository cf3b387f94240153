from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The checkout's root, where `.env` lives next to `.env.example`; a `.env` in the working
# directory wins over it.
_ROOT = Path(__file__).resolve().parents[3]
MIN_SECRET_LENGTH = 32
# Everything a token may be signed with: HS256 with JWT_SECRET, the rest with JWKS_URL's keys.
SUPPORTED_JWT_ALGORITHMS = ("HS256", "EdDSA", "ES256", "RS256")


class ConfigError(Exception):
    """A setting that stops start-up; its message says what to set.

    Not a ValueError: pydantic would wrap that in a ValidationError, whose text spreads
    over several lines and echoes the input, secrets included."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=(_ROOT / ".env", ".env"), env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    # Unset: JSON lines in production and test, one readable line per record in development.
    log_format: Literal["text", "json"] | None = None
    # Keys the user reference in access logs; unset, it is derived from JWT_SECRET (or
    # JWKS_URL). Stable across instances and restarts, so one user's lines can be followed.
    log_user_key: SecretStr | None = None

    # Unset outside production: an embedded PostgreSQL is started (see `tasks-api run`).
    database_url: SecretStr | None = None
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)
    db_pool_recycle: int = Field(default=3600, ge=-1)
    # How long a request waits for a pooled connection before it is answered 503.
    db_pool_timeout: float = Field(default=5.0, gt=0)
    db_connect_timeout: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=10_000, ge=0)
    # Deleted tasks are remembered this long for the sync feed; an older token is a 410.
    sync_retention_days: int = Field(default=30, ge=1, le=3650)
    # A direct, unpooled connection for LISTEN (live changes) when DATABASE_URL goes
    # through a transaction pooler; derived from a Neon `-pooler` host when unset.
    database_direct_url: SecretStr | None = None
    events_max_streams_per_user: int = Field(default=10, ge=1, le=10_000)
    # Internal knobs of the event streams (the contract's 15 s; tests shorten them): a
    # comment after this long without an event, and how long one send may block before
    # the reader is taken for stuck and dropped.
    events_keepalive_seconds: float = Field(default=15.0, gt=0)
    events_send_timeout_seconds: float = Field(default=10.0, gt=0)

    jwt_secret: SecretStr | None = None
    jwks_url: str | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = list(SUPPORTED_JWT_ALGORITHMS)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_user_id_claim: str = "sub"
    jwt_leeway_seconds: int = Field(default=5, ge=0, le=300)
    # A slow key server holds requests for at most this long; an unknown `kid` triggers at
    # most one fetch per interval (sooner, the request waits for it: auth/jwks.py); known
    # keys are re-read after `jwks_cache_seconds`.
    jwks_timeout_seconds: float = Field(default=3.0, gt=0, le=30)
    jwks_refresh_interval_seconds: float = Field(default=5.0, gt=0, le=300)
    jwks_cache_seconds: float = Field(default=300.0, gt=0)

    cors_origins: Annotated[list[str], NoDecode] = []

    @field_validator("jwt_algorithms", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("jwt_secret", "jwks_url", "database_direct_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `JWT_SECRET=` in a .env means "no secret", not an empty HMAC key anyone can use.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # In every environment: a short HMAC secret can be brute-forced offline from any one
        # token, and a development setting that production would refuse only hides the problem.
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ConfigError(f"JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("jwks_url")
    @classmethod
    def _check_jwks_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ConfigError("JWKS_URL must be an http:// or https:// URL")
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _check_algorithms(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in SUPPORTED_JWT_ALGORITHMS]
        if unknown or not value:
            raise ConfigError(
                f"JWT_ALGORITHMS may only list {', '.join(SUPPORTED_JWT_ALGORITHMS)} "
                f"(got {', '.join(value) or 'nothing'})"
            )
        return value

    @model_validator(mode="after")
    def _check_production(self) -> "Settings":
        if self.environment != "production":
            return self
        if self.database_url is None:
            raise ConfigError("DATABASE_URL must be set in production")
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if not self.jwks_url and len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"set JWKS_URL, or JWT_SECRET to at least {MIN_SECRET_LENGTH} characters, "
                "in production"
            )
        return self

    @property
    def is_production(self) -> bool:
        return self.environment == "production"


@lru_cache
def get_settings() -> Settings:
    return Settings()
