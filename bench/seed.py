#!/usr/bin/env python3
"""Seed the benchmark database and write the tokens file the harness drives.

    seed.py --dsn postgresql://postgres@127.0.0.1:55433/tasks_bench --secret "$JWT_SECRET" \
        --out /tmp/tokens.json [--users 100] [--tasks 1000] [--seed 42] [--truncate]

The schema must exist already (`alembic upgrade head`). Connect as a superuser: the table
has FORCEd row-level security, which superusers bypass, and the seed drops the table's
indexes and write triggers for the load. The rows are generated in the server
(`select_sql`) and streamed from one connection to another with COPY, into `tasks`
truncated in the same transaction (COPY ... FREEZE: frozen rows, visibility map set, no
WAL under wal_level=minimal); then the indexes are built again (--workers at a time), the
bookkeeping the triggers would have kept is filled with one INSERT ... SELECT ... GROUP BY
each (task_sync's counters and sync position, task_tag_counts, task_due_counts) alongside,
the triggers are created again, and VACUUM (FREEZE, ANALYZE) gathers the statistics.
10 million rows take two to three minutes on this VM (two CPUs); the seed's backends are
allowed every CPU while it runs (the cluster is pinned to one). A seed that fails leaves
`tasks` without its indexes and triggers: seed a throw-away database (run.py makes one).
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
# What select_sql() generates, in its order: the columns above and migration 0004/0005's.
LOAD_COLUMNS = [*COLUMNS, "position", "sync_seq", "title_key"]

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


def select_sql(tasks: int, seed: int) -> str:
    """One SELECT of every task of the users in $1 (text[]), generated in the server, in the
    column order of LOAD_COLUMNS and in the order of $1, then j.

    $2 is the run's "now"; rows are numbered across users (the hashes and sync positions
    differ). Task j of a user (0 = newest) was created about j * step seconds before it, so
    j is the manual order too: position = 'd' and j in four base-62 digits (the keys
    migration 0004's backfill gives, newest first). The rest comes from two hashes of the
    row number: ~40% with a description, priorities 25/50/25, half with a due date (some
    overdue), 0-3 distinct tags, ~30% completed (completed_at set, version 2). The id is a
    UUIDv7 of created_at.

    Each level ends in OFFSET 0: without it the planner flattens the subqueries and copies
    an expression into every place that uses it (the two hashes were computed ~25 times a
    row, `created` five times: ~6.6 µs of CPU a row, now ~3.5). What depends on j alone
    (position, the title's suffix, the creation time but for the row's jitter) is computed
    once per j, and LATERAL keeps the users the outer loop. The title key is the title:
    lower() of lower-case words, ' #' and digits (asserted below) is the title. The rows are
    the ones the INSERT ... SELECT of 3112fb9 generated, in (user, position) order.
    """
    assert all(w == w.lower() and w.isascii() for w in WORDS), "title_key = title needs these"
    step = max(1, 365 * 24 * 3600 // tasks)
    b62 = "'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'"
    position = "'d' || " + " || ".join(
        f"substr({b62}, (j / {62**p} % 62)::int + 1, 1)" for p in (3, 2, 1, 0)
    )
    w, s, t = (f"({_pick(x)})" for x in (WORDS, SENTENCES, TAGS))
    n_w, n_s, n_t = len(WORDS), len(SENTENCES), len(TAGS)
    title = " || ' ' || ".join(f"{w}[1 + {_bits('r1', b, n_w)}]" for b in (0, 16, 32))
    fourth = f"{w}[1 + {_bits('r2', 32, n_w)}]"
    title += f" || CASE WHEN {_bits('r2', 48, 2)} = 0 THEN ' ' || {fourth} ELSE '' END || suffix"
    a, d = _bits("r2", 0, n_t), f"(1 + {_bits('r2', 8, 5)})"
    tag_list = (
        f"ARRAY[{t}[1 + {a}], "
        + ", ".join(f"{t}[1 + ({a} + {k}{d}) % {n_t}]" for k in ("", "2 * "))
        + "]"
    )
    g = f"u.n * {tasks}::bigint + j.j"
    # Built from this file's constants only.
    return f"""
    WITH j AS MATERIALIZED (
        SELECT j, {position} AS position, ' #' || j AS suffix,
               $2::timestamptz - make_interval(secs => 3600 + j * {step}) AS created_j,
               extract(epoch FROM $2::timestamptz)::bigint - 3600 - j * {step} AS epoch_j
        FROM generate_series(0, {tasks - 1}) AS j)
    SELECT (lpad(to_hex((((epoch_j - x) * 1000) << 16) | 28672 | (r2 >> 48 & 4095)), 16, '0')
            || to_hex((r1 & 4611686018427387903) | (-9223372036854775808)))::uuid,
           user_id, title, description, priority, due_at, tags, done, completed_at, created,
           coalesce(completed_at, created), CASE WHEN done THEN 2 ELSE 1 END, position,
           g + 1, title
    FROM (
        SELECT *, CASE WHEN done THEN least($2::timestamptz, created + make_interval(
                      secs => 60 + {_bits("r2", 16, 65535)} * 18)) END AS completed_at
        FROM (
            SELECT user_id, g, r1, r2, x, epoch_j, position,
                   created_j - make_interval(secs => x) AS created,
                   {title} AS title,
                   CASE WHEN {_bits("r1", 44, 10)} < 4
                        THEN {s}[1 + {_bits("r2", 24, n_s)}] || CASE WHEN {_bits("r2", 40, 2)} = 0
                             THEN ' ' || {s}[1 + {_bits("r2", 28, n_s)}] ELSE '' END END
                       AS description,
                   (ARRAY['low','medium','medium','high']::task_priority[])
                       [1 + {_bits("r1", 40, 4)}] AS priority,
                   CASE WHEN {_bits("r1", 36, 2)} = 0
                        THEN $2::timestamptz
                             + make_interval(secs => {_bits("r2", 12, 65535)} * 120 - 30 * 86400)
                   END AS due_at,
                   ({tag_list})[1:(ARRAY[0,0,1,1,1,2,2,3])[1 + {_bits("r2", 56, 8)}]] AS tags,
                   {_bits("r1", 52, 10)} < 3 AS done
            FROM (
                SELECT *, {_bits("r1", 48, 65535)} % {step} AS x
                FROM unnest($1::text[]) WITH ORDINALITY AS u(user_id, n),
                     LATERAL (SELECT j.*, {g} AS g, hashint8extended({g}, {seed}) AS r1,
                                     hashint8extended({g}, {seed + 1}) AS r2
                              FROM j OFFSET 0) AS h
                OFFSET 0
            ) AS base OFFSET 0
        ) AS b OFFSET 0
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
    # Every index sort in memory (the largest takes 1.6 GB at 10 million rows; two run at a
    # time), and the GROUP BYs of the counts too (~1 million (user, day) groups). Each scan
    # from the first page: a synchronized scan joins one under way in the middle of the
    # table, and the heap's presorted order reaches the sort rotated (the created, position
    # and sync_seq builds took 2-3 times the CPU). Synchronous commits (the cluster's default
    # is off): VACUUM may not set the visibility map of rows whose commit is not on disk yet.
    await conn.execute(
        "SET maintenance_work_mem = '2GB'; SET max_parallel_maintenance_workers = 0;"
        "SET work_mem = '512MB'; SET synchronize_seqscans = off; SET synchronous_commit = on"
    )
    return conn


async def _in_parallel(dsn: str, jobs: list[str], workers: int) -> None:
    """Run the statements of `jobs` on `workers` connections, each taking the next in line."""
    queue = list(reversed(jobs))

    async def worker() -> None:
        conn = await _connect(dsn)
        try:
            while queue:
                job = queue.pop()
                t = time.perf_counter()
                await conn.execute(job)
                if os.environ.get("SEED_TRACE"):
                    print(f"  {time.perf_counter() - t:6.1f} s  {job[:90]}", flush=True)
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(workers)))


