"""The API behind Better Auth's own server, configured as the README says, over real HTTP."""

import asyncio
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest

from tests.better_auth.conftest import Account, Stack, StartStack, api_server

pytestmark = pytest.mark.better_auth

POLL_SECONDS = 15


def tasks_url(account: Account) -> str:
    return f"/api/{account.id}/tasks"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def poll(check: Any, what: str) -> Any:
    """Wait for a state another process reaches in its own time (a key rotation, an expiry)."""
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen in {POLL_SECONDS} s")
        await asyncio.sleep(0.1)


class TestTokens:
    async def test_better_auth_token_as_the_readme_describes(
        self, main_stack: Stack, account: Account
    ) -> None:
        token = await account.token()
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert header["alg"] == "EdDSA"
        assert header["kid"] in await main_stack.better_auth.published_kids()
        assert claims["sub"] == account.id
        # baseURL was given with a trailing slash; iss and aud are its origin.
        assert claims["iss"] == claims["aud"] == main_stack.better_auth.url
        assert claims["exp"] - claims["iat"] == 15 * 60

    async def test_expired_token_is_a_401(self, start_stack: StartStack) -> None:
        stack = await start_stack(
            "short-lived", {"JWT_EXPIRATION": "3s"}, {"JWT_LEEWAY_SECONDS": "0"}
        )
        account = await stack.better_auth.sign_up()
        token = await account.token()
        first = await stack.client.get(tasks_url(account), headers=bearer(token))
        assert first.status_code == 200, first.text

        async def refused() -> httpx.Response | None:
            response = await stack.client.get(tasks_url(account), headers=bearer(token))
            return response if response.status_code != 200 else None

        response = await poll(refused, "the token's expiry")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert "expired" in response.json()["error"]["message"]


class TestEveryEndpoint:
    async def test_task_lifecycle(self, main_stack: Stack, account: Account) -> None:
        client, headers, url = main_stack.client, await account.headers(), tasks_url(account)
        created = await client.post(
            url, json={"title": "Buy milk", "tags": ["home"]}, headers=headers
        )
        assert created.status_code == 201, created.text
        task = created.json()["data"]
        assert task["user_id"] == account.id
        task_url = f"{url}/{task['id']}"
        assert created.headers["Location"] == task_url

        got = await client.get(task_url, headers=headers)
        assert got.status_code == 200
        etag = got.headers["ETag"]
        not_modified = await client.get(task_url, headers={**headers, "If-None-Match": etag})
        assert not_modified.status_code == 304
        listed = await client.get(url, headers=headers)
        assert [t["id"] for t in listed.json()["data"]] == [task["id"]]

        put = await client.put(task_url, json={"title": "Buy oat milk"}, headers=headers)
        assert put.json()["data"]["title"] == "Buy oat milk"
        patched = await client.patch(
            task_url,
            json={"priority": "high"},
            headers={**headers, "If-Match": put.headers["ETag"]},
        )
        assert patched.json()["data"]["priority"] == "high"
        completed = await client.patch(f"{task_url}/complete", headers=headers)
        assert completed.json()["data"]["is_completed"] is True
        stats = await client.get(f"/api/{account.id}/stats", headers=headers)
        assert stats.json()["data"]["completed"] == 1

        deleted = await client.delete(task_url, headers=headers)
        assert deleted.status_code == 204
        assert (await client.get(task_url, headers=headers)).status_code == 404

    async def test_every_operation_accepts_the_token_and_checks_the_user(
        self, main_stack: Stack, account: Account
    ) -> None:
        """Whatever the OpenAPI document lists under /api: Better Auth's token gets past
        authentication, and the same token on another user's URL is a 403."""
        document = (await main_stack.client.get("/openapi.json")).json()
        headers = await account.headers()
        operations = [
            (method.upper(), path)
            for path, item in document["paths"].items()
            if path.startswith("/api/")
            for method in item
            if method in {"get", "post", "put", "patch", "delete"}
        ]
        assert len(operations) >= 8
        for method, path in operations:
            for user_id, allowed in ((account.id, True), ("someone-else", False)):
                url = path.format(user_id=user_id, task_id=uuid.uuid4())
                body = {} if method in {"POST", "PUT", "PATCH"} else None
                # Streamed: an event stream would never end; its status is all that counts.
                async with main_stack.client.stream(
                    method, url, json=body, headers=headers
                ) as response:
                    status = response.status_code
                if allowed:
                    assert status not in {401, 403}, (method, path, status)
                    assert status < 500, (method, path, status)
                else:
                    assert status == 403, (method, path, status)


