#!/usr/bin/env python3
"""Seed the benchmark database and write the tokens file the harness drives.

    seed.py --dsn postgresql://postgres@127.0.0.1:55433/tasks_bench --secret "$JWT_SECRET" \
        --out /tmp/tokens.json [--users 100] [--tasks 1000] [--seed 42] [--truncate]

The schema must exist already (`alembic upgrade head`). Connect as a superuser: the table
has FORCEd row-level security, which superusers bypass, and the seed turns the table's
triggers off for the load. The rows are generated in the server (`insert_sql`: one
INSERT ... SELECT per group of users, on --workers connections) into `tasks` without its
indexes; then the indexes are built again (two at a time), the bookkeeping the triggers
would have kept is filled with one INSERT ... SELECT ... GROUP BY each (task_sync's
counters and sync position, task_tag_counts, task_due_counts), and VACUUM (FREEZE,
ANALYZE) sets the visibility map. 10 million rows take about a minute or two on this VM;
the seed's backends are allowed every CPU while it runs (the cluster is pinned to one).
Data is deterministic for a given --seed but for the random bits of the ids (users, titles,
timestamps relative to the run). Each user's tasks have positions in created order, newest
first, like migration 0004's backfill.

The tokens file (format in bench/README.md) is a superset of ../shared/bench's: its run.py
reads `users[].user_id/token/task_ids`, `paths`, `create_body` and `expect`; our harness
also reads the disjoint per-user task sets below, so that the write scenarios never trip
over each other. They are drawn from a sample of each user's newest tasks, at most
SAMPLE_BUDGET ids in all (20 per user with 10,000 users, all of them with 100 x 1,000):

    task_ids       up to 50 tasks (any state), read by get-one
    update_ids     up to 25 open tasks, PATCHed without If-Match
    ifmatch_ids    up to 10 open tasks with their versions, PATCHed with If-Match
    completed_ids  up to 50 completed tasks: `complete` on them is a no-op
    open_ids       the remaining open tasks: `complete` on them is a real transition
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import string
import subprocess
import sys
import time
from datetime import UTC, datetime
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
    "list_100_pending": "/api/{user_id}/tasks?limit=100&status=pending",
    "stats": "/api/{user_id}/stats",
    "list_q": "/api/{user_id}/tasks?limit=100&q={value}",
    "list_tag": "/api/{user_id}/tasks?limit=100&tag={value}",
}
# q= values of the list_q scenario: words of the titles, from common to rare.
Q_WORDS = ["report", "dentist", "passport", "lap"]
CREATE_BODY = '{"title": "wrk task {n}"}'
UPDATE_BODY = '{"title": "renamed by wrk {n}", "priority": "high"}'


def user_ids(users: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    # Better Auth ids are opaque 32-character strings, not UUIDs.
    return ["".join(rng.choices(string.ascii_letters + string.digits, k=32)) for _ in range(users)]


def _pick(words: list[str]) -> str:
    return "ARRAY[" + ",".join(f"'{w}'" for w in words) + "]"


def _bits(r: str, shift: int, mod: int) -> str:
    """A number in [0, mod) from 16 bits of the row's random bigint `r`."""
    return f"((({r} >> {shift}) & 65535) % {mod})"


def base62(i: int, width: int = 4) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(width):
        i, d = divmod(i, 62)
        out = digits[d] + out
    return out


