"""Input PostgreSQL cannot store, bodies that count as absent, and URLs at the limit
(issue 10): each a clear 4xx with the envelope, never a 500, and nothing changed."""

from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest

from tasks_api.errors import MAX_URL_BYTES
from tasks_api.repositories import task_repository
from tasks_api.schemas.task_query import Q_MAX
from tests.integration.test_writes import count_tasks, fetch
from tests.support.auth import User

JSON = {"Content-Type": "application/json"}
# Escaped as JSON sends it: the escape, not a raw byte (a raw control byte is malformed JSON).
NUL = "\\u0000"


def _error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    assert error["request_id"] == response.headers["X-Request-ID"]
    return error


def _fields(response: httpx.Response) -> set[str]:
    error = _error(response)
    assert error["code"] == "VALIDATION_ERROR"
    return {detail["field"] for detail in error["details"]}


class TestUnstorableTextInBodies:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            pytest.param(f'{{"title": "a{NUL}b"}}', "title", id="title"),
            pytest.param(f'{{"title": "x", "description": "{NUL}"}}', "description", id="desc"),
            pytest.param(f'{{"title": "x", "tags": ["ok", "a{NUL}"]}}', "tags.1", id="tag"),
        ],
    )
    async def test_create(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, body: str, field: str
    ) -> None:
        response = await client.post(alice.tasks_url, content=body, headers=alice.headers | JSON)
        assert _fields(response) == {field}
        assert await count_tasks(db, alice) == 0

    @pytest.mark.parametrize("method", ["PUT", "PATCH"])
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            pytest.param(f'{{"title": "{NUL}"}}', "title", id="title"),
            pytest.param(f'{{"description": "x{NUL}"}}', "description", id="description"),
            pytest.param(f'{{"tags": ["{NUL}"]}}', "tags.0", id="tag"),
        ],
    )
    async def test_update(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: Any,
        method: str,
        body: str,
        field: str,
    ) -> None:
        task = await create_task(alice, title="kept", description="kept", tags=["kept"])
        response = await client.request(
            method, alice.task_url(task["id"]), content=body, headers=alice.headers | JSON
        )
        assert _fields(response) == {field}
        assert await fetch(client, alice, task["id"]) == task

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param('{"title": "\\ud800"}', id="lone-high"),
            pytest.param('{"title": "a\\udc00b"}', id="lone-low"),
            pytest.param('{"title": "x", "tags": ["\\ud800"]}', id="tag"),
        ],
    )
    async def test_unpaired_surrogate_is_malformed_json(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User, body: str
    ) -> None:
        response = await client.post(alice.tasks_url, content=body, headers=alice.headers | JSON)
        assert _fields(response) == {"body"}
        assert await count_tasks(db, alice) == 0

    async def test_a_paired_surrogate_is_a_character(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        body = '{"title": "\\ud83d\\ude00"}'
        response = await client.post(alice.tasks_url, content=body, headers=alice.headers | JSON)
        assert response.status_code == 201, response.text
        assert response.json()["data"]["title"] == "😀"

    async def test_nul_in_the_idempotency_key(
        self, client: httpx.AsyncClient, db: asyncpg.Connection, alice: User
    ) -> None:
        headers = alice.headers | {"Idempotency-Key": "key\x00"}
        response = await client.post(alice.tasks_url, json={"title": "x"}, headers=headers)
        assert _fields(response) == {"Idempotency-Key"}
        assert await count_tasks(db, alice) == 0

    async def test_nul_in_if_match_is_only_a_stale_tag(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        headers = alice.headers | {"If-Match": '"\x00"'}
        response = await client.patch(
            alice.task_url(task["id"]), json={"title": "y"}, headers=headers
        )
        assert _error(response, 412)["code"] == "PRECONDITION_FAILED"


class TestUnstorableTextInQueries:
    @pytest.mark.parametrize(
        ("query", "field"),
        [
            pytest.param("q=%00", "q", id="q"),
            pytest.param("q=a%00b", "q", id="q-inside"),
            pytest.param("tag=%00", "tag.0", id="tag"),
            pytest.param("tag=ok&tag=a%00", "tag.1", id="second-tag"),
            pytest.param("cursor=%00", "cursor", id="cursor"),
        ],
    )
    async def test_list(
        self, client: httpx.AsyncClient, alice: User, query: str, field: str
    ) -> None:
        response = await client.get(f"{alice.tasks_url}?{query}", headers=alice.headers)
        assert _fields(response) == {field}

    async def test_the_database_refusing_text_is_a_400_not_a_500(
        self, client: httpx.AsyncClient, alice: User, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The last line of defence, should a field ever reach PostgreSQL unchecked: the
        driver's error is the client's 400, naming the query parameter that carried it."""

        async def stats(tx: Any, user_id: str) -> Any:
            connection = await tx._begin()
            return await connection.fetchrow("SELECT $1::text AS text", "a\x00")

        monkeypatch.setattr(task_repository, "stats", stats)
        url = f"/api/{alice.id}/stats?note=%00"
        response = await client.get(url, headers=alice.headers)
        assert _error(response)["details"] == [
            {
                "field": "note",
                "message": "must not contain U+0000 or an unpaired surrogate "
                "(text PostgreSQL cannot store)",
            }
        ]

    async def test_an_unpaired_surrogate_reaching_the_driver_is_a_400(
        self, client: httpx.AsyncClient, alice: User, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def stats(tx: Any, user_id: str) -> Any:
            connection = await tx._begin()
            return await connection.fetchrow("SELECT $1::text AS text", "\ud800")

        monkeypatch.setattr(task_repository, "stats", stats)
        response = await client.get(f"/api/{alice.id}/stats", headers=alice.headers)
        assert _fields(response) == {"body"}


class TestAbsentBody:
    @pytest.mark.parametrize("body", [b"\x0b", b"\x0c", b" \x0b ", b"\xc2\xa0"])
    async def test_other_whitespace_is_malformed_json(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, body: bytes
    ) -> None:
        task = await create_task(alice)
        url = f"{alice.task_url(task['id'])}/complete"
        response = await client.patch(url, content=body, headers=alice.headers | JSON)
        assert _fields(response) == {"body"}
        assert (await fetch(client, alice, task["id"]))["is_completed"] is False

    @pytest.mark.parametrize("body", [b"", b" ", b"\t\r\n  \n"])
    async def test_json_whitespace_is_no_body(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, body: bytes
    ) -> None:
        task = await create_task(alice)
        url = f"{alice.task_url(task['id'])}/complete"
        response = await client.patch(url, content=body, headers=alice.headers | JSON)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["is_completed"] is True


class TestTextRules:
    async def test_tags_equal_once_trimmed_are_merged(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        body = {"title": "x", "tags": [" home", "home ", "Home"]}
        response = await client.post(alice.tasks_url, json=body, headers=alice.headers)
        assert response.status_code == 201, response.text
        assert response.json()["data"]["tags"] == ["home", "Home"]

    async def test_title_trims_what_javascript_trims(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        # U+FEFF is trimmed by String.prototype.trim() (and the document's pattern), U+001F
        # is not, although Python's str.strip() takes it.
        body = {"title": "\ufeff\u001fx\u3000"}
        response = await client.post(alice.tasks_url, json=body, headers=alice.headers)
        assert response.status_code == 201, response.text
        assert response.json()["data"]["title"] == "\u001fx"


def _longest_list_url(user: User, q_length: int) -> str:
    """The list URL with every parameter at the document's limits, in 4-byte characters."""
    wide = "😀"  # 4 bytes of UTF-8, 12 percent-encoded
    tags = "".join(f"&tag={quote(wide * 50)}" for _ in range(20))
    query = (
        f"status=completed&priority=medium&sort=due_date&order=desc&limit=1000{tags}"
        f"&due_before={quote('2026-12-01T17:00:00.123456+05:30')}"
        f"&due_after={quote('2026-12-01T17:00:00.123456+05:30')}"
        f"&updated_since={quote('2026-12-01T17:00:00.123456+05:30')}"
        f"&q={quote(wide * q_length)}"
    )
    return f"{user.tasks_url}?{query}"


class TestURLLimit:
    async def test_the_longest_valid_list_url_reaches_the_app(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        url = _longest_list_url(alice, Q_MAX)
        response = await client.get(url, headers=alice.headers)
        assert response.status_code == 200, response.text

    async def test_a_longer_url_is_a_414_envelope(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        path = f"{alice.tasks_url}?q="
        url = path + "a" * (MAX_URL_BYTES - len(path) + 1)
        response = await client.get(url, headers=alice.headers | {"X-Request-ID": "long-url"})
        error = _error(response, 414)
        assert error["code"] == "URI_TOO_LONG"
        assert response.headers["X-Request-ID"] == "long-url"

    async def test_exactly_at_the_limit_is_answered(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        path = f"{alice.tasks_url}?note="
        url = path + "a" * (MAX_URL_BYTES - len(path))
        response = await client.get(url, headers=alice.headers)
        assert response.status_code == 200, response.text
