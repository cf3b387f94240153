"""A page kept in sync: a change made from a second page shows on the first without a
reload, through `changes` and a fetch-based reader of `events`, across origins (CORS)."""

from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Frame

from tests.e2e.conftest import Server, StaticSite, Traffic
from tests.support.auth import User

pytestmark = pytest.mark.e2e

WAIT_MS = 10_000


async def test_a_change_from_a_second_page_shows_without_reloading(
    server: Server,
    api: httpx.AsyncClient,
    allowed_site: StaticSite,
    watched_context: tuple[BrowserContext, Traffic],
) -> None:
    context, traffic = watched_context
    user = User()
    existing = await api.post(user.tasks_url, json={"title": "existing"}, headers=user.headers)
    assert existing.status_code == 201
    existing_id = existing.json()["data"]["id"]

    viewer = await context.new_page()
    navigations: list[str] = []

    def navigated(frame: Frame) -> None:
        if frame == viewer.main_frame:
            navigations.append(frame.url)

    viewer.on("framenavigated", navigated)
    await viewer.goto(f"{allowed_site.origin}/sync.html")
    await viewer.evaluate(
        "([api, user, token]) => syncClient.start(api, user, token)",
        [server.url, user.id, user.token],
    )
    await viewer.wait_for_selector(f'li[data-id="{existing_id}"]', timeout=WAIT_MS)
    await viewer.wait_for_function("document.body.dataset.status === 'live'", timeout=WAIT_MS)

    editor = await context.new_page()
    await editor.goto(f"{allowed_site.origin}/index.html")

    async def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return await editor.evaluate(
            "([api, token, method, path, body]) =>"
            " tasksClient.call(api, token, method, path, body ? { body } : {})",
            [server.url, user.token, method, path, body],
        )

    created = await call("POST", user.tasks_url, {"title": "from the second page"})
    assert created["status"] == 201
    new_id = created["body"]["data"]["id"]
    await viewer.wait_for_selector(
        f'li[data-id="{new_id}"][data-title="from the second page"]', timeout=WAIT_MS
    )
    completed = await call("PATCH", f"{user.task_url(new_id)}/complete")
    assert completed["status"] == 200
    await viewer.wait_for_selector(
        f'li[data-id="{new_id}"][data-completed="true"]', timeout=WAIT_MS
    )
    deleted = await call("DELETE", user.task_url(existing_id))
    assert deleted["status"] == 204
    await viewer.wait_for_selector(
        f'li[data-id="{existing_id}"]', state="detached", timeout=WAIT_MS
    )

    assert navigations == [f"{allowed_site.origin}/sync.html"]  # never reloaded
    assert await viewer.evaluate("document.body.dataset.status") == "live"
    assert traffic.external == []
