#!/usr/bin/env python3
"""Seed the benchmark database and write the tokens file the harness drives.

    seed.py --dsn postgresql://postgres@127.0.0.1:55433/tasks_bench --secret "$JWT_SECRET" \
        --out /tmp/tokens.json [--users 100] [--tasks 1000] [--seed 42] [--truncate]

The schema must exist already (`alembic upgrade head`). Connect as a superuser: the table
has FORCEd row-level security, which superusers bypass, and the seed drops the table's
indexes and write triggers for the load. The rows are generated in the server
(`select_sql`) and streamed from one backend to another with COPY (through a named pipe on
the server when it can open one, else through this process), into `tasks` truncated in
the same transaction (COPY ... FREEZE: frozen rows, visibility map set, no
WAL under wal_level=minimal); then the indexes are built again (--workers at a time), the
bookkeeping the triggers would have kept is filled with one INSERT ... SELECT ... GROUP BY
each (task_sync's counters and sync position, task_tag_counts, task_due_counts) alongside,
the triggers are created again, and VACUUM (FREEZE, ANALYZE) gathers the statistics.
10 million rows take about a minute and a half on this VM (two CPUs; ~160 s of CPU); the
seed's backends are allowed every CPU while it runs (the cluster is pinned to one). A seed
that fails leaves `tasks` without its indexes and triggers: seed a throw-away database
(run.py makes one).
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
import contextlib
import fcntl
import json
import os
import random
import string
import subprocess
import sys
import tempfile
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
# The buffer of the pipe between the generating and the loading backend: Linux's default
# largest (/proc/sys/fs/pipe-max-size), 16 times its default. With 64 kB (~250 rows) each
# side stalled whenever the other was off its CPU: on this shared VM the 1,000,000-row load
# then took 8.4 s of wall time for ~3.5 s of either side's CPU.
PIPE_SIZE = 1 << 20
# 2000-01-01 in Unix seconds: timestamptz's binary form counts microseconds from it.
PG_EPOCH = 946_684_800

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
    shifted = f"({r} >> {shift})" if shift else r
    return f"(({shifted} & 65535) % {mod})"


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

    Made for COPY (FORMAT binary) into `tasks`: some columns come out as another type with
    the same binary form, which the loading COPY reads as the column's type. The id is a
    bytea of two int8send() (a uuid's 16 bytes: no hex text for uuid_in to parse), the
    timestamps are bigint microseconds since 2000-01-01 (timestamptz's binary form: integer
    arithmetic instead of make_interval()), the priority and the words are `name` (text's
    binary form; a name[] is indexed in constant time, a text[] is walked from its first
    element). ~2.0 µs a row instead of ~2.9 (COPY TO '/dev/null', 200,000 rows), and the
    same bytes.
    """
    assert all(w == w.lower() and w.isascii() for w in WORDS), "title_key = title needs these"
    assert all(len(x.encode()) < 64 for x in (*WORDS, *SENTENCES, *TAGS)), "name[] holds these"
    step = max(1, 365 * 24 * 3600 // tasks)
    b62 = "'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'"
    position = "'d' || " + " || ".join(
        f"substr({b62}, (j / {62**p} % 62)::int + 1, 1)" for p in (3, 2, 1, 0)
    )
    w, s, t = (f"({_pick(x)}::name[])" for x in (WORDS, SENTENCES, TAGS))
    n_w, n_s, n_t = len(WORDS), len(SENTENCES), len(TAGS)
    title = " || ' ' || ".join(f"{w}[1 + {_bits('r1', b, n_w)}]::text" for b in (0, 16, 32))
    fourth = f"{w}[1 + {_bits('r2', 32, n_w)}]::text"
    title += f" || CASE WHEN {_bits('r2', 48, 2)} = 0 THEN ' ' || {fourth} ELSE '' END || suffix"
    # 0-3 tags: the array is built with as many (not built with three, then sliced).
    tag = [f"{t}[1 + (a + {i} * d) % {n_t}]::text" for i in range(3)]
    tags = (
        "CASE (ARRAY[0,0,1,1,1,2,2,3])[1 + "
        + _bits("r2", 56, 8)
        + "] WHEN 0 THEN '{}'::text[] "
        + "".join(f"WHEN {k} THEN ARRAY[{', '.join(tag[:k])}] " for k in (1, 2))
        + f"ELSE ARRAY[{', '.join(tag)}] END"
    )
    g = f"u.n * {tasks}::bigint + j.j"
    us = "1000000::bigint"
    # Built from this file's constants only.
    return f"""
    WITH j AS MATERIALIZED (
        SELECT j, {position} AS position, ' #' || j AS suffix, now_us,
               now_us - (3600 + j * {step}) * {us} AS created_j,
               now_s - 3600 - j * {step} AS epoch_j
        FROM generate_series(0, {tasks - 1}) AS j,
             LATERAL (SELECT extract(epoch FROM $2::timestamptz)::bigint AS now_s) AS n,
             LATERAL (SELECT (now_s - {PG_EPOCH}) * {us} AS now_us) AS m)
    SELECT int8send((((epoch_j - x) * 1000) << 16) | 28672 | (r2 >> 48 & 4095))
               || int8send((r1 & 4611686018427387903) | (-9223372036854775808)),
           user_id, title, description, priority, due_at, tags, done, completed_at, created,
           coalesce(completed_at, created), CASE WHEN done THEN 2 ELSE 1 END, position,
           g + 1, title
    FROM (
        SELECT *, CASE WHEN done THEN least(now_us, created
                      + (60 + {_bits("r2", 16, 65535)} * 18) * {us}) END AS completed_at
        FROM (
            SELECT user_id, g, r1, r2, x, epoch_j, position, now_us,
                   created_j - x * {us} AS created,
                   {title} AS title,
                   CASE WHEN {_bits("r1", 44, 10)} < 4
                        THEN {s}[1 + {_bits("r2", 24, n_s)}]::text
                             || CASE WHEN {_bits("r2", 40, 2)} = 0
                                THEN ' ' || {s}[1 + {_bits("r2", 28, n_s)}]::text ELSE '' END END
                       AS description,
                   ({_pick(PRIORITIES)}::name[])[1 + {_bits("r1", 40, 4)}] AS priority,
                   CASE WHEN {_bits("r1", 36, 2)} = 0
                        THEN now_us + ({_bits("r2", 12, 65535)} * 120 - 30 * 86400) * {us}
                   END AS due_at,
                   {tags} AS tags,
                   {_bits("r1", 52, 10)} < 3 AS done
            FROM (
                SELECT *, {_bits("r1", 48, 65535)} % {step} AS x,
                       {_bits("r2", 0, n_t)} AS a, 1 + {_bits("r2", 8, 5)} AS d
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


def _backend_cpu(pid: int) -> float:
    """CPU seconds (user + system) a local backend has used so far, 0 if /proc has none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
    # Reads in the backend (effective_io_concurrency = 0): PostgreSQL 18 otherwise has its
    # I/O workers copy each page of a scan into shared buffers, and they run on the cluster's
    # one CPU; at 10 million rows ~14 s of their CPU, on which the builds waited (the index
    # phase 51 s against 55-61 s, all the seed's CPU 157-163 s against 164-179 s).
    await conn.execute(
        "SET maintenance_work_mem = '2GB'; SET max_parallel_maintenance_workers = 0;"
        "SET work_mem = '512MB'; SET synchronize_seqscans = off; SET synchronous_commit = on;"
        "SET effective_io_concurrency = 0"
    )
    return conn


async def _run_job(conn: Any, job: list[str]) -> None:
    t, cpu = time.perf_counter(), _backend_cpu(conn.get_server_pid())
    for statement in job:
        await conn.execute(statement)
    if os.environ.get("SEED_TRACE"):
        took, what = time.perf_counter() - t, " ".join(job)[:72]
        cpu = _backend_cpu(conn.get_server_pid()) - cpu
        print(f"  {took:6.1f} s {cpu:6.1f} cpu  [{conn.get_server_pid()}] {what}", flush=True)


def _make_fifo() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="tasks-seed-"))
    directory.chmod(0o755)  # the server may run as another user
    fifo = directory / "rows"
    os.mkfifo(fifo)
    fifo.chmod(0o666)
    return fifo


