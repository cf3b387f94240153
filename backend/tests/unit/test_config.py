"""Settings from the environment, and the production checks that stop start-up."""

import pytest
from pydantic import ValidationError

from tasks_api.config import ConfigError, Settings

STRONG_SECRET = "s" * 48
DATABASE_URL = "postgresql://app:pw-in-url@db.example.com/tasks"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: nothing from the developer's shell."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


class TestSettings:
    def test_defaults(self) -> None:
        settings = Settings(_env_file=None)
        assert settings.environment == "development"
        assert settings.database_url is None
        assert (settings.db_pool_size, settings.db_max_overflow, settings.db_pool_recycle) == (
            10,
            20,
            3600,
        )
        assert settings.jwt_user_id_claim == "sub"
        assert settings.cors_origins == []

    def test_cors_origins_from_a_comma_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CORS_ORIGINS", " http://localhost:3000, https://app.example.com ,")
        settings = Settings(_env_file=None)
        assert settings.cors_origins == ["http://localhost:3000", "https://app.example.com"]

    def test_cors_origins_as_a_list(self) -> None:
        settings = Settings(_env_file=None, cors_origins=["http://a.example"])
        assert settings.cors_origins == ["http://a.example"]

    def test_jwt_algorithms_from_a_comma_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("JWT_ALGORITHMS", "HS256,EdDSA")
        assert Settings(_env_file=None).jwt_algorithms == ["HS256", "EdDSA"]

    def test_environment_variables(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DATABASE_URL", DATABASE_URL)
        monkeypatch.setenv("DB_POOL_SIZE", "3")
        monkeypatch.setenv("ENVIRONMENT", "test")
        settings = Settings(_env_file=None)
        assert settings.database_url is not None
        assert settings.database_url.get_secret_value() == DATABASE_URL
        assert settings.db_pool_size == 3
        assert settings.environment == "test"

    def test_secrets_stay_out_of_repr(self) -> None:
        settings = Settings(_env_file=None, database_url=DATABASE_URL, jwt_secret=STRONG_SECRET)
        assert "pw-in-url" not in repr(settings)
        assert STRONG_SECRET not in repr(settings)

    def test_unknown_environment(self) -> None:
        with pytest.raises(ValidationError):
            Settings(_env_file=None, environment="staging")


class TestProduction:
    def test_complete(self) -> None:
        settings = Settings(
            _env_file=None,
            environment="production",
            database_url=DATABASE_URL,
            jwt_secret=STRONG_SECRET,
        )
        assert settings.is_production

    def test_jwks_instead_of_a_secret(self) -> None:
        settings = Settings(
            _env_file=None,
            environment="production",
            database_url=DATABASE_URL,
            jwks_url="https://auth.example.com/api/auth/jwks",
        )
        assert settings.jwt_secret is None

    def test_missing_database_url(self) -> None:
        with pytest.raises(ConfigError) as error:
            Settings(_env_file=None, environment="production", jwt_secret=STRONG_SECRET)
        message = str(error.value)
        assert "DATABASE_URL" in message
        assert "\n" not in message
        assert STRONG_SECRET not in message

    def test_missing_database_url_from_the_environment(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ENVIRONMENT", "production")
        monkeypatch.setenv("JWT_SECRET", STRONG_SECRET)
        with pytest.raises(ConfigError, match="DATABASE_URL"):
            Settings(_env_file=None)

    def test_no_secret_and_no_jwks(self) -> None:
        with pytest.raises(ConfigError) as error:
            Settings(_env_file=None, environment="production", database_url=DATABASE_URL)
        message = str(error.value)
        assert "JWKS_URL" in message
        assert "JWT_SECRET" in message
        assert "\n" not in message
        assert "pw-in-url" not in message

    def test_short_secret_without_jwks(self) -> None:
        with pytest.raises((ConfigError, ValidationError), match="JWT_SECRET"):
            Settings(
                _env_file=None,
                environment="production",
                database_url=DATABASE_URL,
                jwt_secret="s" * 31,
            )

    def test_development_needs_neither(self) -> None:
        settings = Settings(_env_file=None, environment="development")
        assert settings.database_url is None
        assert not settings.is_production
