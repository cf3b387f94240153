"""The task endpoints as a user meets them: stories, the order of checks, and every 400."""

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from uuid_utils.compat import uuid7

from tests.support.auth import User, make_token

CreateTask = Callable[..., Awaitable[dict[str, Any]]]

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
JSON = {"Content-Type": "application/json"}
FIELDS = {
    "id",
    "position",
    "user_id",
    "title",
    "description",
    "priority",
    "due_at",
    "tags",
    "is_completed",
    "completed_at",
    "created_at",
    "updated_at",
    "version",
}


def _unknown_id() -> str:
    return str(uuid7())


def _expired(user: User) -> dict[str, str]:
    token = make_token(user.id, expires_in=timedelta(minutes=-5))
    return {"Authorization": f"Bearer {token}"}


def _foreign_signature(user: User) -> dict[str, str]:
    token = make_token(user.id, secret="another-secret-" + "y" * 40)
    return {"Authorization": f"Bearer {token}"}


BAD_TOKENS: dict[str, Callable[[User], dict[str, str]]] = {
    "garbage": lambda _: {"Authorization": "Bearer not.a.jwt"},
    "expired": _expired,
    "foreign-signature": _foreign_signature,
}


def assert_error(
    response: httpx.Response, status: int, code: str, fields: set[str] | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    if fields is not None:
        assert error["details"], error
        assert {detail["field"] for detail in error["details"]} == fields, error["details"]
        assert all(detail["message"] for detail in error["details"])
    elif status != 400:
        assert error["details"] is None
    return error


def assert_anonymous(response: httpx.Response) -> None:
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"


def assert_bad_token(response: httpx.Response) -> None:
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: object = None,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> httpx.Response:
    """Send `body` as JSON, or `raw` bytes labelled as JSON."""
    content = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    all_headers = {**(JSON if content is not None else {}), **(headers or {})}
    return await client.request(method, url, content=content, headers=all_headers)


async def list_of(client: httpx.AsyncClient, user: User) -> list[dict[str, Any]]:
    response = await client.get(user.tasks_url, headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def fetch(client: httpx.AsyncClient, user: User, task_id: str) -> dict[str, Any]:
    response = await client.get(user.task_url(task_id), headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.fixture
def connections(app: FastAPI) -> Iterator[list[object]]:
    """Every connection the API takes from its pool while the test runs."""
    engine = app.state.database.engine.sync_engine
    taken: list[object] = []

    def taken_one(connection: object, *_: object) -> None:
        taken.append(connection)

    event.listen(engine, "checkout", taken_one)
    yield taken
    event.remove(engine, "checkout", taken_one)


# Invalid bodies shared by the writes: (id, JSON body or raw bytes, fields named in details).
MALFORMED: list[Any] = [
    pytest.param(b'{"title": "x",}', {"body"}, id="trailing-comma"),
    pytest.param(b'{"title": ', {"body"}, id="truncated"),
    pytest.param(b"", {"body"}, id="empty"),
    pytest.param(b"[]", {"body"}, id="list"),
    pytest.param(b'[{"title": "x"}]', {"body"}, id="list-of-objects"),
    pytest.param(b'"Buy milk"', {"body"}, id="string"),
    pytest.param(b"42", {"body"}, id="number"),
    pytest.param(b"null", {"body"}, id="null"),
]

CREATE_INVALID: list[Any] = [
    pytest.param({}, {"title"}, id="missing-title"),
    pytest.param({"title": None}, {"title"}, id="null-title"),
    pytest.param({"title": ""}, {"title"}, id="empty-title"),
    pytest.param({"title": " \t\n "}, {"title"}, id="whitespace-title"),
    pytest.param({"title": "x" * 501}, {"title"}, id="title-501"),
    pytest.param({"title": "😀" * 501}, {"title"}, id="title-501-emoji"),
    pytest.param({"title": 5}, {"title"}, id="title-number"),
    pytest.param({"title": ["x"]}, {"title"}, id="title-list"),
    pytest.param({"title": "x", "description": "d" * 10_001}, {"description"}, id="desc-10001"),
    pytest.param({"title": "x", "description": 5}, {"description"}, id="desc-number"),
    pytest.param({"title": "x", "priority": "urgent"}, {"priority"}, id="priority-unknown"),
    pytest.param({"title": "x", "priority": "HIGH"}, {"priority"}, id="priority-case"),
    pytest.param({"title": "x", "priority": None}, {"priority"}, id="priority-null"),
    pytest.param({"title": "x", "priority": 2}, {"priority"}, id="priority-number"),
    pytest.param({"title": "x", "due_at": "2026-12-01T17:00:00"}, {"due_at"}, id="due-naive"),
    pytest.param({"title": "x", "due_at": "next tuesday"}, {"due_at"}, id="due-text"),
    pytest.param({"title": "x", "due_at": "2026-13-01T17:00:00Z"}, {"due_at"}, id="due-month"),
    pytest.param({"title": "x", "due_at": 1_796_144_400}, {"due_at"}, id="due-number"),
    pytest.param({"title": "x", "due_at": True}, {"due_at"}, id="due-bool"),
    pytest.param({"title": "x", "tags": [f"t{i}" for i in range(21)]}, {"tags"}, id="tags-21"),
    pytest.param({"title": "x", "tags": ["t" * 51]}, {"tags.0"}, id="tag-51"),
    pytest.param({"title": "x", "tags": ["ok", ""]}, {"tags.1"}, id="tag-empty"),
    pytest.param({"title": "x", "tags": ["   "]}, {"tags.0"}, id="tag-blank"),
    pytest.param({"title": "x", "tags": ["home", "home"]}, {"tags"}, id="tags-duplicate"),
    pytest.param({"title": "x", "tags": "home"}, {"tags"}, id="tags-string"),
    pytest.param({"title": "x", "tags": [1]}, {"tags.0"}, id="tag-number"),
    pytest.param({"title": "x", "tags": None}, {"tags"}, id="tags-null"),
    pytest.param({"title": "x", "is_completed": "true"}, {"is_completed"}, id="completed-str"),
    pytest.param({"title": "x", "is_completed": 1}, {"is_completed"}, id="completed-int"),
    pytest.param({"title": "x", "is_completed": None}, {"is_completed"}, id="completed-null"),
    pytest.param({"title": "x", "colour": "red"}, {"colour"}, id="unknown-field"),
    *(
        pytest.param({"title": "x", field: value}, {field}, id=f"read-only-{field}")
        for field, value in {
            "id": str(uuid7()),
            "user_id": "someone-else",
            "created_at": "2026-11-21T19:24:00Z",
            "updated_at": "2026-11-21T19:24:00Z",
            "completed_at": "2026-11-21T19:24:00Z",
            "version": 7,
        }.items()
    ),
    pytest.param({"colour": "red", "version": 3}, {"title", "colour", "version"}, id="several"),
    *MALFORMED,
]

UPDATE_INVALID: list[Any] = [
    pytest.param({}, {"body"}, id="empty-object"),
    pytest.param({"title": None}, {"title"}, id="null-title"),
    pytest.param({"title": "   "}, {"title"}, id="whitespace-title"),
    pytest.param({"title": "x" * 501}, {"title"}, id="title-501"),
    pytest.param({"title": 5}, {"title"}, id="title-number"),
    pytest.param({"description": "d" * 10_001}, {"description"}, id="desc-10001"),
    pytest.param({"priority": "urgent"}, {"priority"}, id="priority-unknown"),
    pytest.param({"priority": None}, {"priority"}, id="priority-null"),
    pytest.param({"due_at": "2026-12-01T17:00:00"}, {"due_at"}, id="due-naive"),
    pytest.param({"due_at": 1_796_144_400}, {"due_at"}, id="due-number"),
    pytest.param({"tags": [f"t{i}" for i in range(21)]}, {"tags"}, id="tags-21"),
    pytest.param({"tags": ["a", "a"]}, {"tags"}, id="tags-duplicate"),
    pytest.param({"tags": None}, {"tags"}, id="tags-null"),
    pytest.param({"is_completed": "true"}, {"is_completed"}, id="completed-str"),
    pytest.param({"is_completed": None}, {"is_completed"}, id="completed-null"),
    pytest.param({"title": "ok", "colour": "red"}, {"colour"}, id="unknown-field"),
    pytest.param({"title": "ok", "version": 9}, {"version"}, id="read-only-version"),
    pytest.param({"id": str(uuid7())}, {"id"}, id="read-only-id"),
    pytest.param({"user_id": "someone-else"}, {"user_id"}, id="read-only-user"),
    pytest.param({"created_at": "2026-11-21T19:24:00Z"}, {"created_at"}, id="read-only-created"),
    *MALFORMED,
]


def _without(task: dict[str, Any], fields: set[str]) -> dict[str, Any]:
    return {key: value for key, value in task.items() if key not in fields}


def _body(case: object) -> dict[str, Any]:
    return {"raw": case} if isinstance(case, bytes) else {"body": case}


class TestListTasks:
    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_anonymous(await client.get(alice.tasks_url))

    @pytest.mark.parametrize("token", BAD_TOKENS)
    async def test_bad_token(self, client: httpx.AsyncClient, alice: User, token: str) -> None:
        assert_bad_token(await client.get(alice.tasks_url, headers=BAD_TOKENS[token](alice)))

    async def test_anonymous_invalid_query(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_anonymous(await client.get(alice.tasks_url, params={"limit": "0"}))

    async def test_other_users_url(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        await create_task(bob)
        response = await client.get(bob.tasks_url, headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")

    async def test_other_users_url_invalid_query(
        self, client: httpx.AsyncClient, alice: User, bob: User, connections: list[object]
    ) -> None:
        response = await client.get(bob.tasks_url, params={"limit": "x"}, headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")
        assert connections == []

    async def test_invalid_query(
        self, client: httpx.AsyncClient, alice: User, connections: list[object]
    ) -> None:
        response = await client.get(alice.tasks_url, params={"limit": "0"}, headers=alice.headers)
        assert_error(response, 400, "VALIDATION_ERROR", {"limit"})
        assert connections == []

    async def test_empty(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(alice.tasks_url, headers=alice.headers)
        assert response.status_code == 200
        body = response.json()
        assert body["data"] == []
        assert body["meta"]["total"] == 0
        assert body["meta"]["request_id"] == response.headers["x-request-id"]

    async def test_own_tasks_only(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        first = await create_task(alice, title="Alice 1")
        second = await create_task(alice, title="Alice 2")
        bobs = await create_task(bob, title="Bob 1")

        response = await client.get(alice.tasks_url, headers=alice.headers)
        assert response.status_code == 200
        assert [task["id"] for task in response.json()["data"]] == [second["id"], first["id"]]
        assert response.json()["meta"]["total"] == 2
        assert [task["id"] for task in await list_of(client, bob)] == [bobs["id"]]


class TestCreateTask:
    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_anonymous(await send(client, "POST", alice.tasks_url, {"title": "x"}))

    @pytest.mark.parametrize("token", BAD_TOKENS)
    async def test_bad_token(self, client: httpx.AsyncClient, alice: User, token: str) -> None:
        response = await send(
            client, "POST", alice.tasks_url, {"title": "x"}, headers=BAD_TOKENS[token](alice)
        )
        assert_bad_token(response)
        assert await list_of(client, alice) == []

    @pytest.mark.parametrize("raw", [b'{"title": ', b"[]", b'{"id": 1}'])
    async def test_anonymous_invalid_body(
        self, client: httpx.AsyncClient, alice: User, raw: bytes
    ) -> None:
        assert_anonymous(await send(client, "POST", alice.tasks_url, raw=raw))

    async def test_other_users_url(
        self, client: httpx.AsyncClient, alice: User, bob: User, connections: list[object]
    ) -> None:
        response = await send(client, "POST", bob.tasks_url, {"title": "x"}, headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")
        assert connections == []
        assert await list_of(client, bob) == []

    async def test_other_users_url_invalid_body(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        response = await send(client, "POST", bob.tasks_url, raw=b"{", headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")

    async def test_defaults(
        self, client: httpx.AsyncClient, alice: User, connections: list[object]
    ) -> None:
        before = datetime.now(UTC)
        response = await send(
            client, "POST", alice.tasks_url, {"title": "  Buy milk \n"}, headers=alice.headers
        )
        assert response.status_code == 201, response.text
        task = response.json()["data"]
        assert set(task) == FIELDS
        assert task | {"id": None, "created_at": None, "updated_at": None} == {
            "id": None,
            "user_id": alice.id,
            "title": "Buy milk",
            "description": None,
            "priority": "medium",
            "due_at": None,
            "tags": [],
            "is_completed": False,
            "completed_at": None,
            "created_at": None,
            "updated_at": None,
            "version": 1,
            # A new user's first task: fractional indexing's first key.
            "position": "a0",
        }
        task_id = UUID(task["id"])
        assert task_id.version == 7
        # UUIDv7 carries its creation time in milliseconds: the server made it just now.
        made_at = datetime.fromtimestamp((task_id.int >> 80) / 1000, UTC)
        assert before - timedelta(seconds=1) <= made_at <= datetime.now(UTC)
        assert TIMESTAMP.match(task["created_at"])
        assert task["updated_at"] == task["created_at"]
        assert response.headers["location"] == f"/api/{alice.id}/tasks/{task['id']}"
        assert response.headers["etag"] == f'"{task["id"]}.1"'
        assert response.json()["meta"]["request_id"] == response.headers["x-request-id"]
        assert connections, "the `connections` fixture sees the API's connections"

    async def test_all_fields(self, client: httpx.AsyncClient, alice: User) -> None:
        body = {
            "title": "Ship it",
            "description": "All of it",
            "priority": "high",
            "due_at": "2026-12-01T19:00:00.5+02:00",
            "tags": [" work ", "Home", "home"],
        }
        response = await send(client, "POST", alice.tasks_url, body, headers=alice.headers)
        assert response.status_code == 201, response.text
        task = response.json()["data"]
        assert task["title"] == "Ship it"
        assert task["description"] == "All of it"
        assert task["priority"] == "high"
        assert task["due_at"] == "2026-12-01T17:00:00.500000Z"
        assert task["tags"] == ["work", "Home", "home"]
        assert task["is_completed"] is False
        assert task["completed_at"] is None

    async def test_completed(self, client: httpx.AsyncClient, alice: User) -> None:
        body = {"title": "Already done", "is_completed": True}
        response = await send(client, "POST", alice.tasks_url, body, headers=alice.headers)
        assert response.status_code == 201, response.text
        task = response.json()["data"]
        assert task["is_completed"] is True
        assert TIMESTAMP.match(task["completed_at"])
        assert task["completed_at"] == task["created_at"]
        assert task["version"] == 1

    async def test_location_and_etag_lead_to_the_task(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        created = await send(client, "POST", alice.tasks_url, {"title": "x"}, headers=alice.headers)
        fetched = await client.get(created.headers["location"], headers=alice.headers)
        assert fetched.status_code == 200
        assert fetched.json()["data"] == created.json()["data"]
        assert fetched.headers["etag"] == created.headers["etag"]

    async def test_ids_are_time_ordered(self, client: httpx.AsyncClient, alice: User) -> None:
        ids = []
        for title in ("a", "b", "c"):
            response = await send(
                client, "POST", alice.tasks_url, {"title": title}, headers=alice.headers
            )
            ids.append(UUID(response.json()["data"]["id"]))
        assert ids == sorted(ids)

    @pytest.mark.parametrize(
        ("title", "stored"),
        [
            pytest.param("x" * 500, "x" * 500, id="500"),
            pytest.param("😀" * 500, "😀" * 500, id="500-emoji"),
            pytest.param("é" * 500, "é" * 500, id="500-accents"),
            pytest.param("  " + "x" * 500 + "  ", "x" * 500, id="500-after-trimming"),
            pytest.param("x", "x", id="1"),
        ],
    )
    async def test_title_limits(
        self, client: httpx.AsyncClient, alice: User, title: str, stored: str
    ) -> None:
        response = await send(
            client, "POST", alice.tasks_url, {"title": title}, headers=alice.headers
        )
        assert response.status_code == 201, response.text
        assert response.json()["data"]["title"] == stored

    async def test_other_limits(self, client: httpx.AsyncClient, alice: User) -> None:
        body = {
            "title": "limits",
            "description": "d" * 10_000,
            "tags": [f"{i:02d}" + "t" * 48 for i in range(20)],
        }
        response = await send(client, "POST", alice.tasks_url, body, headers=alice.headers)
        assert response.status_code == 201, response.text
        assert response.json()["data"]["description"] == body["description"]
        assert response.json()["data"]["tags"] == body["tags"]

    async def test_null_clearable_fields(self, client: httpx.AsyncClient, alice: User) -> None:
        body = {"title": "x", "description": None, "due_at": None}
        response = await send(client, "POST", alice.tasks_url, body, headers=alice.headers)
        assert response.status_code == 201, response.text
        assert response.json()["data"]["description"] is None
        assert response.json()["data"]["due_at"] is None

    @pytest.mark.parametrize(("case", "fields"), CREATE_INVALID)
    async def test_invalid_body(
        self,
        client: httpx.AsyncClient,
        alice: User,
        connections: list[object],
        case: object,
        fields: set[str],
    ) -> None:
        response = await send(client, "POST", alice.tasks_url, headers=alice.headers, **_body(case))
        error = assert_error(response, 400, "VALIDATION_ERROR", fields)
        if isinstance(case, dict) and "version" in case:
            assert {"field": "version", "message": "is read-only"} in error["details"]
        assert "location" not in response.headers
        assert connections == [], "a rejected body must not reach the database"
        assert await list_of(client, alice) == []


class TestGetTask:
    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_anonymous(await client.get(alice.task_url(_unknown_id())))

    @pytest.mark.parametrize("token", BAD_TOKENS)
    async def test_bad_token(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask, token: str
    ) -> None:
        task = await create_task(alice)
        response = await client.get(alice.task_url(task["id"]), headers=BAD_TOKENS[token](alice))
        assert_bad_token(response)

    async def test_anonymous_invalid_task_id(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_anonymous(await client.get(alice.task_url("not-a-uuid")))

    async def test_other_users_url(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(bob)
        response = await client.get(bob.task_url(task["id"]), headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")

    async def test_other_users_url_invalid_task_id(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        response = await client.get(bob.task_url("not-a-uuid"), headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")

    async def test_other_users_task(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice)
        response = await client.get(bob.task_url(task["id"]), headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_unknown_task(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(alice.task_url(_unknown_id()), headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    @pytest.mark.parametrize("task_id", ["not-a-uuid", "123", "0193a6f1-5b7c-7cc0-9e1d"])
    async def test_invalid_task_id(
        self, client: httpx.AsyncClient, alice: User, connections: list[object], task_id: str
    ) -> None:
        response = await client.get(alice.task_url(task_id), headers=alice.headers)
        assert_error(response, 400, "VALIDATION_ERROR", {"task_id"})
        assert connections == []

    async def test_own_task(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice, title="Read me", tags=["a"], due_at="2026-12-01T17:00:00Z")
        response = await client.get(alice.task_url(task["id"]), headers=alice.headers)
        assert response.status_code == 200
        assert response.json()["data"] == task
        assert response.headers["etag"] == f'"{task["id"]}.1"'
        assert response.json()["meta"]["request_id"] == response.headers["x-request-id"]


class _UpdateTests:
    """PUT and PATCH share their semantics: a partial update of the fields given."""

    method: str

    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await send(client, self.method, alice.task_url(_unknown_id()), {"title": "x"})
        assert_anonymous(response)

    @pytest.mark.parametrize("token", BAD_TOKENS)
    async def test_bad_token(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask, token: str
    ) -> None:
        task = await create_task(alice)
        url = alice.task_url(task["id"])
        response = await send(
            client, self.method, url, {"title": "y"}, headers=BAD_TOKENS[token](alice)
        )
        assert_bad_token(response)
        assert await fetch(client, alice, task["id"]) == task

    @pytest.mark.parametrize("raw", [b"{", b"{}", b'{"version": 3}'])
    async def test_anonymous_invalid_body(
        self, client: httpx.AsyncClient, alice: User, raw: bytes
    ) -> None:
        response = await send(client, self.method, alice.task_url("not-a-uuid"), raw=raw)
        assert_anonymous(response)

    async def test_other_users_url(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(bob)
        url = bob.task_url(task["id"])
        response = await send(client, self.method, url, {"title": "mine"}, headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")
        assert await fetch(client, bob, task["id"]) == task

    async def test_other_users_url_invalid_body(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(bob)
        url = bob.task_url(task["id"])
        response = await send(client, self.method, url, raw=b"{}", headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")

    async def test_other_users_task(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice)
        url = bob.task_url(task["id"])
        response = await send(client, self.method, url, {"title": "taken"}, headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")
        assert await fetch(client, alice, task["id"]) == task

    async def test_unknown_task(self, client: httpx.AsyncClient, alice: User) -> None:
        url = alice.task_url(_unknown_id())
        response = await send(client, self.method, url, {"title": "x"}, headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")
        assert await list_of(client, alice) == []

    async def test_invalid_task_id(self, client: httpx.AsyncClient, alice: User) -> None:
        url = alice.task_url("not-a-uuid")
        response = await send(client, self.method, url, {"title": "x"}, headers=alice.headers)
        assert_error(response, 400, "VALIDATION_ERROR", {"task_id"})

    async def test_only_given_fields_change(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        task = await create_task(
            alice,
            title="Old",
            description="Keep me",
            priority="high",
            due_at="2026-12-01T17:00:00Z",
            tags=["keep"],
        )
        url = alice.task_url(task["id"])
        response = await send(client, self.method, url, {"title": "  New  "}, headers=alice.headers)
        assert response.status_code == 200, response.text
        updated = response.json()["data"]
        assert updated["title"] == "New"
        assert updated["version"] == 2
        assert updated["updated_at"] > task["updated_at"]
        assert TIMESTAMP.match(updated["updated_at"])
        changed = {"title", "version", "updated_at"}
        assert _without(updated, changed) == _without(task, changed)
        assert response.headers["etag"] == f'"{task["id"]}.2"'
        assert await fetch(client, alice, task["id"]) == updated

    async def test_every_field(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice)
        body = {
            "title": "All new",
            "description": "Now described",
            "priority": "low",
            "due_at": "2027-01-01T00:00:00-05:00",
            "tags": ["x", "y"],
        }
        url = alice.task_url(task["id"])
        response = await send(client, self.method, url, body, headers=alice.headers)
        assert response.status_code == 200, response.text
        updated = response.json()["data"]
        assert {key: updated[key] for key in body} == body | {"due_at": "2027-01-01T05:00:00Z"}
        assert updated["version"] == 2

    async def test_null_clears(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice, description="Some", due_at="2026-12-01T17:00:00Z")
        url = alice.task_url(task["id"])
        body = {"description": None, "due_at": None}
        response = await send(client, self.method, url, body, headers=alice.headers)
        assert response.status_code == 200, response.text
        updated = response.json()["data"]
        assert updated["description"] is None
        assert updated["due_at"] is None
        assert updated["title"] == task["title"]
        assert await fetch(client, alice, task["id"]) == updated

    async def test_complete_and_reopen(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice)
        url = alice.task_url(task["id"])

        done = await send(client, self.method, url, {"is_completed": True}, headers=alice.headers)
        assert done.status_code == 200, done.text
        completed = done.json()["data"]
        assert completed["is_completed"] is True
        assert TIMESTAMP.match(completed["completed_at"])
        assert completed["version"] == 2

        # Staying completed keeps the moment it was completed.
        again = await send(
            client, self.method, url, {"is_completed": True, "title": "t"}, headers=alice.headers
        )
        assert again.json()["data"]["completed_at"] == completed["completed_at"]

        reopened = await send(
            client, self.method, url, {"is_completed": False}, headers=alice.headers
        )
        assert reopened.status_code == 200, reopened.text
        assert reopened.json()["data"]["is_completed"] is False
        assert reopened.json()["data"]["completed_at"] is None
        assert reopened.json()["data"]["version"] == 4

    @pytest.mark.parametrize(("case", "fields"), UPDATE_INVALID)
    async def test_invalid_body(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        case: object,
        fields: set[str],
    ) -> None:
        task = await create_task(alice, description="Before")
        url = alice.task_url(task["id"])
        response = await send(client, self.method, url, headers=alice.headers, **_body(case))
        assert_error(response, 400, "VALIDATION_ERROR", fields)
        assert await fetch(client, alice, task["id"]) == task


class TestUpdateTask(_UpdateTests):
    method = "PUT"


class TestPatchTask(_UpdateTests):
    method = "PATCH"


class TestDeleteTask:
    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_anonymous(await client.delete(alice.task_url(_unknown_id())))

    @pytest.mark.parametrize("token", BAD_TOKENS)
    async def test_bad_token(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask, token: str
    ) -> None:
        task = await create_task(alice)
        response = await client.delete(alice.task_url(task["id"]), headers=BAD_TOKENS[token](alice))
        assert_bad_token(response)
        assert await fetch(client, alice, task["id"]) == task

    async def test_anonymous_invalid_task_id(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_anonymous(await client.delete(alice.task_url("not-a-uuid")))

    async def test_other_users_url(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(bob)
        response = await client.delete(bob.task_url(task["id"]), headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")
        assert await fetch(client, bob, task["id"]) == task

    async def test_other_users_task(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice)
        response = await client.delete(bob.task_url(task["id"]), headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")
        assert await fetch(client, alice, task["id"]) == task

    async def test_unknown_task(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.delete(alice.task_url(_unknown_id()), headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_invalid_task_id(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.delete(alice.task_url("not-a-uuid"), headers=alice.headers)
        assert_error(response, 400, "VALIDATION_ERROR", {"task_id"})

    async def test_own_task(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice)
        kept = await create_task(alice)
        response = await client.delete(alice.task_url(task["id"]), headers=alice.headers)
        assert response.status_code == 204
        assert response.content == b""
        assert "content-type" not in response.headers

        gone = await client.get(alice.task_url(task["id"]), headers=alice.headers)
        assert_error(gone, 404, "NOT_FOUND")
        again = await client.delete(alice.task_url(task["id"]), headers=alice.headers)
        assert_error(again, 404, "NOT_FOUND")
        assert [t["id"] for t in await list_of(client, alice)] == [kept["id"]]


class TestCompleteTask:
    @staticmethod
    def url(user: User, task_id: str) -> str:
        return user.task_url(task_id) + "/complete"

    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        assert_anonymous(await client.patch(self.url(alice, _unknown_id())))

    @pytest.mark.parametrize("token", BAD_TOKENS)
    async def test_bad_token(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask, token: str
    ) -> None:
        task = await create_task(alice)
        response = await client.patch(self.url(alice, task["id"]), headers=BAD_TOKENS[token](alice))
        assert_bad_token(response)
        assert await fetch(client, alice, task["id"]) == task

    async def test_anonymous_invalid_body(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await send(client, "PATCH", self.url(alice, "not-a-uuid"), raw=b"{")
        assert_anonymous(response)

    async def test_other_users_url(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(bob)
        response = await client.patch(self.url(bob, task["id"]), headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")
        assert await fetch(client, bob, task["id"]) == task

    async def test_other_users_url_invalid_body(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(bob)
        url = self.url(bob, task["id"])
        response = await send(client, "PATCH", url, {"is_completed": "yes"}, headers=alice.headers)
        assert_error(response, 403, "FORBIDDEN")

    async def test_other_users_task(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice)
        response = await client.patch(self.url(bob, task["id"]), headers=bob.headers)
        assert_error(response, 404, "NOT_FOUND")
        assert await fetch(client, alice, task["id"]) == task

    async def test_unknown_task(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.patch(self.url(alice, _unknown_id()), headers=alice.headers)
        assert_error(response, 404, "NOT_FOUND")

    async def test_invalid_task_id(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.patch(self.url(alice, "not-a-uuid"), headers=alice.headers)
        assert_error(response, 400, "VALIDATION_ERROR", {"task_id"})

    @pytest.mark.parametrize(
        "body", [pytest.param(None, id="no-body"), pytest.param({}, id="empty-object")]
    )
    async def test_complete(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask, body: object
    ) -> None:
        task = await create_task(alice)
        url = self.url(alice, task["id"])
        response = await send(client, "PATCH", url, body, headers=alice.headers)
        assert response.status_code == 200, response.text
        done = response.json()["data"]
        assert done["is_completed"] is True
        assert TIMESTAMP.match(done["completed_at"])
        assert done["completed_at"] == done["updated_at"]
        assert done["version"] == 2
        assert response.headers["etag"] == f'"{task["id"]}.2"'
        changed = {"is_completed", "completed_at", "version", "updated_at"}
        assert _without(done, changed) == _without(task, changed)

        # A retry is not a toggle: it changes nothing, not even the version.
        repeated = await send(client, "PATCH", url, body, headers=alice.headers)
        assert repeated.status_code == 200, repeated.text
        assert repeated.json()["data"] == done
        assert repeated.headers["etag"] == response.headers["etag"]
        assert await fetch(client, alice, task["id"]) == done

    async def test_reopen(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice, is_completed=True)
        url = self.url(alice, task["id"])
        response = await send(client, "PATCH", url, {"is_completed": False}, headers=alice.headers)
        assert response.status_code == 200, response.text
        reopened = response.json()["data"]
        assert reopened["is_completed"] is False
        assert reopened["completed_at"] is None
        assert reopened["version"] == 2

        repeated = await send(client, "PATCH", url, {"is_completed": False}, headers=alice.headers)
        assert repeated.json()["data"] == reopened

    async def test_reopen_an_open_task(
        self, client: httpx.AsyncClient, alice: User, create_task: CreateTask
    ) -> None:
        task = await create_task(alice)
        url = self.url(alice, task["id"])
        response = await send(client, "PATCH", url, {"is_completed": False}, headers=alice.headers)
        assert response.status_code == 200, response.text
        assert response.json()["data"] == task

    @pytest.mark.parametrize(
        ("case", "fields"),
        [
            pytest.param({"is_completed": "yes"}, {"is_completed"}, id="completed-str"),
            pytest.param({"is_completed": None}, {"is_completed"}, id="completed-null"),
            pytest.param({"is_completed": 0}, {"is_completed"}, id="completed-int"),
            pytest.param({"title": "x"}, {"title"}, id="other-field"),
            pytest.param({"version": 1}, {"version"}, id="read-only"),
            pytest.param(b"{", {"body"}, id="malformed"),
            pytest.param(b"[]", {"body"}, id="list"),
            pytest.param(b"true", {"body"}, id="bool"),
        ],
    )
    async def test_invalid_body(
        self,
        client: httpx.AsyncClient,
        alice: User,
        create_task: CreateTask,
        case: object,
        fields: set[str],
    ) -> None:
        task = await create_task(alice)
        url = self.url(alice, task["id"])
        response = await send(client, "PATCH", url, headers=alice.headers, **_body(case))
        assert_error(response, 400, "VALIDATION_ERROR", fields)
        assert await fetch(client, alice, task["id"]) == task
