"""Sync measurements of `make bench` (issue #12), beside the wrk scenarios of run.py.

- `changes` (a wrk scenario, built here): GET /changes?since=<position 0>&limit=100 per
  user: every request reads a full page of 100 pending changes (the seeded tasks), which is
  the work of any client catching up 100 changes.
- `streams` (BENCH_STREAMS=1): 1,000 open event streams on one instance (10 per user, the
  per-user limit, over the 100 seeded users): the API's RSS before and after, and its CPU
  while they sit idle.
- `fanout` (BENCH_STREAMS=1): a second API instance on the same database; while wrk runs
  get-one against the second, a probe writes through the first every 100 ms and times each
  change until it arrives on a stream open on the second: p50/p99/max.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx

BACKEND_SRC = Path(__file__).resolve().parents[1] / "backend" / "src"


def position_zero_tokens(users: list[dict[str, Any]], secret: str) -> dict[str, str]:
    """Each user's sync token for position 0, signed as the API signs them (its key is
    derived from JWT_SECRET): the whole history is pending, a page is always full."""
    sys.path.insert(0, str(BACKEND_SRC))
    from tasks_api.services import sync_token
    from tasks_api.services.cursor import CursorSigner

    signer = CursorSigner(secret.encode())
    return {u["user_id"]: sync_token.encode(signer, u["user_id"], 0) for u in users}


def changes_requests(users: list[dict[str, Any]], secret: str | None) -> list[dict[str, Any]]:
    if not secret:
        raise SystemExit("the changes scenario signs its tokens: set JWT_SECRET (the API's)")
    tokens = position_zero_tokens(users, secret)
    out = []
    for i, u in enumerate(users, 1):
        uid = urllib.parse.quote(u["user_id"], safe="")
        since = urllib.parse.quote(tokens[u["user_id"]], safe="")
        out.append({"u": i, "method": "GET", "path": f"/api/{uid}/changes?since={since}&limit=100"})
    return out


def _headers(user: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user['token']}"}


def _events_url(base: str, user: dict[str, Any]) -> str:
    return f"{base}/api/{urllib.parse.quote(user['user_id'], safe='')}/events"


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _open(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    response = await client.send(client.build_request("GET", url, headers=headers), stream=True)
    if response.status_code != 200:
        body = await response.aread()
        raise RuntimeError(f"GET {url}: {response.status_code} {body[:200]!r}")
    return response


async def streams(
    base: str, users: list[dict[str, Any]], pid: int, per_user: int = 10, idle_seconds: float = 10.0
) -> dict[str, Any]:
    """Open per_user streams for every user (1,000 for 100 users), then sit idle."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    timeout = httpx.Timeout(30, read=None)
    rss0 = _rss_kib(pid)
    opened: list[httpx.Response] = []
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        started = time.monotonic()
        try:
            for batch in range(per_user):
                del batch
                opened += await asyncio.gather(
                    *(_open(client, _events_url(base, u), _headers(u)) for u in users)
                )
            open_seconds = time.monotonic() - started
            await asyncio.sleep(2)  # let the allocations settle
            rss1 = _rss_kib(pid)
            cpu0, t0 = _cpu_seconds(pid), time.monotonic()
            await asyncio.sleep(idle_seconds)
            cpu1, t1 = _cpu_seconds(pid), time.monotonic()
        finally:
            await asyncio.gather(*(r.aclose() for r in opened), return_exceptions=True)
    idle_cpu = None
    if cpu0 is not None and cpu1 is not None:
        idle_cpu = round(100 * (cpu1 - cpu0) / (t1 - t0), 2)
    growth = (rss1 - rss0) if rss0 is not None and rss1 is not None else None
    return {
        "scenario": f"streams x{len(opened)}",
        "streams": len(opened),
        "open_seconds": round(open_seconds, 2),
        "rss_before_mb": round(rss0 / 1024, 1) if rss0 else None,
        "rss_after_mb": round(rss1 / 1024, 1) if rss1 else None,
        "rss_growth_mb": round(growth / 1024, 1) if growth is not None else None,
        "rss_kib_per_stream": round(growth / len(opened), 1) if growth and opened else None,
        "idle_cpu_pct": idle_cpu,
        "idle_seconds": idle_seconds,
    }


async def fanout(
    write_base: str, stream_base: str, user: dict[str, Any], samples: int = 100, every: float = 0.1
) -> dict[str, Any]:
    """Write through one instance, time each change to a stream on the other."""
    latencies: list[float] = []
    timeout = httpx.Timeout(30, read=None)
    tasks_url = f"{write_base}/api/{urllib.parse.quote(user['user_id'], safe='')}/tasks"
    async with (
        httpx.AsyncClient(timeout=timeout) as reader,
        httpx.AsyncClient(timeout=timeout) as writer,
    ):
        response = await _open(reader, _events_url(stream_base, user), _headers(user))
        lines = response.aiter_lines()
        pending: dict[str, float] = {}
        arrived = asyncio.Queue[tuple[str, float]]()

        async def read() -> None:
            async for line in lines:
                if line.startswith("data: "):
                    change = json.loads(line[6:])
                    task_id = change.get("task", {}).get("id") or change.get("id")
                    arrived.put_nowait((task_id, time.monotonic()))

        reading = asyncio.create_task(read())
        try:
            await asyncio.sleep(1)  # the second instance's listener connects for this stream
            for i in range(samples):
                body = {"title": f"fan-out probe {i}"}
                created = await writer.post(tasks_url, json=body, headers=_headers(user))
                committed = time.monotonic()
                created.raise_for_status()
                pending[created.json()["data"]["id"]] = committed
                while pending:
                    task_id, at = await asyncio.wait_for(arrived.get(), 10)
                    if task_id in pending:
                        latencies.append(at - pending.pop(task_id))
                await asyncio.sleep(every)
        finally:
            reading.cancel()
            await response.aclose()
    latencies.sort()

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

    return {
        "scenario": "fanout",
        "samples": len(latencies),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * latencies[-1], 2),
    }


def table(rows: list[dict[str, Any]]) -> str:
    out = []
    for r in rows:
        if r["scenario"].startswith("streams"):
            out.append(
                f"- {r['streams']} open streams on one instance (opened in {r['open_seconds']} s): "
                f"RSS {r['rss_before_mb']} -> {r['rss_after_mb']} MB "
                f"(+{r['rss_growth_mb']} MB, {r['rss_kib_per_stream']} KiB per stream); "
                f"CPU while idle {r['idle_cpu_pct']}% over {r['idle_seconds']} s"
            )
        elif r["scenario"] == "fanout":
            out.append(
                f"- fan-out, write on instance A -> stream on instance B under get-one load on "
                f"B: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms "
                f"({r['samples']} writes)"
            )
        else:
            out.append(f"- {r['scenario']}: failed: {r.get('failed')}")
    return "\n".join(out)
