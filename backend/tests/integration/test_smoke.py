import httpx

from tests.support.auth import User


async def test_create_and_get(client: httpx.AsyncClient, alice: User) -> None:
    created = await client.post(alice.tasks_url, json={"title": "Buy milk"}, headers=alice.headers)
    assert created.status_code == 201
    task_id = created.json()["data"]["id"]
    fetched = await client.get(alice.task_url(task_id), headers=alice.headers)
    assert fetched.status_code == 200
    assert fetched.json()["data"]["title"] == "Buy milk"
