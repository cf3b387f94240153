"""HTTP behaviour around the endpoints: request ids, caching, CORS, errors, health, docs."""

import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select

from tasks_api.config import Settings
from tasks_api.database import Query, Transaction
from tasks_api.main import create_app
from tasks_api.services import task_service
from tests.conftest import ALLOWED_ORIGIN
from tests.support.auth import TEST_SECRET, User
from tests.support.database import OWNER_PASSWORD

UNKNOWN_TASK = "0193a6f1-5b7c-7cc0-9e1d-2f3a4b5c6d7e"
CONTRACT_REQUEST_HEADERS = {
    "authorization",
    "content-type",
    "if-match",
    "if-none-match",
    "idempotency-key",
    "x-request-id",
    "last-event-id",
}


def _request_id(response: httpx.Response) -> str:
    ids = response.headers.get_list("x-request-id")
    assert len(ids) == 1, f"one X-Request-ID per response, got {ids}"
    return ids[0]


def _is_uuid(value: str) -> bool:
    try:
        return str(UUID(value)) == value
    except ValueError:
        return False


def _body_id(response: httpx.Response) -> str:
    body = response.json()
    return (body.get("meta") or body["error"])["request_id"]


def _assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["details"] is None
    assert error["request_id"] == _request_id(response)
    assert error["timestamp"].endswith("Z")
    return error


@pytest.fixture
async def raw_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client without the OpenAPI check, for answers no operation documents (500s)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


class TestRequestId:
    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", "/health", 200),
            ("GET", "/api/someone/tasks", 401),
            ("GET", "/nowhere", 404),
            ("GET", "/api/someone/nothing", 404),
            ("DELETE", "/api/someone/tasks", 405),
            ("GET", "/openapi.json", 200),
        ],
    )
    async def test_generated_when_absent(
        self, client: httpx.AsyncClient, method: str, path: str, status: int
    ) -> None:
        response = await client.request(method, path)
        assert response.status_code == status
        request_id = _request_id(response)
        assert _is_uuid(request_id)
        if path != "/openapi.json":
            assert _body_id(response) == request_id

    async def test_differs_per_request(self, client: httpx.AsyncClient) -> None:
        first, second = await client.get("/health"), await client.get("/health")
        assert _request_id(first) != _request_id(second)

    @pytest.mark.parametrize(
        "sane",
        ["abc-123", "req_ABC.x:y/z+w=@v", "0193a6f1-5b7c-7cc0-9e1d-2f3a4b5c6d7e", "r" * 128],
        ids=["simple", "punctuation", "uuid", "128-chars"],
    )
    async def test_echoes_a_sane_id(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, sane: str
    ) -> None:
        headers = {"X-Request-ID": sane}
        for response in (
            await client.get("/health", headers=headers),
            await client.get(alice.tasks_url, headers={**alice.headers, **headers}),
            await client.get(alice.tasks_url, headers=headers),  # 401
            await client.get(alice.task_url(UNKNOWN_TASK), headers={**alice.headers, **headers}),
        ):
            assert _request_id(response) == sane
            assert _body_id(response) == sane

    @pytest.mark.parametrize(
        "insane",
        [b"r" * 129, b"has space", b"semi;colon", b"<script>", b"", "\u00e9t\u00e9".encode()],
        ids=["129-chars", "space", "semicolon", "markup", "empty", "non-ascii"],
    )
    async def test_replaces_an_insane_id(self, client: httpx.AsyncClient, insane: bytes) -> None:
        response = await client.get("/health", headers={"X-Request-ID": insane})
        request_id = _request_id(response)
        assert _is_uuid(request_id)
        assert _body_id(response) == request_id

    async def test_on_a_cors_preflight(self, client: httpx.AsyncClient) -> None:
        response = await client.options(
            "/api/someone/tasks",
            headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": "GET",
                "X-Request-ID": "preflight-1",
            },
        )
        assert response.status_code == 200
        assert _request_id(response) == "preflight-1"