async def _copy_load(dsn: str, users: list[str], now: datetime, tasks: int, seed: int) -> None:
    """Generate the rows on one connection (COPY (select_sql) TO STDOUT, binary) and stream
    them into `tasks` on another (COPY FROM STDIN ... FREEZE), so that both CPUs work: the
    loading side, mostly the CHECK constraints, costs about twice the generating side.

    FREEZE needs the table truncated in the same transaction: the rows are written frozen,
    the visibility map is set as the pages fill, and under wal_level=minimal nothing of the
    heap goes to WAL (the file is synced at commit). One stream in the users' order leaves
    the heap in the order of the created, position and sync_seq indexes, whose sorts then
    find presorted input."""
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)
    source_conn = await _connect(dsn)
    target_conn = await _connect(dsn)

    async def produce() -> None:
        await source_conn.copy_from_query(
            select_sql(tasks, seed), users, now, output=chunks.put, format="binary"
        )
        await chunks.put(None)

    async def source() -> Any:
        while (chunk := await chunks.get()) is not None:
            yield chunk

    async def load() -> None:
        async with target_conn.transaction():
            await target_conn.execute("TRUNCATE tasks")
            await target_conn.copy_to_table(
                "tasks", source=source(), columns=LOAD_COLUMNS, format="binary", freeze=True
            )

    try:
        # A failure on either side cancels the other (no side waits on the queue forever).
        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            group.create_task(load())
    finally:
        await source_conn.close()
        await target_conn.close()


