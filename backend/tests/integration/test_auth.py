"""Bearer tokens end to end: Better Auth's JWKS and the shared secret, and the attacks on them.

Every JWKS here is served over real HTTP from 127.0.0.1 (tests/support/jwks.py), so the
fetch counts are what the key server really saw.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tasks_api import cli
from tasks_api.config import Settings
from tasks_api.main import create_app
from tests.support.auth import TEST_SECRET, User, make_token
from tests.support.jwks import (
    JWKS_PATH,
    JwksServer,
    SigningKey,
    b64url,
    better_auth_claims,
    hmac_token,
    jwks_server,
    random_id,
    unsigned_token,
    unused_port_url,
)
from tests.support.openapi import OpenAPIChecker

ALGORITHMS = ("EdDSA", "ES256", "RS256")


@asynccontextmanager
async def api(
    settings: Settings, openapi: OpenAPIChecker, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an app of its own (so its own key cache), started like production."""
    app = create_app(settings.model_copy(update=overrides))

    async def check(response: httpx.Response) -> None:
        await response.aread()
        openapi.check(response)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            event_hooks={"response": [check]},
        ) as client,
    ):
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_url(user_id: str) -> str:
    """Any `/api` route does: this one is cheap and its answer depends on nothing else."""
    return f"/api/{user_id}/stats"


def assert_invalid(response: httpx.Response, word: str = "invalid") -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    error = response.json()["error"]
    assert error["code"] == "UNAUTHORIZED"
    assert word in error["message"]


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {algorithm: SigningKey.generate(algorithm) for algorithm in ALGORITHMS}


@pytest.fixture(scope="module")
def idp(keys: dict[str, SigningKey]) -> Iterator[JwksServer]:
    """The Better Auth server: its JWKS lists one key per algorithm."""
    with jwks_server(*keys.values()) as server:
        yield server


@pytest.fixture(scope="module")
def attacker_key() -> SigningKey:
    return SigningKey.generate("EdDSA")


@pytest.fixture(scope="module")
def attacker(attacker_key: SigningKey) -> Iterator[JwksServer]:
    """A key server the attacker controls: nothing may ever fetch from it."""
    with jwks_server(attacker_key) as server:
        yield server


@pytest.fixture(scope="module")
async def better_auth(
    settings: Settings, openapi: OpenAPIChecker, idp: JwksServer
) -> AsyncIterator[httpx.AsyncClient]:
    """The API configured as the README says: JWKS_URL, issuer and audience = its origin,
    and the shared secret too."""
    async with api(
        settings,
        openapi,
        jwks_url=idp.url,
        jwt_issuer=idp.base_url,
        jwt_audience=idp.base_url,
        jwks_refresh_interval_seconds=0.05,
    ) as client:
        yield client


