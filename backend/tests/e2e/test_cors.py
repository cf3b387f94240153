"""A page on another origin uses the API through CORS, exactly as far as CORS_ORIGINS allows."""

from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, ConsoleMessage

from tests.e2e.conftest import Server, StaticSite, Traffic
from tests.support.auth import User

pytestmark = pytest.mark.e2e

Context = tuple[BrowserContext, Traffic]


async def _client_page(context: BrowserContext, site: StaticSite) -> tuple[Any, list[str]]:
    page = await context.new_page()
    console: list[str] = []

    def keep(message: ConsoleMessage) -> None:
        console.append(message.text)

    page.on("console", keep)
    await page.goto(f"{site.origin}/index.html")
    return page, console


class TestAllowedOrigin:
    async def test_create_update_with_if_match_and_list(
        self, server: Server, allowed_site: StaticSite, watched_context: Context
    ) -> None:
        context, traffic = watched_context
        page, _ = await _client_page(context, allowed_site)
        user = User()

        result = await page.evaluate(
            "([api, user, token]) => tasksClient.roundTrip(api, user, token)",
            [server.url, user.id, user.token],
        )

        created, updated = result["created"], result["updated"]
        task_id = created["body"]["data"]["id"]
        assert created["status"] == 201
        # Readable from script only because the API exposes these headers.
        assert created["etag"] == f'"{task_id}.1"'
        assert created["location"] == f"/api/{user.id}/tasks/{task_id}"
        assert created["requestId"] == created["body"]["meta"]["request_id"]
        assert updated["status"] == 200, updated["body"]
        assert updated["etag"] == f'"{task_id}.2"'
        assert updated["body"]["data"]["priority"] == "high"
        stale = result["stale"]
        assert stale["status"] == 412
        assert stale["body"]["error"]["code"] == "PRECONDITION_FAILED"
        assert stale["requestId"] == stale["body"]["error"]["request_id"]
        listed = result["listed"]
        assert listed["status"] == 200
        assert [task["id"] for task in listed["body"]["data"]] == [task_id]
        assert listed["body"]["data"][0]["title"] == "From the browser"
        assert traffic.external == []


class TestDisallowedOrigin:
    async def test_the_browser_refuses(
        self,
        server: Server,
        api: httpx.AsyncClient,
        disallowed_site: StaticSite,
        watched_context: Context,
    ) -> None:
        context, traffic = watched_context
        page, console = await _client_page(context, disallowed_site)
        user = User()

        for method in ("GET", "POST"):
            outcome = await page.evaluate(
                "([api, user, token, method]) => tasksClient.attempt(api, user, token, method)",
                [server.url, user.id, user.token, method],
            )
            assert outcome == {"ok": False, "error": "TypeError: Failed to fetch"}, method

        assert any("blocked by CORS policy" in line for line in console), console
        # The POST needed a preflight, which the API refused: it never reached the route.
        listed = await api.get(user.tasks_url, headers=user.headers)
        assert listed.json()["meta"]["total"] == 0
        assert traffic.external == []
