"""GET /api/{user_id}/events: checks before the stream, replay then live, resume, keep-alive,
the per-user limit, the token's expiry, and a stuck reader."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tasks_api.change_hub import ChangeHub
from tasks_api.change_listener import ChangeListener, connector
from tasks_api.config import Settings
from tasks_api.main import create_app
from tests.support.auth import User, make_token
from tests.support.database import as_user
from tests.support.live import Stream, open_stream, serve

KEEPALIVE_SECONDS = 0.3
MAX_STREAMS = 10


@pytest.fixture(scope="module")
async def events_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The suite's settings, with a keep-alive short enough to be seen in a test."""
    app = create_app(settings.model_copy(update={"events_keepalive_seconds": KEEPALIVE_SECONDS}))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="module")
async def base_url(events_app: FastAPI) -> AsyncIterator[str]:
    async with serve(events_app) as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


def events_url(user: User) -> str:
    return f"/api/{user.id}/events"


async def create(http: httpx.AsyncClient, user: User, title: str = "A task") -> dict[str, Any]:
    response = await http.post(user.tasks_url, json={"title": title}, headers=user.headers)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


async def token_now(http: httpx.AsyncClient, user: User) -> str:
    response = await http.get(f"/api/{user.id}/changes", headers=user.headers)
    token: str = response.json()["meta"]["sync_token"]
    return token


async def expect(stream: Stream, kind: str) -> dict[str, Any]:
    event = await stream.next_event()
    assert event is not None, "the stream ended"
    assert event.event == kind
    assert event.id
    assert event.data is not None
    change: dict[str, Any] = json.loads(event.data)
    assert change["type"] == kind
    return change | {"_id": event.id}