class TestCacheControl:
    async def test_api_responses_are_not_stored(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        responses = [
            await client.get(alice.tasks_url, headers=alice.headers),
            await client.post(alice.tasks_url, json={"title": "x"}, headers=alice.headers),
            await client.get(alice.task_url(task["id"]), headers=alice.headers),
            await client.get(alice.tasks_url),
            await client.get(bob.tasks_url, headers=alice.headers),
            await client.get(alice.task_url("not-a-uuid"), headers=alice.headers),
            await client.get(alice.task_url(UNKNOWN_TASK), headers=alice.headers),
            await client.get(f"/api/{alice.id}/nothing", headers=alice.headers),
            await client.delete(alice.task_url(task["id"]), headers=alice.headers),
        ]
        assert [r.status_code for r in responses] == [200, 201, 200, 401, 403, 400, 404, 404, 204]
        for response in responses:
            assert response.headers.get_list("cache-control") == ["no-store"], response.request.url


class TestCors:
    async def test_preflight_from_an_allowed_origin(self, client: httpx.AsyncClient) -> None:
        response = await client.options(
            "/api/someone/tasks/" + UNKNOWN_TASK,
            headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": ", ".join(sorted(CONTRACT_REQUEST_HEADERS)),
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert response.headers["access-control-allow-credentials"] == "true"
        allowed = {
            h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
        }
        assert allowed >= CONTRACT_REQUEST_HEADERS
        methods = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
        assert methods >= {"GET", "POST", "PUT", "PATCH", "DELETE"}

    async def test_preflight_for_another_header_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.options(
            "/api/someone/tasks",
            headers={
                "Origin": ALLOWED_ORIGIN,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "x-smuggled",
            },
        )
        assert response.status_code == 400

    async def test_preflight_from_another_origin(self, client: httpx.AsyncClient) -> None:
        response = await client.options(
            "/api/someone/tasks",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in response.headers

    async def test_request_from_another_origin(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        response = await client.get(
            alice.tasks_url, headers={**alice.headers, "Origin": "https://evil.example"}
        )
        # Without it the browser keeps the answer from the page, whatever else is sent.
        assert "access-control-allow-origin" not in response.headers

    async def test_request_from_the_allowed_origin(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        response = await client.post(
            alice.tasks_url,
            json={"title": "x"},
            headers={**alice.headers, "Origin": ALLOWED_ORIGIN},
        )
        assert response.status_code == 201
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert response.headers["access-control-allow-credentials"] == "true"
        exposed = {
            h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
        }
        assert exposed >= {"etag", "location", "x-request-id"}

    async def test_errors_carry_cors_headers(self, client: httpx.AsyncClient, alice: User) -> None:
        """A browser can only read an error (and its request id) when CORS allows it."""
        response = await client.get(alice.tasks_url, headers={"Origin": ALLOWED_ORIGIN})
        assert response.status_code == 401
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


class TestUnknownRoutes:
    @pytest.mark.parametrize(
        "path",
        [
            "/nowhere",
            "/api",
            "/api/someone",
            "/api/someone/tasks/",
            "/api/someone/nothing",
            "/health/",
        ],
    )
    async def test_not_found(self, client: httpx.AsyncClient, path: str) -> None:
        _assert_error(await client.get(path), 404, "NOT_FOUND")

    @pytest.mark.parametrize(
        ("method", "path", "allowed"),
        [
            ("DELETE", "/api/someone/tasks", {"GET", "POST"}),
            ("POST", f"/api/someone/tasks/{UNKNOWN_TASK}", {"GET", "PUT", "PATCH", "DELETE"}),
            ("GET", f"/api/someone/tasks/{UNKNOWN_TASK}/complete", {"PATCH"}),
            ("PUT", "/api/someone/stats", {"GET"}),
            ("POST", "/health", {"GET"}),
        ],
    )
    async def test_method_not_allowed(
        self, client: httpx.AsyncClient, alice: User, method: str, path: str, allowed: set[str]
    ) -> None:
        response = await client.request(method, path, headers=alice.headers)
        _assert_error(response, 405, "METHOD_NOT_ALLOWED")
        # RFC 9110: a 405 lists every method the resource supports.
        assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


class TestUnexpectedErrors:
    LEAKS = (
        "Traceback",
        "File ",
        "SELECT",
        "RuntimeError",
        "tasks_api",
        OWNER_PASSWORD,
        TEST_SECRET,
    )

    def _assert_no_leak(self, response: httpx.Response) -> None:
        error = _assert_error(response, 500, "INTERNAL_ERROR")
        assert error["message"] == "An unexpected error occurred."
        for leak in self.LEAKS:
            assert leak not in response.text, leak

    async def test_exception_in_a_service(
        self,
        raw_client: httpx.AsyncClient,
        alice: User,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        async def boom(*_: object, **__: object) -> None:
            raise RuntimeError(
                f"SELECT * FROM tasks -- password={OWNER_PASSWORD} secret={TEST_SECRET}"
            )

        monkeypatch.setattr(task_service, "create", boom)
        response = await raw_client.post(
            alice.tasks_url, json={"title": "x"}, headers={**alice.headers, "X-Request-ID": "r-500"}
        )
        self._assert_no_leak(response)
        assert response.headers["cache-control"] == "no-store"
        assert _request_id(response) == "r-500"
        # The operator still gets the whole story, under the same request id.
        assert any(record.exc_info for record in caplog.records)

    async def test_database_error(
        self, raw_client: httpx.AsyncClient, alice: User, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def bad_sql(*_: object, **__: object) -> None:
            raise sa_exc.ProgrammingError(
                "SELECT secret FROM tasks WHERE user_id = %s",
                {"password": OWNER_PASSWORD},
                Exception('relation "tasks" does not exist'),
            )

        monkeypatch.setattr(task_service, "list_tasks", bad_sql)
        response = await raw_client.get(alice.tasks_url, headers=alice.headers)
        self._assert_no_leak(response)
        assert "relation" not in response.text

    async def test_exception_in_a_route(self, settings: Settings) -> None:
        app = create_app(settings)

        @app.get("/boom")
        async def boom() -> None:
            raise ValueError(f"Traceback: SELECT {TEST_SECRET}")

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get("/boom", headers={"Origin": ALLOWED_ORIGIN})
        self._assert_no_leak(response)

    async def test_failed_commit_is_not_a_success(
        self,
        raw_client: httpx.AsyncClient,
        db: asyncpg.Connection,
        alice: User,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The session dependency commits before the response is sent, so a commit that
        fails turns into an error instead of a 201 for a task that was never stored."""
        commit = Transaction.commit

        async def commit_on_a_dead_connection(transaction: Transaction) -> None:
            # The server ends the API's backend between the INSERT and the COMMIT (asked
            # through the transaction: behind PgBouncer the client-side pid is PgBouncer's).
            backend = await transaction.fetchrow(Query(select(func.pg_backend_pid())))
            assert backend is not None
            assert await db.fetchval("SELECT pg_terminate_backend($1)", backend[0])
            await commit(transaction)

        monkeypatch.setattr(Transaction, "commit", commit_on_a_dead_connection)
        response = await raw_client.post(
            alice.tasks_url, json={"title": "lost"}, headers=alice.headers
        )
        assert response.status_code >= 500, response.text
        assert "location" not in response.headers
        async with db.transaction():
            await db.execute(
                "SELECT set_config('role', 'tasks_app', true), set_config('app.user_id', $1, true)",
                alice.id,
            )
            assert await db.fetchval("SELECT count(*) FROM tasks") == 0


class TestDatabaseDown:
    @pytest.fixture
    async def down_client(self, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        # Port 1 on the loopback: the connection is refused at once.
        url = SecretStr("postgresql://nobody:nothing@127.0.0.1:1/none")
        settings = settings.model_copy(update={"database_url": url, "db_connect_timeout": 0.2})
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield c

    async def test_ready_is_503(self, down_client: httpx.AsyncClient) -> None:
        response = await down_client.get("/health/ready")
        _assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert int(response.headers["retry-after"]) > 0

    async def test_live_is_200(self, down_client: httpx.AsyncClient) -> None:
        response = await down_client.get("/health")
        assert response.status_code == 200

    async def test_api_is_503(self, down_client: httpx.AsyncClient, alice: User) -> None:
        url = alice.task_url(UNKNOWN_TASK)
        response = await down_client.get(url, headers=alice.headers)
        error = _assert_error(response, 503, "SERVICE_UNAVAILABLE")
        assert int(response.headers["retry-after"]) > 0
        assert "127.0.0.1" not in error["message"]
        assert "nothing" not in response.text


class TestHealth:
    async def test_live(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json()["data"] == {"status": "ok"}
        assert response.json()["meta"]["timestamp"].endswith("Z")

    async def test_ready(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health/ready")
        assert response.status_code == 200
        assert response.json()["data"]["status"] == "ready"
        assert response.json()["meta"]["request_id"] == _request_id(response)

    async def test_needs_no_token(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health", headers={"Authorization": "Bearer garbage"})
        assert response.status_code == 200


class TestDocs:
    @pytest.mark.parametrize("path", ["/docs", "/redoc"])
    async def test_served_without_internet(self, client: httpx.AsyncClient, path: str) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        urls = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assert any(url.endswith(".js") for url in urls), urls
        for url in urls:
            assert url.startswith("/"), f"{url} is not served by the API"
            assert not url.startswith("//"), url
        assert "http://" not in response.text
        assert "https://" not in response.text
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 0

    async def test_swagger_ui_loads_the_local_document(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/docs")
        assert "url: '/openapi.json'" in response.text

    async def test_openapi_json(self, client: httpx.AsyncClient, app: FastAPI) -> None:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        assert response.json() == app.openapi()