async def _server_fifo(conn: Any) -> Path | None:
    """A named pipe that both this process and the server can open, or None when the server
    does not see it (another machine, another /tmp)."""
    fifo = _make_fifo()
    try:
        await conn.fetchval("SELECT pg_stat_file($1)", str(fifo))
    except Exception:
        _remove_fifo(fifo)
        return None
    return fifo


def _release_fifo(fifo: Path) -> None:
    """Open and close both ends of `fifo`: a backend waiting to open it goes on."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))


def _hold_fifo(fifo: Path) -> int:
    """Open `fifo` for reading and writing, so that neither backend waits to open it, and
    make its buffer PIPE_SIZE if the system lets us."""
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    return fd


def _remove_fifo(fifo: Path) -> None:
    with contextlib.suppress(OSError):
        fifo.unlink()
        fifo.parent.rmdir()


async def _load_and_build(
    dsn: str,
    users: list[str],
    now: datetime,
    args: argparse.Namespace,
    jobs: list[list[str]],
    timings: dict[str, float],
) -> None:
    """Generate the rows on one connection (COPY (select_sql) TO ...) and load them into
    `tasks` on another (COPY ... FROM ... FREEZE), so that both CPUs work; then run `jobs`
    (each a list of statements, in order) on `args.workers` connections, the two of the load
    among them, each taking the next job in line.

    The rows go from one backend to the other through a named pipe on the server (COPY TO
    and FROM a file: superuser), which this process holds open (with a PIPE_SIZE buffer)
    until the generating side is done, so that neither backend waits to open it. Through
    this process (COPY TO STDOUT, FROM STDIN), the fallback when the server cannot see the
    pipe, 10 million rows (2.7 GB) cost ~12 s of this process's CPU besides the two
    backends' socket work.

    FREEZE needs the table truncated in the same transaction: the rows are written frozen,
    the visibility map is set as the pages fill, and under wal_level=minimal nothing of the
    heap goes to WAL (the file is synced at commit). One stream in the users' order leaves
    the heap in the order of the created, position and sync_seq indexes, whose sorts then
    find presorted input.

    The loading side costs more than the generating side (~3 µs a row against ~2.7, the
    CHECK constraints ~1.1 µs of it): the pipe stays full, and each side wakes the other
    about once per 64 kB. Tried and dropped: the CHECKs dropped for the COPY and validated
    after it by one ALTER TABLE (one scan, ~1.1 µs a row). The loader then waited for the
    generator and was woken for every 4 kB written (~17,000 context switches a second
    against ~5,000), the COPY took as long (36 s against 38 s at 10 million rows), and the
    validation added 10-14 s on one CPU, with nothing else able to read `tasks`.
    """
    conns = [await _connect(dsn) for _ in range(max(2, args.workers))]
    source_conn, target_conn = conns[0], conns[1]
    queue = list(reversed(jobs))
    trace = os.environ.get("SEED_TRACE")
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)
    query = select_sql(args.tasks, args.seed)
    # COPY TO a file takes no parameters: there the values go in as literals.
    literals = await source_conn.fetchrow(
        "SELECT format('%L', $1::text[]) AS users, format('%L', $2::timestamptz) AS now",
        users,
        now,
    )
    fifo = await _server_fifo(source_conn)
    if fifo:
        query = query.replace("$1", literals["users"]).replace("$2", literals["now"])
    t0 = time.perf_counter()

    async def produce() -> None:
        cpu = _backend_cpu(source_conn.get_server_pid())
        if fifo:
            await source_conn.execute(f"COPY ({query}) TO '{fifo}' (FORMAT binary)")
        else:
            await source_conn.copy_from_query(query, users, now, output=chunks.put, format="binary")
            await chunks.put(None)
        if trace:
            cpu = _backend_cpu(source_conn.get_server_pid()) - cpu
            print(f"  {time.perf_counter() - t0:6.1f} s {cpu:6.1f} cpu  generate", flush=True)

    async def source() -> Any:
        while (chunk := await chunks.get()) is not None:
            yield chunk

    async def load() -> None:
        cpu = _backend_cpu(target_conn.get_server_pid())
        async with target_conn.transaction():
            await target_conn.execute("TRUNCATE tasks")
            if fifo:
                await target_conn.execute(
                    f"COPY tasks ({', '.join(LOAD_COLUMNS)}) FROM '{fifo}' (FORMAT binary, FREEZE)"
                )
            else:
                await target_conn.copy_to_table(
                    "tasks", source=source(), columns=LOAD_COLUMNS, format="binary", freeze=True
                )
        timings["insert"] = time.perf_counter() - t0
        if trace:
            took, cpu = timings["insert"], _backend_cpu(target_conn.get_server_pid()) - cpu
            print(f"  {took:6.1f} s {cpu:6.1f} cpu  load", flush=True)

    async def build(conn: Any) -> None:
        while queue:
            await _run_job(conn, queue.pop())

    try:
        held = _hold_fifo(fifo) if fifo else None
        sides = [asyncio.create_task(produce()), asyncio.create_task(load())]
        if held is not None:
            # Until the generator is done (or either side failed): then the loader sees
            # the end of the data, or the generator a pipe without reader.
            try:
                done, _ = await asyncio.wait(sides, return_when=asyncio.FIRST_COMPLETED)
            finally:
                os.close(held)
            failed = any(not side.cancelled() and side.exception() for side in done)
            for side in sides:
                while not side.done():
                    if failed:
                        # Its peer may have failed before this side opened the pipe, and
                        # now it waits for the peer to open it: let it open, and fail.
                        _release_fifo(fifo)
                    await asyncio.wait([side], timeout=0.5)
        else:
            await asyncio.wait(sides, return_when=asyncio.FIRST_EXCEPTION)
            for side in sides:
                # Through this process, the generating side would wait on the queue.
                side.cancel()
            await asyncio.wait(sides)
        errors = [e for side in sides if not side.cancelled() and (e := side.exception())]
        if errors:
            raise ExceptionGroup("the load failed", errors)
        # A failure on any connection cancels the others.
        async with asyncio.TaskGroup() as group:
            for conn in conns:
                group.create_task(build(conn))
    finally:
        if fifo:
            _remove_fifo(fifo)
        for conn in conns:
            await conn.close()


# CPU seconds of each build and count at 10,000 x 1,000 (SEED_TRACE=1, two at a time on
# the two-CPU VM), for the order of the jobs. The builds whose order is the heap's (created,
# position, sync_seq) skip most of their sort; the others sort each user's rows, every
# comparison of two rows of one user comparing the whole user id and then the next column.
JOB_COST = {
    "ix_tasks_user_title_key": 15.0,
    "ix_tasks_user_updated": 12.5,
    "ix_tasks_user_due": 11.5,
    "ix_tasks_user_open_due": 6.7,
    "task_tag_counts": 6.5,
    "uq_tasks_user_position": 6.3,
    "ix_tasks_user_created": 6.0,
    "ix_tasks_user_sync_seq": 6.0,
    "task_due_counts": 5.4,
    "ix_tasks_user_priority_medium": 5.2,
    "pk_tasks": 5.1,
    "ix_tasks_user_priority_low": 3.4,
    "task_sync": 3.3,
    "ix_tasks_user_priority_high": 3.0,
}


def _cost(index: Any) -> float:
    """JOB_COST of an index, or a guess for one it does not know: 4 s a column, half that
    for a partial index."""
    return JOB_COST.get(index["name"], 4.0 * index["columns"] * (0.5 if index["partial"] else 1))


async def _drop_indexes(conn: Any) -> tuple[list[tuple[float, str]], list[str]]:
    """Drop the indexes of `tasks`; return the statements that build them again, each with
    its cost (for the order of the builds), and those that attach the constraints that own
    an index (the primary key) to its rebuilt index afterwards. ALTER TABLE ... ADD PRIMARY
    KEY would build its index under an ACCESS EXCLUSIVE lock: every other build and count
    waits for it; CREATE UNIQUE INDEX takes a SHARE lock, which they share, and attaching
    the index is instant."""
    indexes = await conn.fetch(
        """
        SELECT i.relname AS name, pg_get_indexdef(i.oid) AS definition, c.conname,
               c.contype::text AS contype, pg_get_constraintdef(c.oid) AS constraint_definition,
               x.indnatts AS columns, x.indpred IS NOT NULL AS partial
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
        WHERE x.indrelid = 'tasks'::regclass
        """
    )
    builds: list[tuple[float, str]] = []
    attach: list[str] = []
    for index in indexes:
        if not index["conname"]:
            await conn.execute(f'DROP INDEX "{index["name"]}"')
            builds.append((_cost(index), index["definition"]))
            continue
        await conn.execute(f'ALTER TABLE tasks DROP CONSTRAINT "{index["conname"]}"')
        add = f'ALTER TABLE tasks ADD CONSTRAINT "{index["conname"]}" '
        if index["contype"] in ("p", "u") and index["conname"] == index["name"]:
            kind = "PRIMARY KEY" if index["contype"] == "p" else "UNIQUE"
            builds.append((_cost(index), index["definition"]))
            attach.append(f'{add}{kind} USING INDEX "{index["name"]}"')
        else:
            builds.append((_cost(index), add + index["constraint_definition"]))
    return builds, attach


def count_jobs() -> list[tuple[float, list[str]]]:
    """What the write triggers would have kept, from the rows: task_sync's counters and sync
    position, task_tag_counts, task_due_counts; one job (a list of statements) each.

    Each table is emptied in the transaction that fills it: under wal_level=minimal its rows
    and its primary key then write no WAL. The rows go in in key order (appended to the
    btree's rightmost page). task_sync's counters are first counted per (user,
    state, priority), a single count(*) a row, then spread into columns; the tags are
    unnested in the select list (ProjectSet), not with a join against unnest() per row."""
    counters = ", ".join(
        f"sum(n) FILTER (WHERE {'' if done else 'NOT '}d AND p = '{p}')"
        for done in (False, True)
        for p in ("low", "medium", "high")
    )
    fills = {
        "task_sync": "INSERT INTO task_sync (user_id, seq, open_low, open_medium, open_high, "  # noqa: S608
        f"done_low, done_medium, done_high) SELECT user_id, max(m), {counters} "
        "FROM (SELECT user_id, is_completed AS d, priority AS p, count(*) AS n, "
        "max(sync_seq) AS m FROM tasks GROUP BY 1, 2, 3) AS s GROUP BY user_id ORDER BY 1",
        "task_tag_counts": "INSERT INTO task_tag_counts (user_id, tag, open, done) "
        "SELECT user_id, tag, count(*) FILTER (WHERE NOT d), count(*) FILTER (WHERE d) "
        "FROM (SELECT user_id, unnest(tags) AS tag, is_completed AS d FROM tasks) AS s "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        "task_due_counts": "INSERT INTO task_due_counts (user_id, due_day, open) "
        "SELECT user_id, (due_at AT TIME ZONE 'UTC')::date, count(*) FROM tasks "
        "WHERE NOT is_completed AND due_at IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2",
    }
    return [
        (JOB_COST[table], ["BEGIN", f"TRUNCATE {table}", fill, "COMMIT"])
        for table, fill in fills.items()
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
        # Longest first, so that the last job on one connection does not leave the other
        # idle for long.
        weighted = [(cost, [sql]) for cost, sql in builds] + count_jobs()
        jobs = [job for _, job in sorted(weighted, key=lambda job: -job[0])]
        t = time.perf_counter()
        await _load_and_build(args.dsn, users, now, args, jobs, timings)
        for sql in attach:
            await conn.execute(sql)
        for trigger in triggers:
            await conn.execute(trigger["definition"])
        await conn.execute(
            "SELECT setval('task_change_seq', (SELECT max(seq) FROM task_sync), true)"
        )
        # The primary key's attachment and the triggers count in the index phase, as before.
        timings["indexes"] = time.perf_counter() - t - timings["insert"]
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