class TestBeforeTheStream:
    async def test_anonymous(self, http: httpx.AsyncClient, alice: User) -> None:
        response = await http.get(events_url(alice))
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/json"

    async def test_a_token_in_the_query_string_is_never_accepted(
        self, http: httpx.AsyncClient, alice: User
    ) -> None:
        for name in ("access_token", "token", "authorization"):
            response = await http.get(events_url(alice), params={name: alice.token})
            assert response.status_code == 401

    async def test_another_users_stream(
        self, http: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        response = await http.get(events_url(bob), headers=alice.headers)
        assert response.status_code == 403

    async def test_a_bad_since_or_last_event_id_is_400_naming_it(
        self, http: httpx.AsyncClient, alice: User
    ) -> None:
        bad = await http.get(events_url(alice), params={"since": "x"}, headers=alice.headers)
        assert bad.status_code == 400
        assert bad.json()["error"]["details"][0]["field"] == "since"
        headers = alice.headers | {"Last-Event-ID": "x"}
        bad = await http.get(events_url(alice), headers=headers)
        assert bad.status_code == 400
        assert bad.json()["error"]["details"][0]["field"] == "Last-Event-ID"

    async def test_an_expired_token_is_410_before_the_stream(
        self, http: httpx.AsyncClient, alice: User, db: Any
    ) -> None:
        from tests.integration.test_changes import as_user

        first, second = await create(http, alice), await create(http, alice)
        old = await token_now(http, alice)
        await http.delete(alice.task_url(first["id"]), headers=alice.headers)
        async with as_user(db, alice):
            await db.execute("UPDATE task_tombstones SET deleted_at = now() - interval '31 days'")
        await http.delete(alice.task_url(second["id"]), headers=alice.headers)
        response = await http.get(events_url(alice), params={"since": old}, headers=alice.headers)
        assert response.status_code == 410
        assert response.json()["error"]["code"] == "SYNC_TOKEN_EXPIRED"


class TestStream:
    async def test_replay_then_live(self, http: httpx.AsyncClient, alice: User) -> None:
        token = await token_now(http, alice)
        first = await create(http, alice, "first")
        second = await create(http, alice, "second")
        headers = alice.headers | {"X-Request-ID": "stream-1"}
        async with open_stream(http, events_url(alice), headers, since=token) as stream:
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            assert stream.response.headers["cache-control"] == "no-store"
            assert stream.response.headers["x-request-id"] == "stream-1"
            assert (await expect(stream, "upsert"))["task"] == first
            assert (await expect(stream, "upsert"))["task"] == second
            third = await create(http, alice, "third")
            assert (await expect(stream, "upsert"))["task"] == third
            await http.delete(alice.task_url(first["id"]), headers=alice.headers)
            deleted = await expect(stream, "delete")
            assert deleted["id"] == first["id"]
            assert deleted["deleted_at"].endswith("Z")

    async def test_without_a_token_from_now_and_only_its_user(
        self, http: httpx.AsyncClient, alice: User, bob: User
    ) -> None:
        await create(http, alice, "before")
        async with open_stream(http, events_url(alice), alice.headers) as stream:
            await create(http, bob, "not alice's")
            mine = await create(http, alice, "after")
            assert (await expect(stream, "upsert"))["task"] == mine

    async def test_last_event_id_resumes_with_nothing_missed_or_repeated(
        self, http: httpx.AsyncClient, alice: User
    ) -> None:
        token = await token_now(http, alice)
        titles = [f"task {i}" for i in range(5)]
        for title in titles[:3]:
            await create(http, alice, title)
        async with open_stream(http, events_url(alice), alice.headers, since=token) as stream:
            seen = [(await expect(stream, "upsert"))["task"]["title"] for _ in range(2)]
            last_id = (await expect(stream, "upsert"))["_id"]
            seen.append(titles[2])
        for title in titles[3:]:
            await create(http, alice, title)
        # The original `since` stays in the URL, as an SSE client reconnects; the header wins.
        headers = alice.headers | {"Last-Event-ID": last_id}
        async with open_stream(http, events_url(alice), headers, since=token) as stream:
            seen += [(await expect(stream, "upsert"))["task"]["title"] for _ in range(2)]
            assert seen == titles
            # Nothing more, however long it stays open: keep-alive comments only.
            for _ in range(3):
                block = await stream.next()
                assert block is not None
                assert block.event is None
                assert block.comments == ["keep-alive"]

    async def test_open_streams_are_counted_in_metrics(
        self, http: httpx.AsyncClient, alice: User
    ) -> None:
        async with open_stream(http, events_url(alice), alice.headers):
            metrics = (await http.get("/metrics")).text
        # At least this one (a stream an earlier test closed may not be noticed yet).
        gauge = next(line for line in metrics.splitlines() if line.startswith("tasks_api_event_"))
        assert float(gauge.split()[1]) >= 1
        assert "tasks_api_change_listener_connected" in metrics

    async def test_a_burst_of_changes_arrives_in_order(
        self, http: httpx.AsyncClient, alice: User
    ) -> None:
        async with open_stream(http, events_url(alice), alice.headers) as stream:
            created = await asyncio.gather(*(create(http, alice, f"t{i}") for i in range(30)))
            got = [(await expect(stream, "upsert"))["task"] for _ in created]
        assert sorted(task["id"] for task in got) == sorted(task["id"] for task in created)
        assert len({task["id"] for task in got}) == len(created)


class TestLimits:
    async def test_the_eleventh_stream_is_429_and_a_closed_one_frees_its_place(
        self, http: httpx.AsyncClient, base_url: str, alice: User, bob: User
    ) -> None:
        clients = [httpx.AsyncClient(base_url=base_url, timeout=10) for _ in range(MAX_STREAMS)]
        responses = []
        try:
            for client in clients:
                request = client.build_request("GET", events_url(alice), headers=alice.headers)
                response = await client.send(request, stream=True)
                assert response.status_code == 200
                responses.append(response)
            refused = await http.get(events_url(alice), headers=alice.headers)
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "TOO_MANY_REQUESTS"
            assert int(refused.headers["Retry-After"]) > 0
            # Another user's streams are counted apart.
            async with open_stream(http, events_url(bob), bob.headers):
                pass

            await responses.pop().aclose()
            for _ in range(100):  # the place is free as soon as the server sees the close
                async with http.stream("GET", events_url(alice), headers=alice.headers) as again:
                    if again.status_code == 200:
                        break
                    assert again.status_code == 429
                await asyncio.sleep(0.05)
            assert again.status_code == 200
        finally:
            for response in responses:
                await response.aclose()
            for client in clients:
                await client.aclose()

    async def test_the_stream_ends_when_the_bearer_token_expires(
        self, http: httpx.AsyncClient, alice: User
    ) -> None:
        short = {"Authorization": f"Bearer {make_token(alice.id, expires_in=timedelta(seconds=2))}"}
        async with open_stream(http, events_url(alice), short) as stream:
            while (block := await stream.next()) is not None:
                assert block.event is None  # keep-alives until the end
        # A new token resumes.
        async with open_stream(http, events_url(alice), alice.headers) as stream:
            task = await create(http, alice)
            assert (await expect(stream, "upsert"))["task"] == task

    async def test_streams_end_when_the_app_shuts_down(
        self, http: httpx.AsyncClient, alice: User, events_app: FastAPI
    ) -> None:
        hub = events_app.state.change_hub
        async with open_stream(http, events_url(alice), alice.headers) as stream:
            hub.close()
            while (block := await stream.next()) is not None:
                assert block.event is None


class TestListener:
    async def test_connected_only_while_a_stream_is_open(self, settings: Settings) -> None:
        """No stream, no session: an idle instance lets a Neon compute scale to zero."""
        hub = ChangeHub(max_streams_per_user=MAX_STREAMS)
        listener = ChangeListener(connector(settings), hub, ping_interval=0.1)
        listener.start()
        try:
            await asyncio.sleep(0.3)
            assert not listener.listening.is_set()
            subscription = hub.open("someone")
            await asyncio.wait_for(listener.listening.wait(), 10)
            subscription.close()
            async with asyncio.timeout(10):
                while listener.listening.is_set():  # noqa: ASYNC110 - no event for it
                    await asyncio.sleep(0.05)
        finally:
            await listener.stop()


class TestListenerRegistry:
    """Only users with an open stream somewhere NOTIFY (task_listeners, specs/sync.md)."""

    @staticmethod
    async def registered(db: Any, user: User) -> list[str]:
        async with as_user(db, user):
            rows = await db.fetch("SELECT instance FROM task_listeners")
        return [row["instance"] for row in rows]

    async def test_a_stream_registers_and_its_close_unregisters(
        self, http: httpx.AsyncClient, events_app: FastAPI, alice: User, db: Any
    ) -> None:
        assert await self.registered(db, alice) == []
        instance = events_app.state.change_hub.instance
        async with open_stream(http, events_url(alice), alice.headers) as first:
            assert await self.registered(db, alice) == [instance]
            async with open_stream(http, events_url(alice), alice.headers):
                pass
            # Another stream of the user is still open here: still registered, still live.
            assert await self.registered(db, alice) == [instance]
            task = await create(http, alice, "live")
            assert (await expect(first, "upsert"))["task"] == task
        for _ in range(100):  # removed once the server has seen the last close
            if await self.registered(db, alice) == []:
                break
            await asyncio.sleep(0.05)
        assert await self.registered(db, alice) == []