async def _drop_indexes(conn: Any) -> tuple[list[tuple[int, str]], list[str]]:
    """Drop the indexes of `tasks`; return the statements that build them again, each with a
    rough cost (for the order of the builds), and those that attach the constraints that own
    an index (the primary key) to its rebuilt index afterwards. ALTER TABLE ... ADD PRIMARY
    KEY would build its index under an ACCESS EXCLUSIVE lock: every other build and count
    waits for it; CREATE UNIQUE INDEX takes a SHARE lock, which they share, and attaching
    the index is instant."""
    indexes = await conn.fetch(
        """
        SELECT i.relname AS name, pg_get_indexdef(i.oid) AS definition, c.conname,
               c.contype::text AS contype, pg_get_constraintdef(c.oid) AS constraint_definition,
               x.indnatts * CASE WHEN x.indpred IS NULL THEN 2 ELSE 1 END AS cost
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
        WHERE x.indrelid = 'tasks'::regclass
        """
    )
    builds: list[tuple[int, str]] = []
    attach: list[str] = []
    for index in indexes:
        if not index["conname"]:
            await conn.execute(f'DROP INDEX "{index["name"]}"')
            builds.append((index["cost"], index["definition"]))
            continue
        await conn.execute(f'ALTER TABLE tasks DROP CONSTRAINT "{index["conname"]}"')
        add = f'ALTER TABLE tasks ADD CONSTRAINT "{index["conname"]}" '
        if index["contype"] in ("p", "u") and index["conname"] == index["name"]:
            kind = "PRIMARY KEY" if index["contype"] == "p" else "UNIQUE"
            builds.append((index["cost"], index["definition"]))
            attach.append(f'{add}{kind} USING INDEX "{index["name"]}"')
        else:
            builds.append((index["cost"], add + index["constraint_definition"]))
    return builds, attach


def count_statements() -> list[str]:
    """What the write triggers would have kept, from the rows: task_sync's counters and sync
    position, task_tag_counts, task_due_counts (one INSERT ... SELECT ... GROUP BY each)."""
    counters = ", ".join(
        f"count(*) FILTER (WHERE {'' if done else 'NOT '}is_completed AND priority = '{p}')"
        for done in (False, True)
        for p in ("low", "medium", "high")
    )
    return [
        "INSERT INTO task_tag_counts (user_id, tag, open, done) SELECT user_id, tag, "
        "count(*) FILTER (WHERE NOT is_completed), count(*) FILTER (WHERE is_completed) "
        "FROM tasks, unnest(tags) AS tag GROUP BY 1, 2",
        "INSERT INTO task_due_counts (user_id, due_day, open) SELECT user_id, "
        "(due_at AT TIME ZONE 'UTC')::date, count(*) FROM tasks "
        "WHERE NOT is_completed AND due_at IS NOT NULL GROUP BY 1, 2",
        "INSERT INTO task_sync (user_id, seq, open_low, open_medium, open_high, "  # noqa: S608
        f"done_low, done_medium, done_high) SELECT user_id, max(sync_seq), {counters} "
        "FROM tasks GROUP BY user_id",
    ]


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
        # each btree).
        builds, attach = await _drop_indexes(conn)
        # The write triggers are dropped, not disabled, for the load: the seed fills what
        # they maintain. A disabled trigger still shapes the statement: COPY inserts row by
        # row when the table has BEFORE ROW triggers (no multi-insert, no visibility map),
        # and every row was kept for the transition table of the AFTER triggers (2.4 GB of
        # temporary files at 10 million rows).
        triggers = await conn.fetch(
            "SELECT tgname, pg_get_triggerdef(oid) AS definition FROM pg_trigger "
            "WHERE tgrelid = 'tasks'::regclass AND NOT tgisinternal ORDER BY tgname"
        )
        for trigger in triggers:
            await conn.execute(f'DROP TRIGGER "{trigger["tgname"]}" ON tasks')
        # Fewer checkpoints during the seed; reset at the end, so the measurements run with
        # the defaults.
        await conn.execute("ALTER SYSTEM SET max_wal_size = '16GB'")
        await conn.execute("SELECT pg_reload_conf()")
        # No autovacuum/autoanalyze while the indexes are built: its lock would queue them.
        await conn.execute("ALTER TABLE tasks SET (autovacuum_enabled = false)")
        t = time.perf_counter()
        await _copy_load(args.dsn, users, now, args.tasks, args.seed)
        timings["insert"] = time.perf_counter() - t
        t = time.perf_counter()
        # Longest first, so that the last job on one connection does not leave the other
        # idle for long (the cost is a guess: columns, halved for a partial index); the
        # counts are mid-sized.
        builds.sort(key=lambda build: -build[0])
        statements = [sql for _, sql in builds]
        jobs = [*statements[:4], *count_statements(), *statements[4:]]
        await _in_parallel(args.dsn, jobs, args.workers)
        for sql in attach:
            await conn.execute(sql)
        for trigger in triggers:
            await conn.execute(trigger["definition"])
        await conn.execute(
            "SELECT setval('task_change_seq', (SELECT max(seq) FROM task_sync), true)"
        )
        timings["indexes"] = time.perf_counter() - t
        t = time.perf_counter()
        # The planner's statistics, and the visibility map (index-only scans) of the count
        # tables; COPY FREEZE has set the map of `tasks`, so its VACUUM only checks the map.
        for table in ("tasks", "task_sync", "task_tag_counts", "task_due_counts"):
            await conn.execute(f"VACUUM (FREEZE, ANALYZE) {table}")
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
    ap.add_argument("--workers", type=int, default=2, help="connections that build indexes")
    return asyncio.run(seed(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
