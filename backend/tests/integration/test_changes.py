"""GET /api/{user_id}/changes: the feed's rules one by one, and `meta.sync_token` of the list."""

from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tasks_api.config import Settings
from tasks_api.services import sync_token
from tasks_api.services.cursor import CursorSigner
from tests.support.auth import User, make_token
from tests.support.database import as_user


def changes_url(user: User) -> str:
    return f"/api/{user.id}/changes"


async def changes(
    client: httpx.AsyncClient, user: User, since: str | None = None, **params: Any
) -> dict[str, Any]:
    if since is not None:
        params["since"] = since
    response = await client.get(changes_url(user), params=params, headers=user.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def token_now(client: httpx.AsyncClient, user: User) -> str:
    token: str = (await changes(client, user))["meta"]["sync_token"]
    return token


def summary(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (item["type"], item["task"]["id"] if item["type"] == "upsert" else item["id"])
        for item in body["data"]
    ]


def assert_bad_since(response: httpx.Response, field: str = "since") -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert [detail["field"] for detail in error["details"]] == [field]


class TestListChanges:
    async def test_anonymous(self, client: httpx.AsyncClient, alice: User) -> None:
        response = await client.get(changes_url(alice))
        assert response.status_code == 401

    async def test_another_users_url_is_forbidden(
        self, client: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        response = await client.get(changes_url(bob), headers=alice.headers)
        assert response.status_code == 403

    async def test_without_since_nothing_and_the_current_position(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        await create_task(alice, title="before")
        body = await changes(client, alice)
        assert body["data"] == []
        assert body["meta"]["has_more"] is False
        assert body["meta"]["limit"] == 100
        # Following from it: only what changed after.
        later = await create_task(alice, title="after")
        followed = await changes(client, alice, body["meta"]["sync_token"])
        assert summary(followed) == [("upsert", later["id"])]
        assert followed["data"][0]["task"] == later

    async def test_a_user_who_never_wrote_follows_from_the_start(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        token = await token_now(client, alice)
        assert (await changes(client, alice, token))["data"] == []
        task = await create_task(alice)
        assert summary(await changes(client, alice, token)) == [("upsert", task["id"])]

    async def test_each_task_once_at_its_last_change_in_order(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        token = await token_now(client, alice)
        first = await create_task(alice, title="first")
        second = await create_task(alice, title="second")
        for title in ("first, renamed", "first, renamed again"):
            updated = await client.patch(
                alice.task_url(first["id"]), json={"title": title}, headers=alice.headers
            )
            assert updated.status_code == 200
        body = await changes(client, alice, token)
        assert summary(body) == [("upsert", second["id"]), ("upsert", first["id"])]
        assert body["data"][1]["task"] == updated.json()["data"]
        assert body["data"][1]["task"]["version"] == 3

    async def test_a_write_that_changes_nothing_is_no_change(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice, is_completed=True)
        token = await token_now(client, alice)
        again = await client.patch(f"{alice.task_url(task['id'])}/complete", headers=alice.headers)
        assert again.status_code == 200
        body = await changes(client, alice, token)
        assert body["data"] == []
        assert body["meta"]["sync_token"] == token

    async def test_deletes_are_listed_with_their_time(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        kept = await create_task(alice, title="kept")
        gone = await create_task(alice, title="gone")
        token = await token_now(client, alice)
        brief = await create_task(alice, title="created and deleted after the token")
        for task in (gone, brief):
            deleted = await client.delete(alice.task_url(task["id"]), headers=alice.headers)
            assert deleted.status_code == 204
        body = await changes(client, alice, token)
        assert summary(body) == [("delete", gone["id"]), ("delete", brief["id"])]
        for item in body["data"]:
            assert set(item) == {"type", "id", "deleted_at"}
            assert item["deleted_at"].endswith("Z")
        assert kept["id"] not in str(body["data"])

    async def test_pages_follow_the_token_until_has_more_is_false(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        token = await token_now(client, alice)
        created = [(await create_task(alice, title=f"task {i}"))["id"] for i in range(5)]
        seen: list[str] = []
        pages = []
        while True:
            body = await changes(client, alice, token, limit=2)
            pages.append(len(body["data"]))
            seen += [item["task"]["id"] for item in body["data"]]
            assert body["meta"]["limit"] == 2
            token = body["meta"]["sync_token"]
            if not body["meta"]["has_more"]:
                break
        assert pages == [2, 2, 1]
        assert seen == created
        assert (await changes(client, alice, token))["data"] == []

    async def test_another_users_changes_never_show(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: Any
    ) -> None:
        alice_token = await token_now(client, alice)
        bob_token = await token_now(client, bob)
        mine = await create_task(alice)
        await create_task(bob)
        assert summary(await changes(client, alice, alice_token)) == [("upsert", mine["id"])]
        assert len((await changes(client, bob, bob_token))["data"]) == 1


class TestBadTokens:
    @pytest.mark.parametrize("since", ["", "garbage", "a.b", "x" * 600, "\x00"])
    async def test_not_a_token(self, client: httpx.AsyncClient, alice: User, since: str) -> None:
        response = await client.get(
            changes_url(alice), params={"since": since}, headers=alice.headers
        )
        assert_bad_since(response)

    async def test_another_users_token(
        self, client: httpx.AsyncClient, alice: User, bob: User, create_task: Any
    ) -> None:
        await create_task(bob)
        bobs = await token_now(client, bob)
        response = await client.get(
            changes_url(alice), params={"since": bobs}, headers=alice.headers
        )
        assert_bad_since(response)

    async def test_a_tampered_token(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        await create_task(alice)
        token = await token_now(client, alice)
        payload, _, mac = token.partition(".")
        for forged in (f"{payload}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}", f"MA.{mac}"):
            response = await client.get(
                changes_url(alice), params={"since": forged}, headers=alice.headers
            )
            assert_bad_since(response)

    async def test_a_list_cursor_is_not_a_token(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        for _ in range(2):
            await create_task(alice)
        listed = await client.get(alice.tasks_url, params={"limit": 1}, headers=alice.headers)
        cursor = listed.json()["meta"]["next_cursor"]
        response = await client.get(
            changes_url(alice), params={"since": cursor}, headers=alice.headers
        )
        assert_bad_since(response)

    async def test_a_token_from_the_future(
        self, client: httpx.AsyncClient, alice: User, settings: Settings, create_task: Any
    ) -> None:
        await create_task(alice)
        signer = CursorSigner.from_settings(settings)
        now = sync_token.decode(signer, alice.id, await token_now(client, alice))
        # What a restored backup would show a client that saw later data.
        ahead = sync_token.encode(signer, alice.id, now + 1)
        response = await client.get(
            changes_url(alice), params={"since": ahead}, headers=alice.headers
        )
        assert_bad_since(response)
        current = sync_token.encode(signer, alice.id, now)
        assert (await changes(client, alice, current))["data"] == []

    @pytest.mark.parametrize("limit", ["0", "1001", "ten"])
    async def test_a_bad_limit(self, client: httpx.AsyncClient, alice: User, limit: str) -> None:
        response = await client.get(
            changes_url(alice), params={"limit": limit}, headers=alice.headers
        )
        assert_bad_since(response, "limit")

    async def test_the_token_is_checked_before_the_user_is_trusted(
        self, client: httpx.AsyncClient, alice: User
    ) -> None:
        expired = make_token(alice.id, expires_in=timedelta(seconds=-60))
        response = await client.get(
            changes_url(alice),
            params={"since": "garbage"},
            headers={"Authorization": f"Bearer {expired}"},
        )
        assert response.status_code == 401


class TestExpiredToken:
    async def test_older_than_the_purged_tombstones_is_410(
        self, client: httpx.AsyncClient, alice: User, db: asyncpg.Connection, create_task: Any
    ) -> None:
        tasks = [await create_task(alice, title=f"task {i}") for i in range(3)]
        old = await token_now(client, alice)
        deleted = await client.delete(alice.task_url(tasks[0]["id"]), headers=alice.headers)
        assert deleted.status_code == 204
        after_first_delete = await token_now(client, alice)
        # The first tombstone ages past SYNC_RETENTION_DAYS; the next delete purges it.
        async with as_user(db, alice):
            await db.execute(
                "UPDATE task_tombstones SET deleted_at = now() - interval '31 days'"
                " WHERE task_id = $1",
                tasks[0]["id"],
            )
        await client.delete(alice.task_url(tasks[1]["id"]), headers=alice.headers)

        response = await client.get(
            changes_url(alice), params={"since": old}, headers=alice.headers
        )
        assert response.status_code == 410, response.text
        assert response.json()["error"]["code"] == "SYNC_TOKEN_EXPIRED"
        # A token that had seen the purged delete still follows.
        body = await changes(client, alice, after_first_delete)
        assert summary(body) == [("delete", tasks[1]["id"])]

    async def test_kept_tombstones_keep_old_tokens_good(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        old = await token_now(client, alice)
        for _ in range(2):
            await client.delete(alice.task_url(task["id"]), headers=alice.headers)
            task = await create_task(alice)
        assert len((await changes(client, alice, old))["data"]) == 3


class TestListSyncToken:
    async def test_every_page_carries_the_position_it_was_read_at(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        empty = await client.get(alice.tasks_url, headers=alice.headers)
        assert empty.json()["meta"]["sync_token"] == await token_now(client, alice)
        await create_task(alice)
        listed = await client.get(alice.tasks_url, headers=alice.headers)
        token = listed.json()["meta"]["sync_token"]
        assert (await changes(client, alice, token))["data"] == []
        later = await create_task(alice)
        assert summary(await changes(client, alice, token)) == [("upsert", later["id"])]


class TestPlan:
    async def test_two_index_range_scans_under_rls(
        self, client: httpx.AsyncClient, alice: User, bob: User, db: asyncpg.Connection
    ) -> None:
        from tasks_api.repositories.change_repository import _FEED

        for user, count in ((alice, 3000), (bob, 3000)):
            async with as_user(db, user):
                await db.execute(
                    "INSERT INTO tasks (id, user_id, title)"
                    " SELECT gen_random_uuid(), $1, 'task ' || i FROM generate_series(1, $2) i",
                    user.id,
                    count,
                )
                await db.execute("DELETE FROM tasks WHERE id IN (SELECT id FROM tasks LIMIT 300)")
        await db.execute("ANALYZE tasks, task_tombstones, task_sync")
        async with as_user(db, alice):
            since = await db.fetchval("SELECT seq - 50 FROM task_sync")
            plan = await db.fetch(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + _FEED.sql,
                *_FEED.args({"user_id": alice.id, "since": since, "fetch": 101}),
            )
        text = "\n".join(row[0] for row in plan)
        assert "Index Scan using ix_tasks_user_sync_seq" in text, text
        assert "Index Scan using ix_task_tombstones_user_seq" in text, text
        # task_sync is looked up by its key (a scan of a tiny table is the planner's choice).
        assert "Seq Scan on tasks" not in text, text
        assert "Seq Scan on task_tombstones" not in text, text
