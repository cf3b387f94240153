"""Swagger UI and ReDoc in a real Chromium, with the network ending at this machine."""

from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, ConsoleMessage, Page, expect

from tests.e2e.conftest import ARTIFACTS, Server, Traffic
from tests.support.auth import User

pytestmark = pytest.mark.e2e

Context = tuple[BrowserContext, Traffic]


def _operations(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(path, op) for path, ops in spec["paths"].items() for op in ops.values()]


async def _open(context: BrowserContext, url: str) -> tuple[Page, list[str]]:
    """The page, and the script errors and console errors (CSP refusals too) it shows."""
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def keep_error(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", keep_error)
    await page.goto(url)
    return page, errors


class TestSwaggerUI:
    async def test_renders_every_operation_offline(
        self, server: Server, api: httpx.AsyncClient, offline_context: Context
    ) -> None:
        context, traffic = offline_context
        spec = (await api.get("/openapi.json")).json()
        page, errors = await _open(context, f"{server.docs_url}/docs")

        await expect(page.locator(".opblock")).to_have_count(len(_operations(spec)))
        protected = [op for path, op in _operations(spec) if path.startswith("/api/")]
        await expect(page.locator(".opblock .authorization__btn")).to_have_count(len(protected))
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=ARTIFACTS / "docs.png", full_page=True)

        assert traffic.external == [], "the docs need no host but this one"
        assert any("/docs-assets/swagger-ui-bundle.js" in r for r in traffic.requests)
        assert errors == []

    async def test_error_responses_show_the_envelope(
        self, server: Server, api: httpx.AsyncClient, offline_context: Context
    ) -> None:
        context, _ = offline_context
        spec = (await api.get("/openapi.json")).json()
        documented = sorted(spec["paths"]["/api/{user_id}/tasks"]["post"]["responses"])
        page, _ = await _open(context, f"{server.docs_url}/docs#/tasks/create_task")
        operation = page.locator("#operations-tasks-create_task")
        responses = operation.locator("tr.response")

        await expect(responses.first).to_be_visible()
        codes = await responses.evaluate_all("rows => rows.map(row => row.dataset.code)")
        # Every status the document gives the operation is shown, in order.
        assert codes == documented
        assert {"201", "400", "401", "403", "409", "413", "415", "422", "503"} <= set(codes)
        bad_request = operation.locator('tr.response[data-code="400"]')
        await expect(bad_request).to_contain_text("VALIDATION_ERROR")
        await expect(bad_request).to_contain_text("must not be empty or whitespace only")
        await expect(bad_request).to_contain_text("Malformed JSON")  # the other example
        unauthorized = operation.locator('tr.response[data-code="401"]')
        await expect(unauthorized).to_contain_text("WWW-Authenticate")

    async def test_authorize_then_try_it_out(
        self, server: Server, api: httpx.AsyncClient, offline_context: Context
    ) -> None:
        context, traffic = offline_context
        user = User()
        token = user.token  # minted once: each read of the property signs a new one
        created = await api.post(
            user.tasks_url, json={"title": "Seen in Swagger"}, headers=user.headers
        )
        assert created.status_code == 201
        page, errors = await _open(context, f"{server.docs_url}/docs")

        await page.locator(".auth-wrapper button.authorize").click()
        dialog = page.locator(".modal-ux")
        await expect(dialog).to_contain_text("HTTPBearer")
        await dialog.locator("input").fill(token)
        await dialog.locator("button.authorize").click()
        await expect(dialog.locator("button.authorize")).to_have_count(0)  # now "Logout"
        await dialog.locator("button.btn-done").click()

        operation = page.locator("#operations-tasks-list_tasks")
        await operation.locator(".opblock-summary-control").click()
        await operation.locator("button.try-out__btn").click()
        await operation.locator('input[placeholder="user_id"]').fill(user.id)
        await operation.locator("button.execute").click()

        live = operation.locator(".live-responses-table")
        await expect(live.locator("tbody .response-col_status")).to_have_text("200")
        await expect(live).to_contain_text("Seen in Swagger")
        await expect(operation.locator(".curl-command")).to_contain_text(
            f"Authorization: Bearer {token}"
        )
        await operation.locator(".responses-wrapper").first.screenshot(
            path=ARTIFACTS / "docs-try-it-out.png"
        )
        assert traffic.external == []
        assert errors == []


class TestReDoc:
    async def test_renders_offline(self, server: Server, offline_context: Context) -> None:
        context, traffic = offline_context
        page, errors = await _open(context, f"{server.docs_url}/redoc")

        await expect(page.locator("h1").first).to_contain_text("Tasks API")
        await expect(page.get_by_text("List your tasks", exact=False).first).to_be_attached()
        await page.screenshot(path=ARTIFACTS / "redoc.png")
        assert traffic.external == []
        # ReDoc's bundle always asks for Redocly's logo; the docs' CSP refuses it in the
        # browser, before any request. Nothing else may be refused or fail.
        assert [e for e in errors if "cdn.redoc.ly/redoc/logo-mini.svg" not in e] == []
