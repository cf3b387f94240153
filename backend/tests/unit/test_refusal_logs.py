"""Tokens refused for a configuration reason leave a line that says why, never the token."""

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tasks_api.auth.refusals import RefusalLog
from tasks_api.auth.tokens import ExpiredToken, InvalidToken, TokenVerifier
from tasks_api.config import Settings
from tests.support.auth import TEST_SECRET
from tests.support.jwks import SigningKey, hmac_token, jwks_server, unsigned_token

BASE = "http://127.0.0.1:3006"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="tasks_api.auth"):
        yield caplog


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "tasks_api.auth" and "token refused" in record.getMessage()
    ]


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "exp": int(time.time()) + 600, **extra}


async def refused(verifier: TokenVerifier, token: str, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(InvalidToken):
            await verifier.verify(token)


def secret_verifier(**settings: Any) -> TokenVerifier:
    return TokenVerifier(Settings(_env_file=None, jwt_secret=TEST_SECRET, **settings))


class TestConfigurationReasons:
    async def test_issuer_mismatch(self, lines: pytest.LogCaptureFixture) -> None:
        verifier = secret_verifier(jwt_issuer=BASE + "/")
        token = hmac_token({"alg": "HS256"}, claims(iss=BASE, aud=BASE), TEST_SECRET)
        await refused(verifier, token, times=5)
        [line] = refusals(lines)  # once, however many tokens
        assert "[issuer]" in line
        assert f"iss '{BASE}' is not JWT_ISSUER '{BASE}/'" in line
        assert "origin" in line
        assert token not in lines.text
        assert token.split(".")[1] not in lines.text

    async def test_missing_issuer(self, lines: pytest.LogCaptureFixture) -> None:
        verifier = secret_verifier(jwt_issuer=BASE)
        await refused(verifier, hmac_token({"alg": "HS256"}, claims(), TEST_SECRET))
        [line] = refusals(lines)
        assert f"iss None is not JWT_ISSUER '{BASE}'" in line

    async def test_audience_mismatch(self, lines: pytest.LogCaptureFixture) -> None:
        verifier = secret_verifier(jwt_audience=BASE + "/auth")
        token = hmac_token({"alg": "HS256"}, claims(aud=BASE), TEST_SECRET)
        await refused(verifier, token, times=3)
        [line] = refusals(lines)
        assert "[audience]" in line
        assert f"aud '{BASE}' does not contain JWT_AUDIENCE '{BASE}/auth'" in line
        assert token not in lines.text

    async def test_algorithm_without_its_key_setting(self, lines: pytest.LogCaptureFixture) -> None:
        # Better Auth's EdDSA token, but only JWT_SECRET is set.
        verifier = secret_verifier()
        token = SigningKey.generate("EdDSA").sign(claims())
        await refused(verifier, token, times=2)
        [line] = refusals(lines)
        assert "[algorithm]" in line
        assert "alg 'EdDSA' is not accepted; accepted: HS256" in line
        assert "JWKS_URL" in line
        assert token not in lines.text

    async def test_algorithm_outside_the_allow_list(self, lines: pytest.LogCaptureFixture) -> None:
        key = SigningKey.generate("RS256")
        with jwks_server(key) as server:
            verifier = TokenVerifier(
                Settings(_env_file=None, jwks_url=server.url, jwt_algorithms=["EdDSA", "ES256"])
            )
            try:
                await refused(verifier, key.sign(claims()))
            finally:
                await verifier.aclose()
        [line] = refusals(lines)
        assert "alg 'RS256' is not accepted; accepted: ES256, EdDSA" in line

    async def test_no_key_for_the_kid_after_a_fetch(self, lines: pytest.LogCaptureFixture) -> None:
        published, other = SigningKey.generate("EdDSA"), SigningKey.generate("EdDSA")
        with jwks_server(published) as server:
            verifier = TokenVerifier(
                Settings(_env_file=None, jwks_url=server.url, jwks_refresh_interval_seconds=0.05)
            )
            try:
                token = other.sign(claims())
                await refused(verifier, token, times=2)
            finally:
                await verifier.aclose()
        [line] = refusals(lines)
        assert "[unknown_kid]" in line
        assert f"no EdDSA key with kid '{other.kid}' in the JWKS at {server.url}" in line
        assert f"it lists: '{published.kid}'" in line
        assert token not in lines.text
        assert server.fetches == 2  # each token was decided by a fetch


class TestNotConfigurationReasons:
    async def test_bad_tokens_leave_no_line(self, lines: pytest.LogCaptureFixture) -> None:
        verifier = secret_verifier(jwt_issuer=BASE, jwt_audience=BASE)
        good = claims(iss=BASE, aud=BASE)
        await refused(verifier, hmac_token({"alg": "HS256"}, good, "wrong-" + "w" * 40))
        await refused(verifier, unsigned_token({"alg": "none"}, good))
        await refused(verifier, unsigned_token({"alg": "x" * 500}, good))
        await refused(verifier, unsigned_token({"alg": ["HS256"]}, good))
        await refused(verifier, unsigned_token({"alg": {"HS256": 1}}, good))
        # A forged iss is refused by its signature before any claim is looked at.
        await refused(verifier, hmac_token({"alg": "HS256"}, claims(iss="evil"), "k" * 40))
        with pytest.raises(ExpiredToken):
            await verifier.verify(
                hmac_token({"alg": "HS256"}, {**good, "exp": int(time.time()) - 60}, TEST_SECRET)
            )
        assert await verifier.verify(hmac_token({"alg": "HS256"}, good, TEST_SECRET)) == "alice"
        assert refusals(lines) == []


class TestRateLimit:
    def test_one_line_per_reason_per_interval(self, lines: pytest.LogCaptureFixture) -> None:
        now = [1000.0]
        log = RefusalLog(interval=60, clock=lambda: now[0])
        for _ in range(3):
            log.report("issuer", "iss %s", "'a'")
        log.report("audience", "aud %s", "'b'")
        now[0] += 59
        log.report("issuer", "iss %s", "'a'")
        assert refusals(lines) == [
            "token refused [issuer]: iss 'a'",
            "token refused [audience]: aud 'b'",
        ]
        now[0] += 1
        log.report("issuer", "iss %s", "'a'")
        assert refusals(lines)[-1] == (
            "token refused [issuer]: iss 'a' (3 more refused for this reason since the last line)"
        )

    def test_values_are_bounded(self, lines: pytest.LogCaptureFixture) -> None:
        from tasks_api.auth.refusals import shown

        assert len(shown("k" * 5000)) <= 210
        assert shown("a\nb") == "'a\\nb'"

    def test_lines_survive_the_log_scrubber(self, lines: pytest.LogCaptureFixture) -> None:
        """The scrubber blanks what follows "bearer": these lines must not say it."""
        from tasks_api.logging_config import Redactor

        RefusalLog().report("issuer", "iss %s is not JWT_ISSUER %s", "'a'", "'b'")
        [line] = refusals(lines)
        assert Redactor(()).scrub(line) == line
