#!/usr/bin/env python3
"""Seed the benchmark database with COPY and write the tokens file the harness drives.

    seed.py --dsn postgresql://postgres@127.0.0.1:55433/tasks_bench --secret "$JWT_SECRET" \
        --out /tmp/tokens.json [--users 100] [--tasks 1000] [--seed 42] [--truncate]

The schema must exist already (`alembic upgrade head`): only rows are loaded, into every
column of `tasks` the API knows, with asyncpg's binary COPY. Connect as a superuser: the
table has FORCEd row-level security, which superusers bypass. Data is deterministic for a
given --seed (users, ids, titles, timestamps relative to the run): about 40% of tasks have a
description, priorities are 25/50/25 low/medium/high, half have a due date (some overdue),
0-3 tags each, and ~30% are completed (completed_at set, version 2); ids are UUIDv7 taken
from created_at, as the API makes them.

The tokens file (format in bench/README.md) is a superset of ../shared/bench's: its run.py
reads `users[].user_id/token/task_ids`, `paths`, `create_body` and `expect`; our harness
also reads the disjoint per-user task sets below, so that the write scenarios never trip
over each other:

    task_ids       50 tasks (any state), read by get-one
    update_ids     25 open tasks, PATCHed without If-Match
    ifmatch_ids    10 open tasks with their versions, PATCHed with If-Match
    completed_ids  50 completed tasks: `complete` on them is a no-op
    open_ids       the remaining open tasks: `complete` on them is a real transition
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import string
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

COLUMNS = [
    "id",
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
]

_WORDS = (
    "buy milk call mom write report fix bug review pull request book flight plan trip pay rent "
    "water plants clean desk read paper update docs prepare slides email team renew passport "
    "walk dog schedule dentist backup laptop file taxes order parts"
)
WORDS = _WORDS.split()
SENTENCES = [
    "Remember to check the notes from last week before starting.",
    "Ask Sam whether the numbers from the spreadsheet are final.",
    "This one keeps slipping; block an hour in the morning for it.",
    "Needs the new login details, which are in the shared vault.",
    "Low effort, but the deadline is firm.",
    "Bring the receipts and the signed form.",
    "Follow up by email if there is no answer by Friday.",
]
TAGS = [
    "home",
    "work",
    "errands",
    "urgent",
    "health",
    "finance",
    "family",
    "reading",
    "later",
    "project-x",
    "phone",
    "computer",
]
PRIORITIES = ["low", "medium", "medium", "high"]

SAMPLE_GET = 50
SAMPLE_UPDATE = 25
SAMPLE_IFMATCH = 10
SAMPLE_COMPLETED = 50

PATHS = {
    # The keys ../shared/bench/run.py reads:
    "get_one": "/api/{user_id}/tasks/{task_id}",
    "list": "/api/{user_id}/tasks?limit=100",
    "create": "/api/{user_id}/tasks",
    # Ours:
    "list_1000": "/api/{user_id}/tasks?limit=1000",
    "update": "/api/{user_id}/tasks/{task_id}",
    "complete": "/api/{user_id}/tasks/{task_id}/complete",
}
CREATE_BODY = '{"title": "wrk task {n}"}'
UPDATE_BODY = '{"title": "renamed by wrk {n}", "priority": "high"}'


def uuid7_at(ts: datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 (RFC 9562) for the millisecond of `ts`, random in the rest."""
    ms = int(ts.timestamp() * 1000) & ((1 << 48) - 1)
    rand_a = rng.getrandbits(12)
    rand_b = rng.getrandbits(62)
    value = (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


def user_id_for(rng: random.Random) -> str:
    # Better Auth ids are opaque 32-character strings, not UUIDs.
    return "".join(rng.choices(string.ascii_letters + string.digits, k=32))


def generate(users: int, tasks: int, seed: int) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    for _ in range(users):
        user_id = user_id_for(rng)
        records = []
        for j in range(tasks):
            created = now - timedelta(seconds=rng.randint(3600, 365 * 24 * 3600))
            title = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8))) + f" #{j}"
            description = (
                " ".join(rng.sample(SENTENCES, rng.randint(1, 3))) if rng.random() < 0.4 else None
            )
            due = now + timedelta(days=rng.uniform(-30, 60)) if rng.random() < 0.5 else None
            tags = rng.sample(TAGS, rng.choice([0, 0, 1, 1, 1, 2, 2, 3]))
            done = rng.random() < 0.3
            completed_at = (
                min(now, created + timedelta(seconds=rng.randint(60, 14 * 24 * 3600)))
                if done
                else None
            )
            updated = completed_at or created
            records.append(
                (
                    uuid7_at(created, rng),
                    user_id,
                    title,
                    description,
                    rng.choice(PRIORITIES),
                    due,
                    tags,
                    done,
                    completed_at,
                    created,
                    updated,
                    2 if done else 1,
                )
            )
        yield user_id, records


