"""The typed client's example SPA in headless Chromium: Better Auth on the page's origin, the
API on another, through CORS (clients/typescript/example, bundled by make test-better-auth)."""

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.better_auth.conftest import PASSWORD, Stack, StartStack

pytestmark = pytest.mark.better_auth


@pytest.fixture
async def page(browser: Browser, main_stack: Stack) -> AsyncIterator[Page]:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{main_stack.better_auth.url}/index.html")
    assert await page.evaluate("typeof spa.lifecycle") == "function"
    yield page
    await context.close()


async def sign_up(page: Page) -> str:
    email = f"spa-{secrets.token_hex(6)}@example.com"
    user_id: str = await page.evaluate(
        "([email, password]) => spa.signUp(email, password, 'Ada Lovelace')", [email, PASSWORD]
    )
    return user_id


class TestTypedClientInTheBrowser:
    async def test_sign_in_and_manage_tasks(self, page: Page, main_stack: Stack) -> None:
        user_id = await sign_up(page)
        result: dict[str, Any] = await page.evaluate(
            "([api, user]) => spa.lifecycle(api, user)", [main_stack.api.url, user_id]
        )
        created = result["created"]
        task_id = created["id"]
        assert created["status"] == 201
        # Headers a page can read only because the API's CORS exposes them.
        assert created["etag"] == f'"{task_id}.1"'
        assert created["location"] == f"/api/{user_id}/tasks/{task_id}"
        assert created["requestId"]
        assert result["listed"] == {"status": 200, "ids": [task_id]}
        assert result["patched"] == {"status": 200, "priority": "high"}
        assert result["put"] == {"status": 200, "title": "From the SPA, renamed"}
        assert result["completed"]["status"] == 200
        assert result["completed"]["isCompleted"] is True
        assert result["completed"]["completedAt"]
        assert result["stats"] == {"status": 200, "completed": 1}
        assert result["deleted"] == {"status": 204}
        assert result["gone"] == {"status": 404, "code": "NOT_FOUND"}

    async def test_a_401_fetches_one_fresh_token(self, page: Page, main_stack: Stack) -> None:
        user_id = await sign_up(page)
        result = await page.evaluate(
            "([api, user]) => spa.refreshAfter401(api, user, 'stale.token.value')",
            [main_stack.api.url, user_id],
        )
        assert result == {"status": 200, "tokenRequests": 1, "signedOut": False}

    async def test_a_second_401_signs_out(self, page: Page, main_stack: Stack) -> None:
        user_id = await sign_up(page)
        result = await page.evaluate(
            "([api, user]) => spa.signOutAfterTwo401s(api, user)", [main_stack.api.url, user_id]
        )
        assert result == {"status": 401, "asked": 2, "signedOut": 1}

    async def test_a_503_is_waited_out_with_its_retry_after(
        self, page: Page, main_stack: Stack, start_stack: StartStack
    ) -> None:
        # Another Better Auth + API pair, whose CORS allows this page; its Better Auth stops
        # before the API ever fetched a key: every request is a 503 with Retry-After.
        down = await start_stack("browser-503", {}, {"CORS_ORIGINS": main_stack.better_auth.url})
        account = await down.better_auth.sign_up()
        token = await account.token()
        down.better_auth.process.stop()
        result = await page.evaluate(
            "([api, user, token]) => spa.unavailable(api, user, token)",
            [down.api.url, account.id, token],
        )
        assert result["status"] == 503
        assert result["code"] == "SERVICE_UNAVAILABLE"
        assert 1 <= result["retryAfter"] <= 5
        assert len(result["waits"]) == 1
        assert 1 <= result["waits"][0] <= 5
