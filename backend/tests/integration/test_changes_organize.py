"""The sync feed records the organizing writes too: move, batch and clear completed go
through the same triggers as every write (specs/sync.md)."""

from typing import Any

import httpx

from tests.integration.test_changes import changes, summary, token_now
from tests.support.auth import User


class TestOrganizingWritesAreChanges:
    async def test_a_move(self, client: httpx.AsyncClient, alice: User, create_task: Any) -> None:
        first, second = await create_task(alice), await create_task(alice)
        since = await token_now(client, alice)
        response = await client.post(
            f"{alice.tasks_url}/{second['id']}/move",
            json={"after": first["id"]},
            headers=alice.headers,
        )
        assert response.status_code == 200
        body = await changes(client, alice, since)
        assert summary(body) == [("upsert", second["id"])]
        assert body["data"][0]["task"]["position"] == response.json()["data"]["position"]

    async def test_a_batch_in_the_order_of_its_operations(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        kept, gone = await create_task(alice), await create_task(alice)
        since = await token_now(client, alice)
        operations = [
            {"op": "create", "task": {"title": "new"}},
            {"op": "delete", "id": gone["id"]},
            {"op": "update", "id": kept["id"], "changes": {"title": "renamed"}},
        ]
        response = await client.post(
            f"/api/{alice.id}/batch", json={"operations": operations}, headers=alice.headers
        )
        assert response.status_code == 200, response.text
        created = response.json()["data"][0]["id"]
        body = await changes(client, alice, since)
        assert summary(body) == [
            ("upsert", created),
            ("delete", gone["id"]),
            ("upsert", kept["id"]),
        ]
        assert body["data"][2]["task"]["title"] == "renamed"

    async def test_a_failed_batch_records_nothing(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        task = await create_task(alice)
        since = await token_now(client, alice)
        operations = [
            {"op": "update", "id": task["id"], "changes": {"title": "renamed"}},
            {"op": "delete", "id": "01939a1e-0000-7000-8000-000000000000"},
        ]
        response = await client.post(
            f"/api/{alice.id}/batch", json={"operations": operations}, headers=alice.headers
        )
        assert response.status_code == 404
        body = await changes(client, alice, since)
        assert body["data"] == []
        assert body["meta"]["sync_token"] == since

    async def test_clear_completed(
        self, client: httpx.AsyncClient, alice: User, create_task: Any
    ) -> None:
        done = [await create_task(alice, is_completed=True) for _ in range(3)]
        await create_task(alice)
        since = await token_now(client, alice)
        response = await client.delete(
            alice.tasks_url, params={"status": "completed"}, headers=alice.headers
        )
        assert response.json()["data"] == {"deleted": 3}
        body = await changes(client, alice, since)
        assert sorted(summary(body)) == sorted(("delete", task["id"]) for task in done)