def user_entry(
    user_id: str, token: str, tasks: list[tuple[str, bool, int]], rng: random.Random
) -> dict[str, Any]:
    """Split one user's tasks, given as (id, is_completed, version), into the harness's sets."""
    ids = [t[0] for t in tasks]
    open_tasks = [t for t in tasks if not t[1]]
    completed = [t[0] for t in tasks if t[1]]
    rng.shuffle(open_tasks)
    update = open_tasks[:SAMPLE_UPDATE]
    ifmatch = open_tasks[SAMPLE_UPDATE : SAMPLE_UPDATE + SAMPLE_IFMATCH]
    rest = open_tasks[SAMPLE_UPDATE + SAMPLE_IFMATCH :]
    return {
        "user_id": user_id,
        "token": token,
        "task_ids": rng.sample(ids, min(SAMPLE_GET, len(ids))),
        "update_ids": [t[0] for t in update],
        "ifmatch_ids": [[t[0], t[2]] for t in ifmatch],
        "completed_ids": rng.sample(completed, min(SAMPLE_COMPLETED, len(completed))),
        "open_ids": [t[0] for t in rest],
    }


def tokens_document(users_out: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": meta,
        "paths": PATHS,
        "create_body": CREATE_BODY,
        "update_body": UPDATE_BODY,
        "expect": {"get_one": 200, "list": 200, "create": 201},
        "users": users_out,
    }


def mint(user_id: str, secret: str, exp_days: float) -> str:
    import jwt

    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + int(exp_days * 86400)}
    return jwt.encode(claims, secret, algorithm="HS256")


async def seed(args: argparse.Namespace) -> int:
    import asyncpg

    t0 = time.perf_counter()
    conn = await asyncpg.connect(args.dsn)
    try:
        existing = await conn.fetchval("SELECT count(*) FROM tasks")
        if existing:
            if not args.truncate:
                print(f"seed.py: tasks has {existing} rows; pass --truncate", file=sys.stderr)
                return 2
            await conn.execute("TRUNCATE tasks")
        pick = random.Random(args.seed + 1)
        users_out = []
        batch: list[tuple[Any, ...]] = []
        total = 0
        for user_id, records in generate(args.users, args.tasks, args.seed):
            batch.extend(records)
            total += len(records)
            summary = [(str(r[0]), r[7], r[11]) for r in records]
            users_out.append(
                user_entry(user_id, mint(user_id, args.secret, args.exp_days), summary, pick)
            )
            if len(batch) >= 50_000:
                await conn.copy_records_to_table("tasks", records=batch, columns=COLUMNS)
                batch = []
        if batch:
            await conn.copy_records_to_table("tasks", records=batch, columns=COLUMNS)
        t_copy = time.perf_counter() - t0
        await conn.execute("VACUUM (ANALYZE) tasks")
    finally:
        await conn.close()
    meta = {
        "generated_at": datetime.now(UTC).isoformat(),
        "users": args.users,
        "tasks_per_user": args.tasks,
        "rows": total,
        "seed": args.seed,
        "algorithm": "HS256",
        "exp_days": args.exp_days,
        "source": "bench/seed.py",
    }
    await asyncio.to_thread(Path(args.out).write_text, json.dumps(tokens_document(users_out, meta)))
    print(
        f"seeded {total:,} tasks for {args.users} users: COPY {t_copy:.1f} s, "
        f"total with VACUUM ANALYZE {time.perf_counter() - t0:.1f} s -> {args.out}"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dsn", required=True, help="a superuser's postgresql:// URL")
    ap.add_argument("--secret", required=True, help="the API's JWT_SECRET (HS256)")
    ap.add_argument("--out", required=True, help="tokens JSON to write")
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--tasks", type=int, default=1000, help="tasks per user")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--exp-days", type=float, default=7.0, help="token lifetime")
    ap.add_argument("--truncate", action="store_true", help="empty tasks first")
    return asyncio.run(seed(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
