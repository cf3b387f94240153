from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The checkout's root, where `.env` lives next to `.env.example`; a `.env` in the working
# directory wins over it.
_ROOT = Path(__file__).resolve().parents[3]
MIN_SECRET_LENGTH = 32


class ConfigError(ValueError):
    """A setting that stops start-up; its message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=(_ROOT / ".env", ".env"), env_file_encoding="utf-8", extra="ignore"
    )

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"

    # Unset outside production: an embedded PostgreSQL is started (see `tasks-api run`).
    database_url: SecretStr | None = None
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=20, ge=0)
    db_pool_recycle: int = Field(default=3600, ge=-1)
    # How long a request waits for a pooled connection before it is answered 503.
    db_pool_timeout: float = Field(default=5.0, gt=0)
    db_connect_timeout: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=10_000, ge=0)

    jwt_secret: SecretStr | None = None
    jwks_url: str | None = None
    jwt_algorithms: Annotated[list[str], NoDecode] = ["HS256", "EdDSA", "ES256", "RS256"]
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_user_id_claim: str = "sub"
    jwt_leeway_seconds: int = Field(default=5, ge=0, le=300)

    cors_origins: Annotated[list[str], NoDecode] = []

    @field_validator("jwt_algorithms", "cors_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
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
