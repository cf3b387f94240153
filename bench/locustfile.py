"""A user journey for Locust, over the users of a bench tokens file (bench/seed.py's format).

Throughput is measured with wrk (`make bench`); this is for watching the API under a
realistic mix with Locust's UI or its CSV output, e.g. against a local `BENCH_KEEP=1` run:

    TOKENS=/tmp/tasks-bench-XXXX/tokens.json uvx --from locust locust -f bench/locustfile.py \\
        --host http://127.0.0.1:18000 --headless -u 100 -r 20 -t 60s

Each simulated user is one of the file's users (round robin), with its token. It lists
its tasks, opens some, creates a task, renames it with If-Match (the ETag it was given),
completes it, and now and then completes it again (a no-op) or reads its stats.
"""

import itertools
import json
import os
import random
from typing import Any

from locust import HttpUser, between, task

with open(os.environ.get("TOKENS", "tokens.json")) as _f:
    _SPEC: dict[str, Any] = json.load(_f)
_USERS = itertools.cycle(_SPEC["users"])


class TaskOwner(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        me = next(_USERS)
        self.user_id: str = me["user_id"]
        self.task_ids: list[str] = list(me["task_ids"])
        self.client.headers["Authorization"] = f"Bearer {me['token']}"
        self.prefix = f"/api/{self.user_id}/tasks"
        self.mine: list[tuple[str, str]] = []  # (id, etag) of tasks this session created

    @task(5)
    def list_tasks(self) -> None:
        self.client.get(f"{self.prefix}?limit=100", name="/api/[user]/tasks?limit=100")

    @task(8)
    def get_task(self) -> None:
        self.client.get(
            f"{self.prefix}/{random.choice(self.task_ids)}", name="/api/[user]/tasks/[id]"
        )

    @task(2)
    def create_rename_complete(self) -> None:
        r = self.client.post(
            self.prefix,
            json={"title": "locust task", "tags": ["load"]},
            name="/api/[user]/tasks (create)",
        )
        if r.status_code != 201:
            return
        task_id = r.json()["data"]["id"]
        r = self.client.patch(
            f"{self.prefix}/{task_id}",
            json={"title": "locust task, renamed"},
            headers={"If-Match": r.headers["ETag"]},
            name="/api/[user]/tasks/[id] (If-Match)",
        )
        if r.status_code == 200:
            self.mine.append((task_id, r.headers["ETag"]))
        self.client.patch(
            f"{self.prefix}/{task_id}/complete", name="/api/[user]/tasks/[id]/complete"
        )

    @task(1)
    def complete_again(self) -> None:
        if self.mine:
            task_id, _ = random.choice(self.mine)
            self.client.patch(
                f"{self.prefix}/{task_id}/complete", name="/api/[user]/tasks/[id]/complete (no-op)"
            )

    @task(1)
    def stats(self) -> None:
        self.client.get(f"/api/{self.user_id}/stats", name="/api/[user]/stats")
