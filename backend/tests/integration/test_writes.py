"""Writes: ETags and conditional requests, idempotent completion, body limits and types."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.auth import User

MAX_BODY = 65_536


def etag_of(task: dict[str, Any]) -> str:
    return f'"{task["id"]}.{task["version"]}"'


async def fetch(client: httpx.AsyncClient, user: User, task_id: str) -> dict[str, Any]:
    response = await client.get(user.task_url(task_id), headers=user.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def count_tasks(db: asyncpg.Connection, user: User) -> int:
    """The user's tasks as stored, read behind the API (as the app role, under RLS)."""
    async with db.transaction():
        await db.execute(
            "SELECT set_config('role', 'tasks_app', true), set_config('app.user_id', $1, true)",
            user.id,
        )
        return int(await db.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", user.id))


class TestETag:
    async def test_create_sends_etag_and_location(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        response = await client.post(alice.tasks_url, json={"title": "x"}, headers=alice.headers)
        assert response.status_code == 201
        task = response.json()["data"]
        assert response.headers["ETag"] == etag_of(task) == f'"{task["id"]}.1"'
        assert response.headers["Location"] == alice.task_url(task["id"])

    async def test_every_single_task_response_has_the_current_etag(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        url, headers = alice.task_url(task["id"]), alice.headers
        responses = [
            await client.get(url, headers=headers),
            await client.put(url, json={"title": "put"}, headers=headers),
            await client.patch(url, json={"title": "patch"}, headers=headers),
            await client.patch(f"{url}/complete", headers=headers),
        ]
        for response in responses:
            assert response.status_code == 200, response.text
            assert response.headers["ETag"] == etag_of(response.json()["data"])
        assert [r.json()["data"]["version"] for r in responses] == [1, 2, 3, 4]

    async def test_etag_is_strong_and_changes_with_every_write(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        before = (await client.get(alice.task_url(task["id"]), headers=alice.headers)).headers
        await client.patch(alice.task_url(task["id"]), json={"tags": ["a"]}, headers=alice.headers)
        after = (await client.get(alice.task_url(task["id"]), headers=alice.headers)).headers
        assert not before["ETag"].startswith("W/")
        assert before["ETag"] != after["ETag"]


class TestIfNoneMatch:
    async def test_current_etag_is_304_without_body(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        headers = {**alice.headers, "If-None-Match": etag_of(task)}
        response = await client.get(alice.task_url(task["id"]), headers=headers)
        assert response.status_code == 304
        assert response.headers["ETag"] == etag_of(task)
        assert response.content == b""

    @pytest.mark.parametrize("form", ["weak", "list", "star"])
    async def test_weak_list_and_star_match(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, form: str
    ) -> None:
        task = await create_task(alice)
        tag = etag_of(task)
        value = {"weak": f"W/{tag}", "list": f'"other", {tag}', "star": "*"}[form]
        headers = {**alice.headers, "If-None-Match": value}
        response = await client.get(alice.task_url(task["id"]), headers=headers)
        assert response.status_code == 304

    async def test_stale_etag_is_200_with_the_task(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        await client.patch(alice.task_url(task["id"]), json={"title": "new"}, headers=alice.headers)
        headers = {**alice.headers, "If-None-Match": etag_of(task)}
        response = await client.get(alice.task_url(task["id"]), headers=headers)
        assert response.status_code == 200
        assert response.json()["data"]["title"] == "new"
        assert response.headers["ETag"] == f'"{task["id"]}.2"'


class TestIfMatch:
    @pytest.mark.parametrize("method", ["PUT", "PATCH"])
    async def test_stale_update_is_412_and_changes_nothing(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, method: str
    ) -> None:
        task = await create_task(alice, title="original")
        stale = etag_of(task)
        await client.patch(alice.task_url(task["id"]), json={"tags": ["v2"]}, headers=alice.headers)
        current = await fetch(client, alice, task["id"])
        response = await client.request(
            method,
            alice.task_url(task["id"]),
            json={"title": "lost update"},
            headers={**alice.headers, "If-Match": stale},
        )
        assert response.status_code == 412
        assert response.json()["error"]["code"] == "PRECONDITION_FAILED"
        assert await fetch(client, alice, task["id"]) == current

    @pytest.mark.parametrize("method", ["PUT", "PATCH"])
    async def test_current_etag_applies(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, method: str
    ) -> None:
        task = await create_task(alice)
        response = await client.request(
            method,
            alice.task_url(task["id"]),
            json={"title": "changed"},
            headers={**alice.headers, "If-Match": etag_of(task)},
        )
        assert response.status_code == 200
        assert response.json()["data"]["version"] == 2

    @pytest.mark.parametrize(
        "if_match", ["list", "star", "weak", "other task", "garbage"], ids=lambda value: value
    )
    async def test_if_match_forms(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, if_match: str
    ) -> None:
        task, other = await create_task(alice), await create_task(alice)
        tag = etag_of(task)
        value, applies = {
            "list": (f'"nope", {tag}', True),
            "star": ("*", True),
            # If-Match compares strongly: a weak tag never matches.
            "weak": (f"W/{tag}", False),
            "other task": (etag_of(other), False),
            "garbage": ("not-an-etag", False),
        }[if_match]
        response = await client.patch(
            alice.task_url(task["id"]),
            json={"title": "changed"},
            headers={**alice.headers, "If-Match": value},
        )
        assert response.status_code == (200 if applies else 412)
        assert (await fetch(client, alice, task["id"]))["version"] == (2 if applies else 1)

    async def test_stale_complete_is_412_and_changes_nothing(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        await client.patch(alice.task_url(task["id"]), json={"title": "v2"}, headers=alice.headers)
        current = await fetch(client, alice, task["id"])
        for body in (None, {"is_completed": False}):
            response = await client.patch(
                alice.task_url(task["id"]) + "/complete",
                json=body,
                headers={**alice.headers, "If-Match": etag_of(task)},
            )
            assert response.status_code == 412
        assert await fetch(client, alice, task["id"]) == current

    async def test_complete_with_current_etag_of_a_done_task_is_200_unchanged(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice, is_completed=True)
        response = await client.patch(
            alice.task_url(task["id"]) + "/complete",
            headers={**alice.headers, "If-Match": etag_of(task)},
        )
        assert response.status_code == 200
        assert response.json()["data"] == task

    async def test_stale_delete_is_412_and_the_task_stays(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        await client.patch(alice.task_url(task["id"]), json={"title": "v2"}, headers=alice.headers)
        current = await fetch(client, alice, task["id"])
        response = await client.delete(
            alice.task_url(task["id"]), headers={**alice.headers, "If-Match": etag_of(task)}
        )
        assert response.status_code == 412
        assert await fetch(client, alice, task["id"]) == current

    async def test_delete_with_current_etag(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        response = await client.delete(
            alice.task_url(task["id"]), headers={**alice.headers, "If-Match": etag_of(task)}
        )
        assert response.status_code == 204
        assert response.content == b""
        gone = await client.get(alice.task_url(task["id"]), headers=alice.headers)
        assert gone.status_code == 404

    async def test_unknown_task_is_404_not_412(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: Any
    ) -> None:
        task = await create_task(bob)
        # Bob's task, with its own valid ETag: for Alice it does not exist.
        response = await client.patch(
            alice.task_url(task["id"]),
            json={"title": "x"},
            headers={**alice.headers, "If-Match": etag_of(task)},
        )
        assert response.status_code == 404
        assert (await fetch(client, bob, task["id"]))["version"] == 1


class TestComplete:
    async def test_complete_twice_keeps_completed_at_and_version(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        url = alice.task_url(task["id"]) + "/complete"
        first = await client.patch(url, headers=alice.headers)
        await asyncio.sleep(0.01)
        second = await client.patch(url, json={}, headers=alice.headers)
        assert first.status_code == second.status_code == 200
        done = first.json()["data"]
        assert done["is_completed"] is True
        assert done["completed_at"] is not None
        assert done["version"] == 2
        assert second.json()["data"] == done
        assert second.headers["ETag"] == first.headers["ETag"]

    async def test_reopen_clears_completed_at(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice, is_completed=True)
        url = alice.task_url(task["id"]) + "/complete"
        response = await client.patch(url, json={"is_completed": False}, headers=alice.headers)
        assert response.status_code == 200
        reopened = response.json()["data"]
        assert reopened["is_completed"] is False
        assert reopened["completed_at"] is None
        assert reopened["version"] == 2

    async def test_reopening_an_open_task_changes_nothing(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        url = alice.task_url(task["id"]) + "/complete"
        for _ in range(2):
            response = await client.patch(url, json={"is_completed": False}, headers=alice.headers)
            assert response.status_code == 200
            assert response.json()["data"] == task

    async def test_complete_then_reopen_then_complete_sets_a_new_completed_at(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        url = alice.task_url(task["id"]) + "/complete"
        first = (await client.patch(url, headers=alice.headers)).json()["data"]
        await client.patch(url, json={"is_completed": False}, headers=alice.headers)
        again = (await client.patch(url, headers=alice.headers)).json()["data"]
        assert again["version"] == 4
        assert again["completed_at"] > first["completed_at"]

    async def test_unknown_task_is_404(self, client: httpx.AsyncClient, alice: User) -> None:
        url = alice.task_url("01939a1e-0000-7000-8000-000000000000") + "/complete"
        assert (await client.patch(url, headers=alice.headers)).status_code == 404


async def _chunks(total: int, consumed: list[int], size: int = 1024) -> AsyncIterator[bytes]:
    """A body of `total` bytes in chunks, counting what the server actually pulled."""
    sent = 0
    while sent < total:
        chunk = b" " * min(size, total - sent)
        sent += len(chunk)
        consumed.append(len(chunk))
        yield chunk


def _padded(body: bytes, size: int) -> bytes:
    # Whitespace is valid JSON padding: a body of exactly `size` bytes.
    return body + b" " * (size - len(body))


class TestBodyLimits:
    async def test_64_kib_exactly_is_accepted(self, client: httpx.AsyncClient, alice: User) -> None:
        body = _padded(b'{"title": "at the limit"}', MAX_BODY)
        response = await client.post(
            alice.tasks_url,
            content=body,
            headers={**alice.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 201

    async def test_one_byte_more_is_413(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        body = _padded(b'{"title": "over the limit"}', MAX_BODY + 1)
        response = await client.post(
            alice.tasks_url,
            content=body,
            headers={**alice.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        assert await count_tasks(db, alice) == 0

    async def test_declared_length_over_the_limit_is_refused_unread(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        consumed: list[int] = []
        response = await client.post(
            alice.tasks_url,
            content=_chunks(10 * MAX_BODY, consumed),
            headers={
                **alice.headers,
                "Content-Type": "application/json",
                "Content-Length": str(10 * MAX_BODY),
            },
        )
        assert response.status_code == 413
        assert sum(consumed) == 0
        assert await count_tasks(db, alice) == 0

    async def test_streamed_body_is_cut_off_at_the_limit(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        consumed: list[int] = []
        # No Content-Length: httpx sends it chunked, the size is known only while reading.
        response = await client.post(
            alice.tasks_url,
            content=_chunks(100 * MAX_BODY, consumed),
            headers={**alice.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert MAX_BODY < sum(consumed) <= MAX_BODY + 1024
        assert await count_tasks(db, alice) == 0

    async def test_oversized_update_changes_nothing(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        body = _padded(b'{"title": "too big"}', MAX_BODY + 1)
        for method in ("PUT", "PATCH"):
            response = await client.request(
                method,
                alice.task_url(task["id"]),
                content=body,
                headers={**alice.headers, "Content-Type": "application/json"},
            )
            assert response.status_code == 413
        response = await client.patch(
            alice.task_url(task["id"]) + "/complete",
            content=_padded(b"{}", MAX_BODY + 1),
            headers={**alice.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert await fetch(client, alice, task["id"]) == task

    async def test_authentication_comes_before_the_size(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        response = await client.post(
            alice.tasks_url,
            content=_padded(b"{}", MAX_BODY + 1),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 401


class TestMediaType:
    @pytest.mark.parametrize(
        ("content_type", "body"),
        [
            ("text/plain", b'{"title": "x"}'),
            ("application/x-www-form-urlencoded", b"title=x"),
            (
                "multipart/form-data; boundary=b",
                b'--b\r\nContent-Disposition: form-data; name="title"\r\n\r\nx\r\n--b--\r\n',
            ),
            ("application/xml", b"<title>x</title>"),
        ],
        ids=["text", "form", "multipart", "xml"],
    )
    async def test_non_json_create_is_415_and_stores_nothing(
        self,
        client: httpx.AsyncClient,
        alice: User,
        db: asyncpg.Connection,
        content_type: str,
        body: bytes,
    ) -> None:
        response = await client.post(
            alice.tasks_url, content=body, headers={**alice.headers, "Content-Type": content_type}
        )
        assert response.status_code == 415
        assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
        assert await count_tasks(db, alice) == 0

    async def test_json_body_without_content_type_is_415(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection
    ) -> None:
        response = await client.post(
            alice.tasks_url, content=b'{"title": "x"}', headers=alice.headers
        )
        assert response.status_code == 415
        assert await count_tasks(db, alice) == 0

    async def test_json_with_charset_and_suffix_types_are_accepted(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
            response = await client.post(
                alice.tasks_url,
                content=b'{"title": "x"}',
                headers={**alice.headers, "Content-Type": content_type},
            )
            assert response.status_code == 201, content_type

    @pytest.mark.parametrize("method", ["PUT", "PATCH"])
    async def test_non_json_update_is_415_and_changes_nothing(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, method: str
    ) -> None:
        task = await create_task(alice)
        response = await client.request(
            method,
            alice.task_url(task["id"]),
            content=b"title=changed",
            headers={**alice.headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 415
        assert await fetch(client, alice, task["id"]) == task


class TestInvalidBodies:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            (b'{"title": "x",}', "body"),
            (b'{"title": ', "body"),
            (b"[]", "body"),
            (b'{"title": "x", "id": "01939a1e-0000-7000-8000-000000000000"}', "id"),
            (b'{"title": "x", "colour": "red"}', "colour"),
            (b'{"title": 5}', "title"),
            (b'{"title": "   "}', "title"),
        ],
        ids=["trailing comma", "truncated", "array", "read-only", "unknown", "type", "blank"],
    )
    async def test_bad_create_is_400_naming_the_field_and_stores_nothing(
        self,
        client: httpx.AsyncClient,
        alice: User,
        db: asyncpg.Connection,
        body: bytes,
        field: str,
    ) -> None:
        response = await client.post(
            alice.tasks_url,
            content=body,
            headers={**alice.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert field in [detail["field"] for detail in error["details"]]
        assert await count_tasks(db, alice) == 0

    @pytest.mark.parametrize(
        "body", [b"{}", b'{"title": null}', b"{not json", b'{"version": 7}'], ids=str
    )
    async def test_bad_update_is_400_and_changes_nothing(
        self, client: httpx.AsyncClient, alice: User, create_task: Any, body: bytes
    ) -> None:
        task = await create_task(alice)
        response = await client.patch(
            alice.task_url(task["id"]),
            content=body,
            headers={**alice.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        assert await fetch(client, alice, task["id"]) == task

    async def test_malformed_complete_body_is_400_and_changes_nothing(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        for body in (b'{"is_completed": "yes"}', b"{oops"):
            response = await client.patch(
                alice.task_url(task["id"]) + "/complete",
                content=body,
                headers={**alice.headers, "Content-Type": "application/json"},
            )
            assert response.status_code == 400
        assert await fetch(client, alice, task["id"]) == task
