"""The token verifier and the JWKS cache on their own: settings rules, key parsing, fetching."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tasks_api.auth import tokens
from tasks_api.auth.jwks import JwksCache, KeysUnavailable, parse_jwks
from tasks_api.auth.tokens import ExpiredToken, InvalidToken, TokenVerifier
from tasks_api.config import ConfigError, Settings
from tasks_api.errors import ServiceUnavailable
from tests.support.auth import TEST_SECRET
from tests.support.jwks import (
    JwksServer,
    SigningKey,
    b64url,
    hmac_token,
    jwks_server,
    random_id,
    unused_port_url,
)

ASYMMETRIC = frozenset({"EdDSA", "ES256", "RS256"})
DATABASE_URL = "postgresql://app:pw@db.example.com/tasks"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "exp": int(time.time()) + 600, **extra}


class TestSecretRule:
    @pytest.mark.parametrize("environment", ["development", "test", "production"])
    def test_short_secret_refused_everywhere(self, environment: str) -> None:
        short = "s" * 31
        with pytest.raises(ConfigError, match="at least 32 characters") as error:
            Settings(
                _env_file=None,
                environment=environment,
                database_url=DATABASE_URL,
                jwt_secret=short,
            )
        assert short not in str(error.value)

    def test_32_characters_are_enough(self) -> None:
        settings = Settings(_env_file=None, jwt_secret="s" * 32)
        assert settings.jwt_secret is not None

    @pytest.mark.parametrize("blank", ["", "   "])
    def test_blank_secret_is_no_secret(self, blank: str) -> None:
        assert Settings(_env_file=None, jwt_secret=blank).jwt_secret is None
        with pytest.raises(ConfigError, match="JWKS_URL"):
            Settings(
                _env_file=None,
                environment="production",
                database_url=DATABASE_URL,
                jwt_secret=blank,
            )

    @pytest.mark.parametrize("algorithms", ["none", "HS256,none", "HS512", "RS512", "PS256", ","])
    def test_algorithms_outside_the_allow_list(self, algorithms: str) -> None:
        with pytest.raises(ConfigError, match="JWT_ALGORITHMS"):
            Settings(_env_file=None, jwt_algorithms=algorithms)

    def test_algorithms_from_a_comma_list(self) -> None:
        settings = Settings(_env_file=None, jwt_algorithms=" EdDSA, RS256 ")
        assert settings.jwt_algorithms == ["EdDSA", "RS256"]

    @pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://auth/jwks", "auth/jwks"])
    def test_jwks_url_must_be_http(self, url: str) -> None:
        with pytest.raises(ConfigError, match="JWKS_URL"):
            Settings(_env_file=None, jwks_url=url)


class TestParseJwks:
    def test_better_auth_keys(self) -> None:
        keys = [SigningKey.generate(alg) for alg in ("EdDSA", "ES256", "RS256")]
        parsed = parse_jwks({"keys": [key.public_jwk() for key in keys]}, ASYMMETRIC)
        assert set(parsed) == {(key.kid, key.algorithm) for key in keys}

    def test_alg_member_is_optional(self) -> None:
        key = SigningKey.generate("EdDSA")
        parsed = parse_jwks({"keys": [key.public_jwk(with_alg=False)]}, ASYMMETRIC)
        assert set(parsed) == {(key.kid, "EdDSA")}

    @pytest.mark.parametrize(
        "jwk",
        [
            {"kty": "oct", "kid": "sym", "k": b64url(b"k" * 32)},
            {"kty": "oct", "kid": "sym", "alg": "HS256", "k": b64url(b"k" * 32)},
            "not an object",
            {"kid": "no-kty"},
            {"kty": "OKP", "crv": "Ed448", "x": b64url(b"x" * 57), "kid": "448"},
            {"kty": "OKP", "crv": "X25519", "x": b64url(b"x" * 32), "kid": "ecdh"},
            {"kty": "OKP", "crv": "Ed25519", "x": "!!", "kid": "broken"},
        ],
    )
    def test_unusable_keys_are_skipped(self, jwk: Any) -> None:
        good = SigningKey.generate("EdDSA")
        parsed = parse_jwks({"keys": [jwk, good.public_jwk()]}, ASYMMETRIC)
        assert set(parsed) == {(good.kid, "EdDSA")}

    def test_private_keys_are_skipped(self) -> None:
        key = SigningKey.generate("EdDSA")
        private = jwt.algorithms.OKPAlgorithm.to_jwk(key.private_key, as_dict=True)
        assert parse_jwks({"keys": [{**private, "kid": key.kid}]}, ASYMMETRIC) == {}

    def test_encryption_keys_are_skipped(self) -> None:
        key = SigningKey.generate("ES256")
        assert parse_jwks({"keys": [{**key.public_jwk(), "use": "enc"}]}, ASYMMETRIC) == {}

    def test_weak_rsa_keys_are_skipped(self) -> None:
        weak_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
        weak = SigningKey("RS256", weak_key)
        assert parse_jwks({"keys": [weak.public_jwk()]}, ASYMMETRIC) == {}

    def test_algorithms_outside_the_allow_list_are_skipped(self) -> None:
        p384 = SigningKey("ES256", ec.generate_private_key(ec.SECP384R1()))
        rs512 = {**SigningKey.generate("RS256").public_jwk(), "alg": "RS512"}
        eddsa = SigningKey.generate("EdDSA")
        document = {"keys": [p384.public_jwk(with_alg=False), rs512, eddsa.public_jwk()]}
        assert set(parse_jwks(document, ASYMMETRIC)) == {(eddsa.kid, "EdDSA")}
        assert parse_jwks(document, frozenset({"RS256"})) == {}

    @pytest.mark.parametrize("kid", [1, ["a"], {"a": 1}, None])
    def test_kid_must_be_a_string_when_present(self, kid: object) -> None:
        jwk = {**SigningKey.generate("EdDSA").public_jwk(), "kid": kid}
        assert parse_jwks({"keys": [jwk]}, ASYMMETRIC) == {}

    def test_key_without_kid(self) -> None:
        jwk = SigningKey.generate("EdDSA").public_jwk()
        del jwk["kid"]
        assert set(parse_jwks({"keys": [jwk]}, ASYMMETRIC)) == {(None, "EdDSA")}

    @pytest.mark.parametrize("document", [[], {}, {"keys": "x"}, {"keys": None}, "keys"])
    def test_not_a_key_set(self, document: Any) -> None:
        with pytest.raises(ValueError, match="JWK set"):
            parse_jwks(document, ASYMMETRIC)


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate("EdDSA")


@pytest.fixture
def server(key: SigningKey) -> Iterator[JwksServer]:
    with jwks_server(key) as server:
        yield server


@pytest.fixture
async def cache(server: JwksServer) -> AsyncIterator[JwksCache]:
    cache = JwksCache(
        server.url, algorithms=ASYMMETRIC, timeout=5, refresh_interval=0.001, max_age=300
    )
    yield cache
    await cache.aclose()


class TestJwksCache:
    async def test_one_fetch_in_flight_for_all_waiters(
        self, cache: JwksCache, server: JwksServer, key: SigningKey
    ) -> None:
        # The refresh interval is ~0 here: only the shared in-flight fetch keeps this at one.
        server.mode, server.delay = "slow", 0.3
        results = await asyncio.gather(
            *(cache.get(random_id(), "EdDSA") for _ in range(1000)), cache.get(key.kid, "EdDSA")
        )
        assert results[:-1] == [None] * 1000
        assert results[-1] is not None
        assert server.fetches == 1

    async def test_a_waiter_hanging_up_does_not_cancel_the_fetch(
        self, cache: JwksCache, server: JwksServer, key: SigningKey
    ) -> None:
        server.mode, server.delay = "slow", 0.2
        impatient = asyncio.create_task(cache.get(key.kid, "EdDSA"))
        await asyncio.sleep(0.05)
        patient = asyncio.create_task(cache.get(key.kid, "EdDSA"))
        await asyncio.sleep(0.05)
        impatient.cancel()
        assert await patient is not None
        assert server.fetches == 1
        with pytest.raises(asyncio.CancelledError):
            await impatient

    async def test_keys_are_parsed_once(
        self, server: JwksServer, key: SigningKey, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        built = 0

        class CountingPyJWK(jwt.PyJWK):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                nonlocal built
                built += 1
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(jwt, "PyJWK", CountingPyJWK)
        verifier = TokenVerifier(Settings(_env_file=None, jwks_url=server.url))
        try:
            for _ in range(50):
                assert await verifier.verify(key.sign(claims())) == "alice"
        finally:
            await verifier.aclose()
        assert (built, server.fetches) == (1, 1)

    async def test_aclose_stops_a_fetch_in_flight(
        self, cache: JwksCache, server: JwksServer, key: SigningKey
    ) -> None:
        server.mode, server.delay = "slow", 1.0
        waiter = asyncio.create_task(cache.get(key.kid, "EdDSA"))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await cache.aclose()
        assert time.monotonic() - started < 0.5
        with pytest.raises(asyncio.CancelledError):
            await waiter

    async def test_a_new_key_waits_for_the_next_allowed_fetch(
        self, server: JwksServer, key: SigningKey
    ) -> None:
        cache = JwksCache(
            server.url, algorithms=ASYMMETRIC, timeout=5, refresh_interval=0.5, max_age=300
        )
        try:
            assert await cache.get(key.kid, "EdDSA") is not None
            rotated = SigningKey.generate("EdDSA")
            server.publish(key, rotated)
            # Fetched a moment ago, too recently to fetch again: the new key's requests wait
            # for the next allowed fetch, all of them on the same one.
            found = await asyncio.gather(*(cache.get(rotated.kid, "EdDSA") for _ in range(50)))
            assert all(result is not None for result in found)
            assert server.fetches == 2
            # A kid that no fetch can find is decided by that next fetch too: no key.
            assert await cache.get(random_id(), "EdDSA") is None
            assert server.fetches == 3
        finally:
            await cache.aclose()

    async def test_a_wait_longer_than_a_few_seconds_is_a_503(
        self, server: JwksServer, key: SigningKey
    ) -> None:
        cache = JwksCache(
            server.url, algorithms=ASYMMETRIC, timeout=5, refresh_interval=60, max_age=300
        )
        try:
            assert await cache.get(key.kid, "EdDSA") is not None
            with pytest.raises(KeysUnavailable) as error:
                await cache.get(random_id(), "EdDSA")
        finally:
            await cache.aclose()
        assert 55 <= int(error.value.headers["Retry-After"]) <= 60
        assert server.fetches == 1

    async def test_unavailable_is_a_503_with_retry_after(self) -> None:
        cache = JwksCache(
            unused_port_url(),
            algorithms=ASYMMETRIC,
            timeout=1,
            refresh_interval=5,
            max_age=300,
        )
        try:
            with pytest.raises(KeysUnavailable) as error:
                await cache.get("kid", "EdDSA")
        finally:
            await cache.aclose()
        assert isinstance(error.value, ServiceUnavailable)
        assert error.value.status_code == 503
        assert 1 <= int(error.value.headers["Retry-After"]) <= 5


class TestTokenVerifier:
    async def test_no_secret_means_no_hmac_tokens(self) -> None:
        verifier = TokenVerifier(Settings(_env_file=None))
        for secret in ("", TEST_SECRET):
            token = hmac_token({"alg": "HS256", "typ": "JWT"}, claims(), secret)
            with pytest.raises(InvalidToken):
                await verifier.verify(token)

    async def test_no_jwks_means_no_asymmetric_tokens(self, key: SigningKey) -> None:
        verifier = TokenVerifier(Settings(_env_file=None, jwt_secret=TEST_SECRET))
        with pytest.raises(InvalidToken):
            await verifier.verify(key.sign(claims()))

    async def test_expired_is_its_own_error(self) -> None:
        verifier = TokenVerifier(Settings(_env_file=None, jwt_secret=TEST_SECRET))
        token = hmac_token({"alg": "HS256"}, claims(exp=int(time.time()) - 60), TEST_SECRET)
        with pytest.raises(ExpiredToken):
            await verifier.verify(token)

    async def test_leeway_is_configurable(self) -> None:
        token = hmac_token({"alg": "HS256"}, claims(exp=int(time.time()) - 20), TEST_SECRET)
        lenient = TokenVerifier(
            Settings(_env_file=None, jwt_secret=TEST_SECRET, jwt_leeway_seconds=60)
        )
        assert await lenient.verify(token) == "alice"
        strict = TokenVerifier(Settings(_env_file=None, jwt_secret=TEST_SECRET))
        with pytest.raises(ExpiredToken):
            await strict.verify(token)

    async def test_user_claim_is_configurable(self) -> None:
        verifier = TokenVerifier(
            Settings(_env_file=None, jwt_secret=TEST_SECRET, jwt_user_id_claim="uid")
        )
        token = hmac_token({"alg": "HS256"}, claims(uid="bob"), TEST_SECRET)
        assert await verifier.verify(token) == "bob"
        with pytest.raises(InvalidToken):
            await verifier.verify(hmac_token({"alg": "HS256"}, claims(), TEST_SECRET))

    async def test_a_rotated_key_is_accepted_at_once(
        self, server: JwksServer, key: SigningKey
    ) -> None:
        verifier = TokenVerifier(
            Settings(_env_file=None, jwks_url=server.url, jwks_refresh_interval_seconds=1)
        )
        try:
            assert await verifier.verify(key.sign(claims())) == "alice"
            rotated = SigningKey.generate("EdDSA")
            server.publish(key, rotated)
            # Signed with the new key right after the API fetched the old set.
            assert await verifier.verify(rotated.sign(claims())) == "alice"
            assert await verifier.verify(key.sign(claims())) == "alice"
        finally:
            await verifier.aclose()
        assert server.fetches == 2

    async def test_error_messages_name_only_the_kind(self) -> None:
        verifier = TokenVerifier(Settings(_env_file=None, jwt_secret=TEST_SECRET))
        token = hmac_token({"alg": "HS256"}, claims(), "wrong-" + "w" * 40)
        with pytest.raises(InvalidToken) as error:
            await verifier.verify(token)
        assert error.value.message == "The bearer token is invalid."
        assert error.value.__cause__ is None
        assert error.value.__suppress_context__


class _Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class TestVerifiedTokenReuse:
    """A token verified once is taken again without PyJWT while the key that verified it is
    still trusted; its `exp` holds on every reuse, and nothing else is taken for it."""

    @pytest.fixture
    def decodes(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        calls: list[str] = []
        decode = jwt.decode

        def counting(token: str, *args: Any, **kwargs: Any) -> Any:
            calls.append(token)
            return decode(token, *args, **kwargs)

        monkeypatch.setattr(jwt, "decode", counting)
        return calls

    async def test_a_verified_token_is_reused(self, decodes: list[str]) -> None:
        verifier = TokenVerifier(Settings(_env_file=None, jwt_secret=TEST_SECRET))
        token = hmac_token({"alg": "HS256"}, claims(), TEST_SECRET)
        for _ in range(3):
            assert await verifier.verify(token) == "alice"
        assert len(decodes) == 1

    async def test_a_withdrawn_key_ends_the_reuse(
        self, server: JwksServer, key: SigningKey, decodes: list[str]
    ) -> None:
        verifier = TokenVerifier(
            Settings(_env_file=None, jwks_url=server.url, jwks_refresh_interval_seconds=0.01)
        )
        token = key.sign(claims())
        try:
            assert await verifier.verify(token) == "alice"
            assert await verifier.verify(token) == "alice"
            assert len(decodes) == 1
            rotated = SigningKey.generate("EdDSA")
            server.publish(rotated)
            await asyncio.sleep(0.02)
            # Another token with an unknown kid makes the API fetch the new set.
            with pytest.raises(InvalidToken):
                await verifier.verify(key.sign(claims(), kid=random_id()))
            assert server.fetches == 2
            with pytest.raises(InvalidToken):
                await verifier.verify(token)
        finally:
            await verifier.aclose()

    async def test_a_reused_token_still_expires(self, decodes: list[str]) -> None:
        clock = _Clock()
        verifier = TokenVerifier(
            Settings(_env_file=None, jwt_secret=TEST_SECRET, jwt_leeway_seconds=5), clock=clock
        )
        exp = int(clock.now) + 20
        token = hmac_token({"alg": "HS256"}, claims(exp=exp), TEST_SECRET)
        assert await verifier.verify(token) == "alice"
        clock.now = exp + 4.9  # within the leeway
        assert await verifier.verify(token) == "alice"
        clock.now = exp + 5
        with pytest.raises(ExpiredToken):
            await verifier.verify(token)
        assert len(decodes) == 1

    async def test_only_the_exact_token_is_reused(self) -> None:
        verifier = TokenVerifier(Settings(_env_file=None, jwt_secret=TEST_SECRET))
        token = hmac_token({"alg": "HS256"}, claims(), TEST_SECRET)
        assert await verifier.verify(token) == "alice"
        message, _, signature = token.rpartition(".")
        forged = f"{message}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
        with pytest.raises(InvalidToken):
            await verifier.verify(forged)
        other_user = hmac_token({"alg": "HS256"}, claims(sub="bob"), "wrong-" + "w" * 40)
        with pytest.raises(InvalidToken):
            await verifier.verify(other_user)

    async def test_refused_tokens_are_not_remembered(self, decodes: list[str]) -> None:
        verifier = TokenVerifier(Settings(_env_file=None, jwt_secret=TEST_SECRET))
        token = hmac_token({"alg": "HS256"}, claims(), "wrong-" + "w" * 40)
        for _ in range(2):
            with pytest.raises(InvalidToken):
                await verifier.verify(token)
        assert len(decodes) == 2

    async def test_the_oldest_entry_goes_when_full(
        self, decodes: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(tokens, "MAX_REUSED_TOKENS", 3)
        verifier = TokenVerifier(Settings(_env_file=None, jwt_secret=TEST_SECRET))
        issued = [
            hmac_token({"alg": "HS256"}, claims(sub=f"user-{n}"), TEST_SECRET) for n in range(4)
        ]
        for token in issued:
            await verifier.verify(token)
        assert len(decodes) == 4
        for token in issued[1:]:
            await verifier.verify(token)  # still kept
        assert len(decodes) == 4
        assert await verifier.verify(issued[0]) == "user-0"  # dropped: verified again
        assert len(decodes) == 5