def insert_sql(tasks: int, seed: int) -> str:
    """One INSERT ... SELECT of every task of the users in $1 (text[]), generated in the server.

    $2 is the run's "now", $3 the number of users before $1's first (rows are numbered
    across users: the hashes and sync positions differ). Task j of a user (0 = newest) was
    created about j * step seconds before it, so j is the manual order too: position = 'd'
    and j in four base-62 digits (the keys migration 0004's backfill gives, newest first).
    The rest comes from two hashes of the row number: ~40% with a description, priorities
    25/50/25, half with a due date (some overdue), 0-3 distinct tags, ~30% completed
    (completed_at set, version 2). The id is a UUIDv7 of created_at.
    """
    step = max(1, 365 * 24 * 3600 // tasks)
    b62 = "'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'"
    position = "'d' || " + " || ".join(
        f"substr({b62}, (j / {62**p} % 62)::int + 1, 1)" for p in (3, 2, 1, 0)
    )
    words, sentences, tags = _pick(WORDS), _pick(SENTENCES), _pick(TAGS)
    n_w, n_s, n_t = len(WORDS), len(SENTENCES), len(TAGS)
    title = " || ' ' || ".join(f"w[1 + {_bits('r1', s, n_w)}]" for s in (0, 16, 32))
    fourth = f"w[1 + {_bits('r2', 32, n_w)}]"
    title += f" || CASE WHEN {_bits('r2', 48, 2)} = 0 THEN ' ' || {fourth} ELSE '' END"
    title += " || ' #' || j"
    a, d = _bits("r2", 0, n_t), f"(1 + {_bits('r2', 8, 5)})"
    tag_list = f"ARRAY[t[1 + {a}], t[1 + ({a} + {d}) % {n_t}], t[1 + ({a} + 2 * {d}) % {n_t}]]"
    # Built from this file's constants only.
    return f"""
    INSERT INTO tasks (id, user_id, title, description, priority, due_at, tags, is_completed,
                       completed_at, created_at, updated_at, version, position, sync_seq,
                       title_key)
    SELECT (lpad(to_hex(((extract(epoch FROM created) * 1000)::bigint << 16) | 28672
                         | (r2 >> 48 & 4095)), 16, '0')
            || to_hex((r1 & 4611686018427387903) | (-9223372036854775808)))::uuid,
           user_id, title, description, priority, due_at, tags, done,
           completed_at, created, coalesce(completed_at, created),
           CASE WHEN done THEN 2 ELSE 1 END, position, g + 1, lower(title)
    FROM (
        SELECT *, CASE WHEN done THEN least($2::timestamptz, created + make_interval(
                      secs => 60 + {_bits("r2", 16, 65535)} * 18)) END AS completed_at
        FROM (
            SELECT u.user_id, j, h.r1, h.r2, u.n * {tasks}::bigint + j AS g,
                   $2::timestamptz - make_interval(secs => 3600 + j * {step}
                                      + {_bits("r1", 48, 65535)} % {step}) AS created,
                   {title} AS title,
                   CASE WHEN {_bits("r1", 44, 10)} < 4
                        THEN s[1 + {_bits("r2", 24, n_s)}] || CASE WHEN {_bits("r2", 40, 2)} = 0
                             THEN ' ' || s[1 + {_bits("r2", 28, n_s)}] ELSE '' END END
                       AS description,
                   (ARRAY['low','medium','medium','high'])[1 + {_bits("r1", 40, 4)}]::task_priority
                       AS priority,
                   CASE WHEN {_bits("r1", 36, 2)} = 0
                        THEN $2::timestamptz
                             + make_interval(secs => {_bits("r2", 12, 65535)} * 120 - 30 * 86400)
                   END AS due_at,
                   ({tag_list})[1:(ARRAY[0,0,1,1,1,2,2,3])[1 + {_bits("r2", 56, 8)}]] AS tags,
                   {_bits("r1", 52, 10)} < 3 AS done,
                   {position} AS position
            FROM unnest($1::text[]) WITH ORDINALITY AS o(user_id, k),
                 LATERAL (SELECT o.user_id, o.k + $3 AS n) AS u,
                 generate_series(0, {tasks - 1}) AS j,
                 LATERAL (SELECT {words} AS w, {sentences} AS s, {tags} AS t,
                                 hashint8extended(u.n * {tasks}::bigint + j, {seed}) AS r1,
                                 hashint8extended(u.n * {tasks}::bigint + j, {seed + 1}) AS r2) AS h
        ) AS base
    ) AS row
    """  # noqa: S608


def user_entry(
    user_id: str,
    token: str,
    tasks: list[tuple[str, bool, int]],
    rng: random.Random,
    users: int = 100,
) -> dict[str, Any]:
    """Split one user's sampled tasks, (id, is_completed, version), into the harness's sets.

    The sets shrink with a small sample (many users): what matters is the total across users.
    """
    ids = [t[0] for t in tasks]
    open_tasks = [t for t in tasks if not t[1]]
    completed = [t[0] for t in tasks if t[1]]
    rng.shuffle(open_tasks)
    # With few users, more tasks each: 64 connections need ~1,000 If-Match slots in all.
    n_update = min(max(SAMPLE_UPDATE, 2500 // users), len(open_tasks) // 4)
    n_ifmatch = min(max(SAMPLE_IFMATCH, 1000 // users), max(1, len(open_tasks) // 8))
    update = open_tasks[:n_update]
    ifmatch = open_tasks[n_update : n_update + n_ifmatch]
    rest = open_tasks[n_update + n_ifmatch :]
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


SAMPLE_BUDGET = 200_000  # task ids in the tokens file, across users


async def _pin_to_all_cpus(conn: Any) -> None:
    """Let this connection's backend use every CPU while seeding (the cluster is pinned to one
    for the measurements; new backends inherit that). Needs root or the cluster's user."""
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    cpus = f"0-{(os.cpu_count() or 1) - 1}"
    command = ["taskset", "-pc", cpus, str(pid)]
    await asyncio.to_thread(subprocess.run, command, capture_output=True, check=False)


async def _connect(dsn: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await _pin_to_all_cpus(conn)
    await conn.execute(
        "SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 0;"
        "SET synchronous_commit = off"
    )
    return conn


async def _in_parallel(dsn: str, jobs: list[tuple[str, tuple[Any, ...]]], workers: int) -> None:
    """Run the statements of `jobs` on `workers` connections, each taking the next in line."""
    queue = list(reversed(jobs))

    async def worker() -> None:
        conn = await _connect(dsn)
        try:
            while queue:
                sql, args = queue.pop()
                await conn.execute(sql, *args)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(workers)))


async def seed(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    # In the database's order (code points under C.UTF-8): the heap then comes out in
    # (user_id, j) order, which is already the order of the created, position and sync_seq
    # indexes, and their sorts find presorted input. A user's tasks are contiguous.
    users = sorted(user_ids(args.users, args.seed))
    now = datetime.now(UTC).replace(microsecond=0)
    conn = await _connect(args.dsn)
    timings: dict[str, float] = {}
    try:
        existing = await conn.fetchval("SELECT count(*) FROM tasks")
        if existing and not args.truncate:
            print(f"seed.py: tasks has {existing} rows; pass --truncate", file=sys.stderr)
            return 2
        await conn.execute(
            "TRUNCATE tasks, task_sync, task_tombstones, task_tag_counts, task_due_counts"
        )
        # Indexes are built after the load (one sort each instead of 10 million inserts into
        # each btree), and the write triggers are off: the seed fills what they maintain.
        indexes = await conn.fetch(
            """
            SELECT i.relname AS name, pg_get_indexdef(i.oid) AS definition, c.conname,
                   pg_get_constraintdef(c.oid) AS constraint_definition,
                   pg_relation_size(i.oid) AS size
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
            LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
            WHERE x.indrelid = 'tasks'::regclass
            """
        )
        rebuild = []
        for index in indexes:
            if index["conname"]:
                await conn.execute(f'ALTER TABLE tasks DROP CONSTRAINT "{index["conname"]}"')
                rebuild.append(
                    f'ALTER TABLE tasks ADD CONSTRAINT "{index["conname"]}" '
                    f"{index['constraint_definition']}"
                )
            else:
                await conn.execute(f'DROP INDEX "{index["name"]}"')
                rebuild.append(index["definition"])
        # Fewer checkpoints during the load (26 "too frequent" at 10 million rows with the
        # default 1 GB); reset at the end, so the measurements run with the defaults.
        await conn.execute("ALTER SYSTEM SET max_wal_size = '16GB'")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.execute("ALTER TABLE tasks DISABLE TRIGGER USER")
        # No autovacuum/autoanalyze of the half-loaded table: its snapshot would keep the
        # final VACUUM from marking the newest pages all-visible.
        await conn.execute("ALTER TABLE tasks SET (autovacuum_enabled = false)")
        t = time.perf_counter()
        sql = insert_sql(args.tasks, args.seed)
        chunk = max(1, -(-len(users) // (2 * args.workers)))
        parts = [(sql, (users[i : i + chunk], now, i)) for i in range(0, len(users), chunk)]
        await _in_parallel(args.dsn, parts, args.workers)
        timings["insert"] = time.perf_counter() - t
        t = time.perf_counter()
        counters = ", ".join(
            f"count(*) FILTER (WHERE {'' if done else 'NOT '}is_completed AND priority = '{p}')"
            for done in (False, True)
            for p in ("low", "medium", "high")
        )
        sync = (
            "INSERT INTO task_sync (user_id, seq, open_low, open_medium, open_high, "  # noqa: S608
            f"done_low, done_medium, done_high) SELECT user_id, max(sync_seq), {counters} "
            "FROM tasks GROUP BY user_id"
        )
        tag_counts = (
            "INSERT INTO task_tag_counts (user_id, tag, open, done) SELECT user_id, tag, "
            "count(*) FILTER (WHERE NOT is_completed), count(*) FILTER (WHERE is_completed) "
            "FROM tasks, unnest(tags) AS tag GROUP BY 1, 2"
        )
        due_counts = (
            "INSERT INTO task_due_counts (user_id, due_day, open) SELECT user_id, "
            "(due_at AT TIME ZONE 'UTC')::date, count(*) FROM tasks "
            "WHERE NOT is_completed AND due_at IS NOT NULL GROUP BY 1, 2"
        )
        jobs = [sync, tag_counts, due_counts, *rebuild]
        await _in_parallel(args.dsn, [(sql, ()) for sql in jobs], args.workers)
        await conn.execute(
            "SELECT setval('task_change_seq', (SELECT max(seq) FROM task_sync), true)"
        )
        await conn.execute("ALTER TABLE tasks ENABLE TRIGGER USER")
        timings["indexes"] = time.perf_counter() - t
        t = time.perf_counter()
        # The visibility map (index-only scans) and the planner's statistics.
        for table in ("tasks", "task_sync", "task_tag_counts", "task_due_counts"):
            await conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
        # Pages of the last inserts may not be all-visible yet at the first pass (seen on
        # 16% of them); the second visits only those.
        await conn.execute("VACUUM tasks")
        await conn.execute("ALTER TABLE tasks RESET (autovacuum_enabled)")
        await conn.execute("ALTER SYSTEM RESET max_wal_size")
        await conn.execute("SELECT pg_reload_conf()")
        timings["vacuum"] = time.perf_counter() - t
        per_user = min(args.tasks, max(20, SAMPLE_BUDGET // max(1, args.users)))
        rows = await conn.fetch(
            """
            SELECT u.user_id, t.id::text AS id, t.is_completed, t.version
            FROM unnest($1::text[]) AS u(user_id),
                 LATERAL (SELECT id, is_completed, version FROM tasks
                          WHERE tasks.user_id = u.user_id ORDER BY position LIMIT $2) AS t
            """,
            users,
            per_user,
        )
        total = await conn.fetchval(
            "SELECT sum(open_low + open_medium + open_high + done_low + done_medium + done_high)"
            " FROM task_sync"
        )
        size = await conn.fetchval("SELECT pg_size_pretty(pg_total_relation_size('tasks'))")
    finally:
        await conn.close()
    sampled: dict[str, list[tuple[str, bool, int]]] = {u: [] for u in users}
    for row in rows:
        sampled[row["user_id"]].append((row["id"], row["is_completed"], row["version"]))
    pick = random.Random(args.seed + 1)
    users_out = [
        user_entry(u, mint(u, args.secret, args.exp_days), sampled[u], pick, len(users))
        for u in users
    ]
    meta = {
        "generated_at": datetime.now(UTC).isoformat(),
        "users": args.users,
        "tasks_per_user": args.tasks,
        "rows": int(total or 0),
        "seed": args.seed,
        "algorithm": "HS256",
        "exp_days": args.exp_days,
        "source": "bench/seed.py",
        "size": size,
    }
    await asyncio.to_thread(Path(args.out).write_text, json.dumps(tokens_document(users_out, meta)))
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
    print(
        f"seeded {int(total or 0):,} tasks for {args.users} users in "
        f"{time.perf_counter() - t0:.1f} s ({steps}); tasks with its indexes: {size} -> {args.out}"
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
    ap.add_argument("--workers", type=int, default=2, help="connections that load and index")
    return asyncio.run(seed(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