class TestMissingToken:
    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(api_url(alice.id))
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        error = response.json()["error"]
        assert error["code"] == "UNAUTHORIZED"
        assert "missing" in error["message"]
        assert error["details"] is None

    @pytest.mark.parametrize("value", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer ", "Token x"])
    async def test_no_bearer_token(
        self, client: httpx.AsyncClient, alice: User, value: str
    ) -> None:
        response = await client.get(api_url(alice.id), headers={"Authorization": value})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "missing" in response.json()["error"]["message"]


class TestScheme:
    @pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
    async def test_case_insensitive(
        self, client: httpx.AsyncClient, alice: User, scheme: str
    ) -> None:
        response = await client.get(
            api_url(alice.id), headers={"Authorization": f"{scheme} {alice.token}"}
        )
        assert response.status_code == 200


class TestErrorBody:
    async def test_invalid_says_only_invalid(self, client: httpx.AsyncClient, alice: User) -> None:
        token = make_token(alice.id, secret="another-secret-" + "y" * 40)
        response = await client.get(api_url(alice.id), headers=bearer(token))
        assert_invalid(response)
        assert response.json()["error"]["details"] is None
        text = response.text.lower()
        for leak in (TEST_SECRET.lower(), "signature", "verification", "hmac", "hs256", "pyjwt"):
            assert leak not in text
        assert set(response.json()["error"]) == {
            "code",
            "message",
            "details",
            "timestamp",
            "request_id",
        }

    async def test_expired_says_expired(self, client: httpx.AsyncClient, alice: User) -> None:
        token = make_token(alice.id, expires_in=timedelta(minutes=-5))
        response = await client.get(api_url(alice.id), headers=bearer(token))
        assert_invalid(response, "expired")
        assert TEST_SECRET not in response.text


class TestOrderOfChecks:
    async def test_401_beats_403(self, client: httpx.AsyncClient, bob: User) -> None:
        response = await client.get(api_url(bob.id))
        assert response.status_code == 401
        response = await client.get(api_url(bob.id), headers=bearer("not.a.token"))
        assert response.status_code == 401

    async def test_401_beats_malformed_body(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(
            alice.tasks_url, content=b"{garbage", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 401

    async def test_401_beats_wrong_media_type(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.post(
            alice.tasks_url, content=b"title=x", headers={"Content-Type": "text/plain"}
        )
        assert response.status_code == 401

    async def test_401_beats_invalid_parameters(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        response = await client.get(alice.tasks_url + "?limit=abc", headers=bearer("x.y.z"))
        assert response.status_code == 401
        response = await client.get(alice.task_url("not-a-uuid"))
        assert response.status_code == 401

    async def test_403_beats_malformed_body(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        response = await client.post(
            bob.tasks_url,
            content=b"{garbage",
            headers={**alice.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 403


class TestSharedSecretAttacks:
    @pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
    async def test_alg_none(self, client: httpx.AsyncClient, alice: User, alg: str) -> None:
        claims = {"sub": alice.id, "exp": int(time.time()) + 600}
        token = unsigned_token({"alg": alg, "typ": "JWT"}, claims)
        assert_invalid(await client.get(api_url(alice.id), headers=bearer(token)))

    async def test_empty_signature(self, client: httpx.AsyncClient, alice: User) -> None:
        header, payload, _ = alice.token.split(".")
        token = f"{header}.{payload}."
        assert_invalid(await client.get(api_url(alice.id), headers=bearer(token)))

    @pytest.mark.parametrize("secret", ["", " ", "secret", TEST_SECRET[:-1], TEST_SECRET + "x"])
    async def test_wrong_secret(self, client: httpx.AsyncClient, alice: User, secret: str) -> None:
        claims = {"sub": alice.id, "exp": int(time.time()) + 600}
        token = hmac_token({"alg": "HS256", "typ": "JWT"}, claims, secret)
        assert_invalid(await client.get(api_url(alice.id), headers=bearer(token)))

    async def test_payload_changed_after_signing(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        header, _, signature = alice.token.split(".")
        _, payload, _ = bob.token.split(".")
        token = f"{header}.{payload}.{signature}"
        assert_invalid(await client.get(api_url(bob.id), headers=bearer(token)))

    async def test_oversized_token(self, client: httpx.AsyncClient, alice: User) -> None:
        # Correctly signed: only its size gets it rejected.
        token = make_token(alice.id, padding="p" * 16_384)
        assert len(token) > 16_384
        assert_invalid(await client.get(api_url(alice.id), headers=bearer(token)))
        small = make_token(alice.id, padding="p" * 1000)
        assert (await client.get(api_url(alice.id), headers=bearer(small))).status_code == 200

    @pytest.mark.parametrize(
        "token",
        [
            "abc",
            "a.b",
            "a.b.c.d",
            "...",
            b64url(b"[" * 3000 + b"]" * 3000) + ".e30.",
            unsigned_token({"alg": ["HS256"]}, {"sub": "x"}, "sig"),
            unsigned_token({"alg": {"HS256": 1}}, {"sub": "x"}, "sig"),
            unsigned_token({"alg": None}, {"sub": "x"}, "sig"),
            "\u00e9\u00e9.\u00e9.\u00e9",
        ],
    )
    async def test_malformed(self, client: httpx.AsyncClient, alice: User, token: str) -> None:
        response = await client.get(
            api_url(alice.id), headers={"Authorization": f"Bearer {token}".encode()}
        )
        assert_invalid(response)

    async def test_public_key_as_hmac_secret(
        self, client: httpx.AsyncClient, alice: User, keys: dict[str, SigningKey]
    ) -> None:
        pem = (
            keys["RS256"]
            .private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        claims = {"sub": alice.id, "exp": int(time.time()) + 600}
        token = hmac_token({"alg": "HS256", "kid": keys["RS256"].kid}, claims, pem)
        assert_invalid(await client.get(api_url(alice.id), headers=bearer(token)))

    @pytest.mark.parametrize("alg", ALGORITHMS)
    async def test_asymmetric_token_never_checked_with_secret(
        self, client: httpx.AsyncClient, alice: User, alg: str
    ) -> None:
        # The session app has a secret and no JWKS: an RS256 header is no way to reach it.
        claims = {"sub": alice.id, "exp": int(time.time()) + 600}
        token = hmac_token({"alg": alg, "typ": "JWT"}, claims, TEST_SECRET)
        assert_invalid(await client.get(api_url(alice.id), headers=bearer(token)))

    async def test_unsupported_hmac_algorithm(self, client: httpx.AsyncClient, alice: User) -> None:
        claims = {"sub": alice.id, "exp": int(time.time()) + 600}
        token = hmac_token({"alg": "HS512", "typ": "JWT"}, claims, TEST_SECRET, "sha512")
        assert_invalid(await client.get(api_url(alice.id), headers=bearer(token)))


class TestClaims:
    async def test_expired(self, client: httpx.AsyncClient, alice: User) -> None:
        token = make_token(alice.id, expires_in=timedelta(seconds=-30))
        assert_invalid(await client.get(api_url(alice.id), headers=bearer(token)), "expired")

    async def test_expired_within_leeway(self, client: httpx.AsyncClient, alice: User) -> None:
        token = make_token(alice.id, expires_in=timedelta(seconds=-2))
        assert (await client.get(api_url(alice.id), headers=bearer(token))).status_code == 200

    async def test_no_exp(self, client: httpx.AsyncClient, alice: User) -> None:
        token = make_token(alice.id, expires_in=None)
        assert_invalid(await client.get(api_url(alice.id), headers=bearer(token)))

    async def test_nbf_in_future(self, client: httpx.AsyncClient, alice: User) -> None:
        token = make_token(alice.id, nbf=int(time.time()) + 60)
        assert_invalid(await client.get(api_url(alice.id), headers=bearer(token)))
        token = make_token(alice.id, nbf=int(time.time()) - 1)
        assert (await client.get(api_url(alice.id), headers=bearer(token))).status_code == 200

    async def test_iat_in_future(self, client: httpx.AsyncClient, alice: User) -> None:
        token = make_token(alice.id, iat=int(time.time()) + 60)
        assert_invalid(await client.get(api_url(alice.id), headers=bearer(token)))

    @pytest.mark.parametrize("sub", [None, "", "u" * 256, "a\x00b"])
    async def test_no_usable_user(self, client: httpx.AsyncClient, sub: str | None) -> None:
        token = make_token(sub)
        assert_invalid(await client.get(api_url("u" * 256), headers=bearer(token)))

    async def test_user_id_is_opaque(self, client: httpx.AsyncClient) -> None:
        user_id = "u" * 255
        response = await client.get(api_url(user_id), headers=bearer(make_token(user_id)))
        assert response.status_code == 200

    async def test_issuer_and_audience(
        self, better_auth: httpx.AsyncClient, idp: JwksServer
    ) -> None:
        user_id = random_id()
        base = idp.base_url
        cases = {
            "right": ({"iss": base, "aud": base}, 200),
            "wrong iss": ({"iss": "http://evil.example", "aud": base}, 401),
            "wrong aud": ({"iss": base, "aud": "http://evil.example"}, 401),
            "slash": ({"iss": base + "/", "aud": base}, 401),
            "no iss": ({"aud": base}, 401),
            "no aud": ({"iss": base}, 401),
        }
        for name, (claims, status) in cases.items():
            token = make_token(user_id, **claims)
            response = await better_auth.get(api_url(user_id), headers=bearer(token))
            assert response.status_code == status, name


class TestBetterAuth:
    async def test_jwks_is_shaped_like_better_auths(self, idp: JwksServer) -> None:
        eddsa = next(key for key in idp.keys if key["kty"] == "OKP")
        assert set(eddsa) == {"kty", "crv", "x", "kid", "alg"}
        assert (eddsa["crv"], eddsa["alg"]) == ("Ed25519", "EdDSA")

    async def test_eddsa_token(
        self, better_auth: httpx.AsyncClient, idp: JwksServer, keys: dict[str, SigningKey]
    ) -> None:
        claims = better_auth_claims(idp.base_url)
        user_id = claims["sub"]
        assert len(user_id) == 32
        assert claims["exp"] - claims["iat"] == 15 * 60
        token = keys["EdDSA"].sign(claims)
        assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": keys["EdDSA"].kid}

        created = await better_auth.post(
            f"/api/{user_id}/tasks", json={"title": "From Better Auth"}, headers=bearer(token)
        )
        assert created.status_code == 201, created.text
        task = created.json()["data"]
        assert task["user_id"] == user_id
        fetched = await better_auth.get(f"/api/{user_id}/tasks/{task['id']}", headers=bearer(token))
        assert fetched.json()["data"]["title"] == "From Better Auth"

    @pytest.mark.parametrize("alg", ALGORITHMS)
    async def test_each_algorithm(
        self,
        better_auth: httpx.AsyncClient,
        idp: JwksServer,
        keys: dict[str, SigningKey],
        alg: str,
    ) -> None:
        claims = better_auth_claims(idp.base_url)
        token = keys[alg].sign(claims)
        response = await better_auth.get(api_url(claims["sub"]), headers=bearer(token))
        assert response.status_code == 200, response.text

    async def test_shared_secret_alongside_jwks(
        self, better_auth: httpx.AsyncClient, idp: JwksServer
    ) -> None:
        user_id = random_id()
        token = make_token(user_id, iss=idp.base_url, aud=idp.base_url)
        response = await better_auth.get(api_url(user_id), headers=bearer(token))
        assert response.status_code == 200

    async def test_expired(
        self, better_auth: httpx.AsyncClient, idp: JwksServer, keys: dict[str, SigningKey]
    ) -> None:
        claims = better_auth_claims(idp.base_url, expires_in=-60)
        response = await better_auth.get(
            api_url(claims["sub"]), headers=bearer(keys["EdDSA"].sign(claims))
        )
        assert_invalid(response, "expired")

    async def test_403_for_another_users_url(
        self, better_auth: httpx.AsyncClient, idp: JwksServer, keys: dict[str, SigningKey]
    ) -> None:
        token = keys["EdDSA"].sign(better_auth_claims(idp.base_url))
        response = await better_auth.get(api_url(random_id()), headers=bearer(token))
        assert response.status_code == 403


class TestKeySetAttacks:
    @pytest.mark.parametrize("alg", ALGORITHMS)
    async def test_empty_signature(
        self,
        better_auth: httpx.AsyncClient,
        idp: JwksServer,
        keys: dict[str, SigningKey],
        alg: str,
    ) -> None:
        claims = better_auth_claims(idp.base_url)
        header, payload, _ = keys[alg].sign(claims).split(".")
        response = await better_auth.get(
            api_url(claims["sub"]), headers=bearer(f"{header}.{payload}.")
        )
        assert_invalid(response)

    @pytest.mark.parametrize("alg", ALGORITHMS)
    async def test_payload_changed_after_signing(
        self,
        better_auth: httpx.AsyncClient,
        idp: JwksServer,
        keys: dict[str, SigningKey],
        alg: str,
    ) -> None:
        victim = better_auth_claims(idp.base_url)
        header, _, signature = keys[alg].sign(better_auth_claims(idp.base_url)).split(".")
        _, payload, _ = keys[alg].sign(victim).split(".")
        response = await better_auth.get(
            api_url(victim["sub"]), headers=bearer(f"{header}.{payload}.{signature}")
        )
        assert_invalid(response)

    async def test_signed_by_another_key_with_a_known_kid(
        self, better_auth: httpx.AsyncClient, idp: JwksServer, keys: dict[str, SigningKey]
    ) -> None:
        forger = SigningKey.generate("EdDSA", kid=keys["EdDSA"].kid)
        claims = better_auth_claims(idp.base_url)
        response = await better_auth.get(
            api_url(claims["sub"]), headers=bearer(forger.sign(claims))
        )
        assert_invalid(response)

    async def test_algorithm_must_match_the_key(
        self, better_auth: httpx.AsyncClient, idp: JwksServer, keys: dict[str, SigningKey]
    ) -> None:
        # The ES256 key signs, but the header names the Ed25519 key's kid.
        claims = better_auth_claims(idp.base_url)
        token = keys["ES256"].sign(claims, kid=keys["EdDSA"].kid)
        assert_invalid(await better_auth.get(api_url(claims["sub"]), headers=bearer(token)))

    @pytest.mark.parametrize("alg", ALGORITHMS)
    async def test_public_key_as_hmac_secret(
        self,
        better_auth: httpx.AsyncClient,
        idp: JwksServer,
        keys: dict[str, SigningKey],
        alg: str,
    ) -> None:
        public = keys[alg].private_key.public_key()
        pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        claims = better_auth_claims(idp.base_url)
        header = {"alg": "HS256", "kid": keys[alg].kid}
        for secret in (pem, str(keys[alg].public_jwk()).encode(), keys[alg].public_jwk()["kid"]):
            token = hmac_token(header, claims, secret)
            assert_invalid(await better_auth.get(api_url(claims["sub"]), headers=bearer(token)))

    @pytest.mark.parametrize("alg", ALGORITHMS)
    async def test_secret_as_public_key(
        self,
        better_auth: httpx.AsyncClient,
        idp: JwksServer,
        keys: dict[str, SigningKey],
        alg: str,
    ) -> None:
        claims = better_auth_claims(idp.base_url)
        token = hmac_token({"alg": alg, "kid": keys[alg].kid}, claims, TEST_SECRET)
        assert_invalid(await better_auth.get(api_url(claims["sub"]), headers=bearer(token)))

    async def test_symmetric_key_in_jwks_is_never_used(
        self, settings: Settings, openapi: OpenAPIChecker, keys: dict[str, SigningKey]
    ) -> None:
        shared = "published-in-the-jwks-" + "k" * 32
        with jwks_server(keys["EdDSA"]) as server:
            oct_key = {"kty": "oct", "kid": "sym", "alg": "HS256", "k": b64url(shared.encode())}
            server.keys.append(oct_key)
            async with api(settings, openapi, jwks_url=server.url) as client:
                user_id = random_id()
                claims = {"sub": user_id, "exp": int(time.time()) + 600}
                token = hmac_token({"alg": "HS256", "kid": "sym"}, claims, shared)
                assert_invalid(await client.get(api_url(user_id), headers=bearer(token)))
                good = keys["EdDSA"].sign(claims)
                assert (await client.get(api_url(user_id), headers=bearer(good))).status_code == 200

    @pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "all"])
    @pytest.mark.parametrize("kid", ["attacker", "victim", None])
    async def test_header_key_injection(
        self,
        better_auth: httpx.AsyncClient,
        idp: JwksServer,
        keys: dict[str, SigningKey],
        attacker: JwksServer,
        attacker_key: SigningKey,
        header: str,
        kid: str | None,
    ) -> None:
        key = attacker_key
        injected: dict[str, Any] = {
            "jku": {"jku": attacker.url},
            "x5u": {"x5u": attacker.url},
            "jwk": {"jwk": key.public_jwk()},
            "all": {"jku": attacker.url, "x5u": attacker.url, "jwk": key.public_jwk()},
        }[header]
        kid_value = {"attacker": key.kid, "victim": keys["EdDSA"].kid, None: None}[kid]
        claims = better_auth_claims(idp.base_url)
        token = key.sign(claims, kid=kid_value, **injected)
        if kid is None:
            assert "kid" not in jwt.get_unverified_header(token)
        response = await better_auth.get(api_url(claims["sub"]), headers=bearer(token))
        assert_invalid(response)
        assert attacker.requests == []

    @pytest.mark.parametrize(
        "kid",
        [
            "../../../../etc/passwd",
            "..%2f..%2fetc%2fpasswd",
            "/api/auth/jwks?kid=1",
            "1' OR '1'='1' --",
            "'; DROP TABLE tasks; --",
            "http://127.0.0.1:1/jwks",
            "key\x00.pem",
            "k" * 5000,
        ],
    )
    async def test_kid_is_only_a_lookup_key(
        self,
        better_auth: httpx.AsyncClient,
        idp: JwksServer,
        keys: dict[str, SigningKey],
        attacker: JwksServer,
        kid: str,
    ) -> None:
        claims = better_auth_claims(idp.base_url)
        token = keys["EdDSA"].sign(claims, kid=kid)
        assert_invalid(await better_auth.get(api_url(claims["sub"]), headers=bearer(token)))
        assert set(idp.requests) <= {JWKS_PATH}
        assert attacker.requests == []
        # Nothing was dropped or broken along the way.
        good = keys["EdDSA"].sign(claims)
        ok = await better_auth.get(api_url(claims["sub"]), headers=bearer(good))
        assert ok.status_code == 200

    @pytest.mark.parametrize("kid", [1, ["a"], {"a": 1}, True])
    async def test_kid_not_a_string(
        self,
        better_auth: httpx.AsyncClient,
        idp: JwksServer,
        keys: dict[str, SigningKey],
        kid: object,
    ) -> None:
        claims = better_auth_claims(idp.base_url)
        token = keys["EdDSA"].sign(claims, kid=kid)
        assert_invalid(await better_auth.get(api_url(claims["sub"]), headers=bearer(token)))

    async def test_algorithm_allow_list(
        self, settings: Settings, openapi: OpenAPIChecker, keys: dict[str, SigningKey]
    ) -> None:
        with jwks_server(*keys.values()) as server:
            async with api(
                settings, openapi, jwks_url=server.url, jwt_algorithms=["EdDSA"]
            ) as client:
                user_id = random_id()
                claims = {"sub": user_id, "exp": int(time.time()) + 600}
                ok = await client.get(api_url(user_id), headers=bearer(keys["EdDSA"].sign(claims)))
                assert ok.status_code == 200
                for token in (keys["RS256"].sign(claims), keys["ES256"].sign(claims)):
                    assert_invalid(await client.get(api_url(user_id), headers=bearer(token)))
                # The secret is set, but HS256 is not allowed either.
                assert_invalid(
                    await client.get(api_url(user_id), headers=bearer(make_token(user_id)))
                )


class TestKeyRotation:
    async def test_new_kid_accepted_and_removed_kid_rejected(
        self, settings: Settings, openapi: OpenAPIChecker
    ) -> None:
        old, new = SigningKey.generate("EdDSA"), SigningKey.generate("EdDSA")
        user_id = random_id()

        def claims() -> dict[str, Any]:
            return {"sub": user_id, "exp": int(time.time()) + 600}

        async def status(client: httpx.AsyncClient, key: SigningKey, kid: str | None = None) -> int:
            token = key.sign(claims(), kid=kid or key.kid)
            return (await client.get(api_url(user_id), headers=bearer(token))).status_code

        with jwks_server(old) as server:
            async with api(
                settings, openapi, jwks_url=server.url, jwks_refresh_interval_seconds=0.2
            ) as client:
                assert await status(client, old) == 200
                assert await status(client, old) == 200
                assert server.fetches == 1  # the parsed key is cached

                server.publish(old, new)
                # Right after a fetch: the request waits for the next allowed one, no 401.
                assert await status(client, new) == 200
                assert server.fetches == 2

                server.publish(new)
                # Until the next refresh the removed key is still known ...
                assert await status(client, old) == 200
                await asyncio.sleep(0.25)
                # ... and any unknown kid (here a random one) makes that refresh happen.
                assert await status(client, new, kid=random_id()) == 401
                assert server.fetches == 3
                assert await status(client, old) == 401
                assert await status(client, new) == 200

    async def test_cached_keys_expire(self, settings: Settings, openapi: OpenAPIChecker) -> None:
        old, new = SigningKey.generate("ES256"), SigningKey.generate("ES256")
        user_id = random_id()
        token = old.sign({"sub": user_id, "exp": int(time.time()) + 600})
        with jwks_server(old) as server:
            async with api(
                settings,
                openapi,
                jwks_url=server.url,
                jwks_cache_seconds=0.2,
                jwks_refresh_interval_seconds=0.01,
            ) as client:
                assert (
                    await client.get(api_url(user_id), headers=bearer(token))
                ).status_code == 200
                server.publish(new)
                await asyncio.sleep(0.3)
                # Stale: the request is served from the cache and a refresh starts behind it.
                assert (
                    await client.get(api_url(user_id), headers=bearer(token))
                ).status_code == 200
                for _ in range(50):
                    if server.fetches == 2:
                        break
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.05)
                assert server.fetches == 2
                response = await client.get(api_url(user_id), headers=bearer(token))
                assert_invalid(response)


class TestUnknownKidStorm:
    async def test_random_kids_cause_few_fetches(
        self, settings: Settings, openapi: OpenAPIChecker, keys: dict[str, SigningKey]
    ) -> None:
        user_id = random_id()
        claims = {"sub": user_id, "exp": int(time.time()) + 600}
        tokens = [keys["EdDSA"].sign(claims, kid=random_id()) for _ in range(1000)]
        with jwks_server(keys["EdDSA"]) as server:
            # One fetch, or one more per interval elapsed. Each wave after the first waits for
            # the next allowed fetch (as a new key's tokens must), so the interval is short.
            interval = 0.2
            async with api(
                settings, openapi, jwks_url=server.url, jwks_refresh_interval_seconds=interval
            ) as client:
                started = time.monotonic()
                responses: list[httpx.Response] = []
                # Ten waves of 100 concurrent requests: the in-flight fetch is shared within a
                # wave, and only the refresh interval keeps later waves from fetching again.
                for wave in range(10):
                    responses += await asyncio.gather(
                        *(
                            client.get(api_url(user_id), headers=bearer(token))
                            for token in tokens[wave * 100 : (wave + 1) * 100]
                        )
                    )
                elapsed = time.monotonic() - started
                assert {response.status_code for response in responses} == {401}
                assert server.fetches <= 1 + elapsed // interval, (server.fetches, elapsed)
                good = keys["EdDSA"].sign(claims)
                ok = await client.get(api_url(user_id), headers=bearer(good))
                assert ok.status_code == 200


class TestKeysUnavailable:
    @staticmethod
    def assert_unavailable(response: httpx.Response, url: str) -> None:
        assert response.status_code == 503, response.text
        assert 1 <= int(response.headers["Retry-After"]) <= 5
        assert "WWW-Authenticate" not in response.headers
        error = response.json()["error"]
        assert error["code"] == "SERVICE_UNAVAILABLE"
        assert url not in response.text
        assert "127.0.0.1" not in response.text

    async def test_endpoint_refuses_connections(
        self, settings: Settings, openapi: OpenAPIChecker, keys: dict[str, SigningKey]
    ) -> None:
        url = unused_port_url()
        user_id = random_id()
        token = keys["EdDSA"].sign({"sub": user_id, "exp": int(time.time()) + 600})
        async with api(settings, openapi, jwks_url=url) as client:
            for _ in range(3):
                response = await client.get(api_url(user_id), headers=bearer(token))
                self.assert_unavailable(response, url)
            # The shared secret does not depend on the key server.
            ok = await client.get(api_url(user_id), headers=bearer(make_token(user_id)))
            assert ok.status_code == 200

    @pytest.mark.parametrize("mode", ["error", "garbage"])
    async def test_endpoint_broken(
        self,
        settings: Settings,
        openapi: OpenAPIChecker,
        keys: dict[str, SigningKey],
        mode: str,
    ) -> None:
        user_id = random_id()
        token = keys["RS256"].sign({"sub": user_id, "exp": int(time.time()) + 600})
        with jwks_server(keys["RS256"]) as server:
            server.mode = mode
            async with api(settings, openapi, jwks_url=server.url) as client:
                for _ in range(5):
                    response = await client.get(api_url(user_id), headers=bearer(token))
                    self.assert_unavailable(response, server.url)
                assert server.fetches == 1  # failures are not retried on every request

    async def test_endpoint_too_slow(
        self, settings: Settings, openapi: OpenAPIChecker, keys: dict[str, SigningKey]
    ) -> None:
        user_id = random_id()
        token = keys["EdDSA"].sign({"sub": user_id, "exp": int(time.time()) + 600})
        with jwks_server(keys["EdDSA"]) as server:
            server.mode, server.delay = "slow", 2.0
            async with api(
                settings, openapi, jwks_url=server.url, jwks_timeout_seconds=0.3
            ) as client:
                started = time.monotonic()
                response = await client.get(api_url(user_id), headers=bearer(token))
                assert time.monotonic() - started < 1.5
                self.assert_unavailable(response, server.url)

    async def test_cached_keys_outlive_the_endpoint(
        self, settings: Settings, openapi: OpenAPIChecker, keys: dict[str, SigningKey]
    ) -> None:
        user_id = random_id()
        claims = {"sub": user_id, "exp": int(time.time()) + 600}
        known = keys["EdDSA"].sign(claims)
        with jwks_server(keys["EdDSA"]) as server:
            async with api(
                settings,
                openapi,
                jwks_url=server.url,
                jwks_refresh_interval_seconds=0.05,
                jwks_cache_seconds=0.1,
            ) as client:
                assert (
                    await client.get(api_url(user_id), headers=bearer(known))
                ).status_code == 200
                server.mode = "error"
                await asyncio.sleep(0.15)
                # An unknown kid while the endpoint is down: no key can be had.
                unknown = keys["EdDSA"].sign(claims, kid=random_id())
                response = await client.get(api_url(user_id), headers=bearer(unknown))
                self.assert_unavailable(response, server.url)
                # The known key, though stale, is still trusted while the endpoint is down.
                for _ in range(3):
                    await asyncio.sleep(0.06)
                    response = await client.get(api_url(user_id), headers=bearer(known))
                    assert response.status_code == 200
                assert server.fetches >= 3


class TestDeveloperToken:
    @pytest.fixture
    def token_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ENVIRONMENT", "test")
        monkeypatch.setenv("JWT_SECRET", TEST_SECRET)
        for name in ("JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_USER_ID_CLAIM"):
            monkeypatch.delenv(name, raising=False)

    @pytest.mark.usefixtures("token_env")
    async def test_cli_token_is_accepted(
        self, client: httpx.AsyncClient, alice: User, capsys: pytest.CaptureFixture[str]
    ) -> None:
        cli.main(["token", "--user", alice.id, "--ttl", "1h"])
        token = capsys.readouterr().out.strip()
        claims = jwt.decode(token, TEST_SECRET, algorithms=["HS256"])
        assert claims["sub"] == alice.id
        assert claims["exp"] - claims["iat"] == 3600
        response = await client.get(api_url(alice.id), headers=bearer(token))
        assert response.status_code == 200

    @pytest.mark.usefixtures("token_env")
    def test_default_ttl_is_one_hour(self, capsys: pytest.CaptureFixture[str]) -> None:
        cli.main(["token", "--user", "alice"])
        claims = jwt.decode(capsys.readouterr().out.strip(), TEST_SECRET, algorithms=["HS256"])
        assert (claims["sub"], claims["exp"] - claims["iat"]) == ("alice", 3600)

    @pytest.mark.usefixtures("token_env")
    def test_bad_ttl(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exited:
            cli.main(["token", "--user", "alice", "--ttl", "forever"])
        assert exited.value.code == 2
        assert "90s, 15m, 1h, 7d" in capsys.readouterr().err