class TestIsolation:
    async def test_another_users_task_is_a_404_and_their_url_a_403(self, main_stack: Stack) -> None:
        alice = await main_stack.better_auth.sign_up()
        bob = await main_stack.better_auth.sign_up()
        client = main_stack.client
        alice_headers, bob_headers = await alice.headers(), await bob.headers()
        created = await client.post(
            tasks_url(alice), json={"title": "Alice's"}, headers=alice_headers
        )
        task_id = created.json()["data"]["id"]

        assert (await client.get(tasks_url(alice), headers=bob_headers)).status_code == 403
        bobs_view = f"{tasks_url(bob)}/{task_id}"
        assert (await client.get(bobs_view, headers=bob_headers)).status_code == 404
        patched = await client.patch(bobs_view, json={"title": "Bob's"}, headers=bob_headers)
        assert patched.status_code == 404
        assert (await client.delete(bobs_view, headers=bob_headers)).status_code == 404
        assert (await client.get(tasks_url(bob), headers=bob_headers)).json()["data"] == []
        mine = await client.get(f"{tasks_url(alice)}/{task_id}", headers=alice_headers)
        assert mine.json()["data"]["title"] == "Alice's"


class TestAlgorithms:
    @pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
    async def test_better_auth_with_another_key_type(
        self, start_stack: StartStack, algorithm: str
    ) -> None:
        stack = await start_stack(algorithm.lower(), {"JWT_ALG": algorithm})
        alice, bob = await stack.better_auth.sign_up(), await stack.better_auth.sign_up()
        token = await alice.token()
        assert jwt.get_unverified_header(token)["alg"] == algorithm
        created = await stack.client.post(
            tasks_url(alice), json={"title": algorithm}, headers=bearer(token)
        )
        assert created.status_code == 201, created.text
        listed = await stack.client.get(tasks_url(alice), headers=bearer(token))
        assert [task["title"] for task in listed.json()["data"]] == [algorithm]
        other = await stack.client.get(tasks_url(alice), headers=await bob.headers())
        assert other.status_code == 403


class TestKeyRotation:
    async def test_new_key_accepted_at_once_and_old_one_while_published(
        self, start_stack: StartStack
    ) -> None:
        # Better Auth signs with a new key once the current one is 2 s old; the API may fetch
        # keys at most every 5 s, so the new key's first token comes before a re-fetch is due.
        stack = await start_stack(
            "rotation", {"JWKS_ROTATION_SECONDS": "2"}, {"JWKS_REFRESH_INTERVAL_SECONDS": "5"}
        )
        account = await stack.better_auth.sign_up()
        old = await account.token()
        old_kid = jwt.get_unverified_header(old)["kid"]
        first = await stack.client.get(tasks_url(account), headers=bearer(old))
        assert first.status_code == 200, first.text  # the API has fetched the keys now

        async def rotated() -> str | None:
            token = await account.token()
            return token if jwt.get_unverified_header(token)["kid"] != old_kid else None

        new = await poll(rotated, "Better Auth's key rotation")
        published = await stack.better_auth.published_kids()
        assert {old_kid, jwt.get_unverified_header(new)["kid"]} <= published

        with_new = await stack.client.get(tasks_url(account), headers=bearer(new))
        assert with_new.status_code == 200, with_new.text
        with_old = await stack.client.get(tasks_url(account), headers=bearer(old))
        assert with_old.status_code == 200, with_old.text
        assert "token refused" not in stack.api.log()


class TestKeysUnavailable:
    async def test_better_auth_down_with_no_cached_key_is_a_503(
        self, start_stack: StartStack
    ) -> None:
        stack = await start_stack("stopped")
        account = await stack.better_auth.sign_up()
        token = await account.token()
        stack.better_auth.process.stop()
        for _ in range(2):
            response = await stack.client.get(tasks_url(account), headers=bearer(token))
            assert response.status_code == 503, response.text
            assert 1 <= int(response.headers["Retry-After"]) <= 5
            assert "WWW-Authenticate" not in response.headers
            assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"


class TestMisconfiguration:
    async def test_issuer_with_a_trailing_slash_is_logged(
        self, main_stack: Stack, account: Account, database_url: str
    ) -> None:
        """The README's old advice: every token a 401, and now the log says why."""
        auth = main_stack.better_auth
        token = await account.token()
        with api_server("wrong-issuer", database_url, auth, JWT_ISSUER=auth.url + "/") as api:
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
                for _ in range(3):
                    response = await client.get(tasks_url(account), headers=bearer(token))
                    assert response.status_code == 401
            log = api.log()
        lines = [line for line in log.splitlines() if "token refused" in line]
        assert len(lines) == 1, log
        assert "[issuer]" in lines[0]
        assert f"iss '{auth.url}' is not JWT_ISSUER '{auth.url}/'" in lines[0]
        assert token not in log
        assert token.split(".")[2] not in log
