#!/usr/bin/env python3
"""`make bench`: load-test the Tasks API with wrk and print req/s, latency, errors and RSS.

    bench/run.py                      throw-away cluster + seed + API (as production) + scenarios
    bench/run.py --compare            ... and ../shared/bench's limit server, run.sh + report.py
    bench/run.py --base-url URL --tokens FILE   only the scenarios, against a running API
    bench/run.py tokens --base-url URL --users-file users.json --out tokens.json

Run it through `make bench` / `make bench-compare` (they install wrk and the bench group);
every knob is also an environment variable (make passes `make bench VAR=...` through):

    BENCH_SCENARIOS    comma list, `name` or `name@connections` (default: DEFAULT_SCENARIOS)
    BENCH_DURATION     measured seconds per scenario [15]       BENCH_WARMUP  warm-up s [3]
    BENCH_CONNECTIONS  wrk connections [64]                     BENCH_THREADS wrk threads [1]
    BENCH_SOAK         seconds of a mixed load with RSS sampled every 10 s [0 = off]
    BENCH_PROFILE      1: py-spy flame graphs + top lists into bench/profiles/ [0]
    BENCH_SQL          1: log the SQL of one request per endpoint (log_statement=all) [1]
    BENCH_KEEP         1: leave the cluster and servers running at the end (debugging) [0]
    BENCH_STREAMS      1: 1,000 open event streams (RSS, idle CPU) and the fan-out latency
                       between two instances under get-one load (sync_bench.py) [0]
    BASE_URL, TOKENS   drive a running API instead (a staging deploy); TOKENS: see README
    BENCH_SERVER_PID   with BASE_URL on this machine: the worker's pid, for RSS and CPU

Layout: the API runs on CPU 0 (taskset -c 0, one uvicorn worker, uvloop + httptools,
ENVIRONMENT=production, its access log on, written to a file); PostgreSQL and wrk share
CPU 1. Everything listens on 127.0.0.1 only. All servers and the cluster are stopped at the
end, also on Ctrl-C or an error. The benchmark asserts nothing: it measures and reports.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BACKEND = ROOT / "backend"
VENV_BIN = BACKEND / ".venv" / "bin"
SHARED_BENCH = ROOT.parent / "shared" / "bench"
LUA = HERE / "scenarios.lua"
CLUSTER = HERE / "cluster.sh"
PROFILES = Path(os.environ.get("BENCH_PROFILE_DIR") or HERE / "profiles")

sys.path.insert(0, str(HERE))
import seed as seedmod  # noqa: E402
import sync_bench  # noqa: E402

DEFAULT_SCENARIOS = (
    "get_one,list_100,list_100_pending,list_1000,changes,create,update,update_ifmatch,complete,"
    "complete_noop,stats,list_q,list_tag,list_1000@1,list_100@1,list_100_pending@1,stats@1,"
    "list_q@1,list_tag@1,get_one@512"
)
PROFILE_SCENARIOS = tuple(
    (os.environ.get("BENCH_PROFILE_SCENARIOS") or "get_one,list_100,create").split(",")
)
DB_NAME = "tasks_bench"
BATCH_SIZE = 20  # updates per request of the batch20 scenario
OWNER = "tasks_owner"  # like Neon's owner role: LOGIN CREATEROLE, not a superuser


# --------------------------------------------------------------------------- helpers


def env(name: str, default: str) -> str:
    value = os.environ.get(name, "")
    return value if value.strip() else default


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def rss_kib(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_ticks(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return None


def cpu_times() -> dict[str, tuple[int, int]]:
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                nums = list(map(int, vals))
                out[name] = (sum(nums[:8]), nums[3] + nums[4])
    return out


def http(
    method: str,
    url: str,
    token: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15,
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method, data=body)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode} before answering {url}")
        try:
            status, _, body = http("GET", url, timeout=2)
            if status == 200:
                return
            last = f"{status} {body[:200]!r}"
        except OSError as e:
            last = str(e)
        time.sleep(0.25)
    raise SystemExit(f"no 200 from {url} within {timeout:.0f} s (last: {last})")


def lua_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_lua(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return lua_str(value)
    if isinstance(value, list | tuple):
        return "{" + ",".join(to_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"[{lua_str(str(k))}]={to_lua(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


# LuaJIT allows 65,536 constants per function: a data file of 10,000 users as one table
# constructor exceeds it. Long lists are built from functions of LUA_CHUNK entries each.
LUA_CHUNK = 2000


def lua_module(doc: dict[str, Any], tail: str = "") -> str:
    """Lua source returning `doc` (scalars inline, long lists in chunks); `tail` runs before
    the return with `d` in scope."""
    out = ["local function add(t, part) for i = 1, #part do t[#t + 1] = part[i] end end"]
    out.append("local d = {}")
    for key, value in doc.items():
        name = lua_str(key)
        if isinstance(value, list) and len(value) > LUA_CHUNK:
            out.append(f"d[{name}] = {{}}")
            for start in range(0, len(value), LUA_CHUNK):
                part = to_lua(value[start : start + LUA_CHUNK])
                out.append(f"add(d[{name}], (function() return {part} end)())")
        else:
            out.append(f"d[{name}] = {to_lua(value)}")
    return "\n".join(out) + "\n" + tail + "return d\n"


# Static scenarios rotate over at most this many pre-formatted requests (wrk's memory).
STATIC_MAX = 50_000

# --------------------------------------------------------------------------- scenarios


class Spec:
    """The tokens file, and the wrk data of every scenario built from it."""

    def __init__(self, doc: dict[str, Any], create_pool: int = 2000) -> None:
        self.doc = doc
        self.paths = {**seedmod.PATHS, **doc.get("paths", {})}
        self.users = doc["users"]
        self.create_pool = create_pool
        # The API's JWT_SECRET, which its sync tokens are signed with (the changes scenario).
        self.sync_secret: str | None = os.environ.get("JWT_SECRET") or None
        self.seq_offset: dict[str, int] = defaultdict(int)
        self.rng = random.Random(7)

    def _users_lua(self) -> list[dict[str, str]]:
        return [
            {
                "auth": "Bearer " + u["token"],
                "prefix": "/api/" + urllib.parse.quote(u["user_id"], safe=""),
            }
            for u in self.users
        ]

    def path(self, key: str, u: dict[str, Any], task_id: str = "", value: str = "") -> str:
        uid = urllib.parse.quote(u["user_id"], safe="")
        return self.paths[key].format(user_id=uid, task_id=task_id, value=value)

    def static(self, name: str) -> list[dict[str, Any]]:
        """The requests a static scenario rotates over, each {u, method, path, body?}."""
        out: list[dict[str, Any]] = []
        create_tpl = self.doc.get("create_body", seedmod.CREATE_BODY)
        update_tpl = self.doc.get("update_body", seedmod.UPDATE_BODY)
        if name == "get_one":
            for i, u in enumerate(self.users, 1):
                out += [
                    {"u": i, "method": "GET", "path": self.path("get_one", u, t)}
                    for t in u["task_ids"]
                ]
        elif name in ("list_100", "list_1000", "list_100_pending", "stats"):
            key = {"list_100": "list"}.get(name, name)
            out = [
                {"u": i, "method": "GET", "path": self.path(key, u)}
                for i, u in enumerate(self.users, 1)
            ]
        elif name in ("list_q", "list_tag"):
            # Every user with each value: q a word of the seed's titles (3+ characters),
            # tag one of its tags (each on about 1 task in 9).
            values = seedmod.Q_WORDS if name == "list_q" else seedmod.TAGS
            out = [
                {"u": i, "method": "GET", "path": self.path(name, u, value=v)}
                for i, u in enumerate(self.users, 1)
                for v in values
            ]
        elif name == "create":
            per_user = max(1, self.create_pool // len(self.users))
            n = 0
            for i, u in enumerate(self.users, 1):
                for _ in range(per_user):
                    n += 1
                    out.append(
                        {
                            "u": i,
                            "method": "POST",
                            "path": self.path("create", u),
                            "body": create_tpl.replace("{n}", str(n)),
                        }
                    )
        elif name == "update":
            n = 0
            for i, u in enumerate(self.users, 1):
                for t in u.get("update_ids", []):
                    n += 1
                    out.append(
                        {
                            "u": i,
                            "method": "PATCH",
                            "path": self.path("update", u, t),
                            "body": update_tpl.replace("{n}", str(n)),
                        }
                    )
        elif name == "move":
            # Each request puts a task right after another task of its user (#13).
            for i, u in enumerate(self.users, 1):
                ids = u["task_ids"]
                for k, t in enumerate(ids):
                    after = ids[(k * 7 + 3) % len(ids)]
                    if after != t:
                        out.append(
                            {
                                "u": i,
                                "method": "POST",
                                "path": self.path("update", u, t) + "/move",
                                "body": f'{{"after": "{after}"}}',
                            }
                        )
        elif name == "list_100_position":
            out = [
                {"u": i, "method": "GET", "path": self.path("list", u) + "&sort=position"}
                for i, u in enumerate(self.users, 1)
            ]
        elif name == "batch20":
            # 20 updates in one request (#13): compare its tasks/s with `update`'s req/s.
            n = 0
            for i, u in enumerate(self.users, 1):
                ids = u.get("update_ids", [])
                for start in range(0, max(len(ids) - BATCH_SIZE + 1, 0), 2):
                    n += 1
                    ops = [
                        {"op": "update", "id": t, "changes": {"title": f"batch {n}"}}
                        for t in ids[start : start + BATCH_SIZE]
                    ]
                    uid = urllib.parse.quote(u["user_id"], safe="")
                    out.append(
                        {
                            "u": i,
                            "method": "POST",
                            "path": f"/api/{uid}/batch",
                            "body": json.dumps({"operations": ops}),
                        }
                    )
        elif name == "complete_noop":
            for i, u in enumerate(self.users, 1):
                out += [
                    {"u": i, "method": "PATCH", "path": self.path("complete", u, t)}
                    for t in u.get("completed_ids", [])
                ]
        elif name == "changes":
            out = sync_bench.changes_requests(self.users, self.sync_secret)
        elif name == "mix":
            # The soak: 60% get-one, 20% list-100, 10% create, 10% update (no If-Match).
            parts = {"get_one": 60, "list_100": 20, "create": 10, "update": 10}
            pools = {k: self.static(k) for k in parts}
            for k, weight in parts.items():
                if pools[k]:
                    out += [self.rng.choice(pools[k]) for _ in range(weight * 40)]
        else:
            raise KeyError(name)
        return out

    def data(self, name: str, ifmatch_versions: dict[str, int], conns: int = 0) -> tuple[str, str]:
        """(kind, Lua source of the data file) for the wrk script."""
        users = self._users_lua()
        if name == "update_ifmatch":
            slots = []
            for i, u in enumerate(self.users, 1):
                for tid, version in u.get("ifmatch_ids", []):
                    slots.append([i, tid, ifmatch_versions.get(tid, version)])
            if len(slots) < conns:
                log(
                    f"update_ifmatch: {len(slots)} tasks for {conns} connections: some will "
                    "share a task and get 412s (more users in the tokens file fix it)"
                )
            body = self.doc.get("update_body", seedmod.UPDATE_BODY).replace("{n}", "%d")
            doc = {"kind": "ifmatch", "users": users, "slots": slots, "body": body}
            return "ifmatch", lua_module(doc)
        if name == "complete":
            # Round-robin over users, each open task once: every request a real transition.
            per_user = [u.get("open_ids", []) for u in self.users]
            lines = []
            for k in range(max((len(p) for p in per_user), default=0)):
                for i, ids in enumerate(per_user, 1):
                    if k < len(ids):
                        lines.append(f"{i} {ids[k]}")
            doc = {"kind": "seq", "users": users, "method": "PATCH", "suffix": "/complete"}
            src = "local items = {}\n"
            src += "for u, id in string.gmatch([==[\n" + "\n".join(lines) + "\n]==], "
            src += '"(%d+) (%S+)") do items[#items + 1] = {tonumber(u), id} end\n'
            src += "d.items = items\n"
            return "seq", lua_module(doc, src)
        reqs = self.static(name)
        if not reqs:
            raise SystemExit(f"the tokens file has no tasks for scenario {name}")
        if len(reqs) > STATIC_MAX:
            reqs = self.rng.sample(reqs, STATIC_MAX)
        return "static", lua_module({"kind": "static", "users": users, "reqs": reqs})

    def preflight(self, name: str) -> tuple[str, str, bytes | None, str, int]:
        """One representative request: (method, path, body, token, expected status)."""
        if name in ("update_ifmatch", "complete"):
            # Stateful scenarios: check with a GET, so that no task is used up or moved on.
            key = "ifmatch_ids" if name == "update_ifmatch" else "open_ids"
            u = next((u for u in self.users if u.get(key)), None)
            if u is None:
                raise RuntimeError(f"the tokens file has no {key} for {name}")
            task = u[key][0][0] if name == "update_ifmatch" else u[key][-1]
            return "GET", self.path("get_one", u, task), None, u["token"], 200
        e = self.static(name)[0]
        u = self.users[e["u"] - 1]
        body = e.get("body")
        return (
            e["method"],
            e["path"],
            body.encode() if body else None,
            u["token"],
            201 if name == "create" else 200,
        )


def parse_scenarios(text: str, default_conns: int) -> list[tuple[str, int]]:
    out = []
    known = {
        "get_one",
        "list_100",
        "list_1000",
        "list_100_pending",
        "list_q",
        "list_tag",
        "stats",
        "create",
        "update",
        "update_ifmatch",
        "complete",
        "complete_noop",
        "mix",
        "move",
        "list_100_position",
        "batch20",
        "changes",
    }
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, conns = item.partition("@")
        if name not in known:
            raise SystemExit(f"unknown scenario {name!r}; known: {', '.join(sorted(known))}")
        out.append((name, int(conns) if conns else default_conns))
    return out


class Runner:
    def __init__(
        self, base: str, spec: Spec, args: argparse.Namespace, pid: int | None, workdir: Path
    ) -> None:
        self.base = base.rstrip("/")
        self.spec = spec
        self.args = args
        self.pid = pid
        self.workdir = workdir
        self.versions: dict[str, int] = {}
        self.state_file = workdir / "ifmatch_versions.txt"
        # Local runs: PostgreSQL's count of sessions opened on the benchmark database, to
        # see whether the pool opens (and closes) connections under load.
        self.db_sessions: Callable[[], int | None] = lambda: None

    def wrk(
        self, name: str, kind: str, data_file: Path, seconds: int, conns: int, offset: int = 0
    ) -> dict[str, Any]:
        threads = min(self.args.threads, conns)
        cmd = [
            "taskset",
            "-c",
            self.args.wrk_cpu,
            "wrk",
            f"-t{threads}",
            f"-c{conns}",
            f"-d{seconds}s",
            "--timeout",
            self.args.timeout,
            "-s",
            str(LUA),
            self.base,
            "--",
            str(data_file),
            str(threads),
            str(offset),
            str(self.state_file) if kind == "ifmatch" else "",
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)
        m = re.search(r"^BENCH_JSON (.*)$", p.stdout, re.M)
        if not m:
            raise RuntimeError(
                f"wrk failed ({p.returncode}): {p.stdout[-1500:]} {p.stderr[-1500:]}"
            )
        res = json.loads(m.group(1))
        res["cmd"] = " ".join(cmd)
        if kind == "ifmatch" and self.state_file.exists():
            unknown = []
            for line in self.state_file.read_text().split("\n"):
                if line.strip():
                    tid, v = line.split()
                    self.versions[tid] = int(v)
                    if int(v) < 0:
                        unknown.append(tid)
            self.state_file.unlink()
            self.refresh_versions(unknown)
        return res

    def refresh_versions(self, task_ids: list[str]) -> None:
        """Re-read the ETags of tasks whose last PATCH was cut off when wrk stopped."""
        owner = {t[0]: u for u in self.spec.users for t in u.get("ifmatch_ids", [])}
        for tid in task_ids:
            u = owner[tid]
            status, h, _ = http("GET", self.base + self.spec.path("get_one", u, tid), u["token"])
            m = re.fullmatch(r'"(.+)\.(\d+)"', h.get("etag", ""))
            if status == 200 and m:
                self.versions[tid] = int(m.group(2))
            else:
                self.versions.pop(tid, None)

    def preflight(self, name: str) -> str:
        method, path, body, token, expect = self.spec.preflight(name)
        deadline = time.time() + 30
        while True:
            try:
                status, _, raw = http(method, self.base + path, token, body)
            except OSError as e:
                status, raw = 0, str(e).encode()
            if status == expect:
                return f"{method} {status} {len(raw)} B"
            if time.time() > deadline:
                raise RuntimeError(
                    f"pre-flight {method} {path}: {status}, want {expect}: {raw[:300]!r}"
                )
            time.sleep(1)

    def scenario(
        self, name: str, conns: int, duration: int | None = None, sampler: RssSampler | None = None
    ) -> dict[str, Any]:
        duration = duration or self.args.duration
        label = name if conns == self.args.connections else f"{name}@{conns}"
        row: dict[str, Any] = {
            "scenario": label,
            "connections": conns,
            "duration_s": duration,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "loadavg_before": round(os.getloadavg()[0], 2),
        }
        try:
            row["preflight"] = self.preflight(name)
            kind, src = self.spec.data(name, self.versions, conns)
            data_file = self.workdir / f"data_{name}.lua"
            data_file.write_text(src)
            if self.args.warmup > 0:
                w = self.wrk(
                    name, kind, data_file, self.args.warmup, conns, self.spec.seq_offset[name]
                )
                self.spec.seq_offset[name] += w["issued"]
            if kind == "ifmatch":  # the warm-up moved the versions on
                data_file.write_text(self.spec.data(name, self.versions)[1])
            s0 = self.db_sessions()
            rss0 = rss_kib(self.pid)
            c0, p0, t0 = cpu_times(), proc_ticks(self.pid), time.time()
            if sampler:
                sampler.start()
            res = self.wrk(name, kind, data_file, duration, conns, self.spec.seq_offset[name])
            if sampler:
                sampler.stop()
            c1, p1, t1 = cpu_times(), proc_ticks(self.pid), time.time()
            rss1 = rss_kib(self.pid)
            s1 = self.db_sessions()
            self.spec.seq_offset[name] += res["issued"]
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            row["failed"] = str(e)[:500]
            log(f"{label}: FAILED: {row['failed']}")
            return row
        util = {}
        for cpu in c1:
            dt, di = c1[cpu][0] - c0[cpu][0], c1[cpu][1] - c0[cpu][1]
            util[cpu] = round(100.0 * (dt - di) / dt, 1) if dt else None
        srv = (
            round(100.0 * (p1 - p0) / os.sysconf("SC_CLK_TCK") / (t1 - t0), 1)
            if p0 is not None and p1 is not None
            else None
        )
        secs = res["duration_us"] / 1e6
        sock = res["err_connect"] + res["err_read"] + res["err_write"] + res["err_timeout"]
        row.update(
            {
                "rps": round(res["requests"] / secs, 1),
                "p50_ms": res["lat_p50_us"] / 1000,
                "p90_ms": res["lat_p90_us"] / 1000,
                "p95_ms": res["lat_p95_us"] / 1000,
                "p99_ms": res["lat_p99_us"] / 1000,
                "p999_ms": res["lat_p999_us"] / 1000,
                "max_ms": res["lat_max_us"] / 1000,
                "mean_ms": round(res["lat_mean_us"] / 1000, 3),
                "requests": res["requests"],
                "errors": res["errors"],
                "socket_errors": sock,
                "timeouts": res["err_timeout"],
                "codes": res["codes"],
                "first_bad": res["first_bad"],
                "wrapped": res["wrapped"],
                "resyncs": res["resyncs"],
                "rss_before_mb": round(rss0 / 1024, 1) if rss0 else None,
                "rss_after_mb": round(rss1 / 1024, 1) if rss1 else None,
                "server_cpu_pct": srv,
                "cpu_util": util,
                "db_connections_opened": (s1 - s0 if s0 is not None and s1 is not None else None),
                # CPU time of the server per request: far less sensitive than req/s to what else
                # runs on the machine (it still counts cache and frequency effects).
                "server_cpu_us_per_req": (
                    round(srv / 100 * 1e6 / (res["requests"] / secs))
                    if srv is not None and res["requests"]
                    else None
                ),
                # What else ran on the server's core: the noise of a shared machine.
                "cpu0_other_pct": (
                    round(util.get("cpu0", 0) - srv, 1)
                    if srv is not None and util.get("cpu0") is not None
                    else None
                ),
                "mb_per_s": round(res["bytes"] / secs / 1e6, 2),
                # Tasks written per second: a batch20 request updates BATCH_SIZE of them.
                "tasks_per_s": round(
                    res["requests"] / secs * (BATCH_SIZE if name == "batch20" else 1), 1
                ),
                "wrk_cmd": res["cmd"],
            }
        )
        log(
            f"{label:18s} {row['rps']:9.1f} req/s  p50 {row['p50_ms']:7.2f}  "
            f"p95 {row['p95_ms']:7.2f}  p99 {row['p99_ms']:7.2f} ms  errors {row['errors']}"
            f"+{sock}  codes {row['codes']}  RSS {row['rss_before_mb']}->{row['rss_after_mb']} MB"
            f"  server CPU {srv}%  cpu0 {util.get('cpu0')}% cpu1 {util.get('cpu1')}%"
        )
        if row["first_bad"]:
            log(f"    first error: {row['first_bad'][:200]}")
        return row


class RssSampler:
    """VmRSS of the server every `every` seconds while a scenario runs (the soak)."""

    def __init__(self, pid: int | None, every: float) -> None:
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        t0 = time.time()
        while True:
            kib = rss_kib(self.pid)
            if kib:
                self.samples.append((round(time.time() - t0, 1), kib))
            if self._stop.wait(self.every):
                break

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


# --------------------------------------------------------------------------- output


def fmt(v: Any, spec: str = ".2f") -> str:
    return "—" if v is None else format(v, spec)


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| scenario | conns | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | statuses "
        "| RSS before→after MB | server CPU % | CPU µs/req | CPU0 other % | DB conns opened |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "failed" in r:
            out.append(
                f"| {r['scenario']} | {r['connections']} | failed: {r['failed'][:120]} "
                "| | | | | | | | | | | |"
            )
            continue
        codes = " ".join(f"{k}: {v}" for k, v in sorted(r["codes"].items()))
        if r.get("wrapped"):
            codes += f" ({r['wrapped']} repeats: no-ops)"
        if r.get("resyncs"):
            codes += f" ({r['resyncs']} re-reads after 412)"
        errs = r["errors"] + r["socket_errors"]
        err = f"{errs}" + (f" ({r['timeouts']} timeouts)" if r.get("timeouts") else "")
        out.append(
            f"| {r['scenario']} | {r['connections']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
            f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.0f} | {err} | {codes} | "
            f"{fmt(r['rss_before_mb'], '.1f')}→{fmt(r['rss_after_mb'], '.1f')} | "
            f"{fmt(r['server_cpu_pct'], '.0f')} | {fmt(r.get('server_cpu_us_per_req'), ',')} | "
            f"{fmt(r['cpu0_other_pct'], '.0f')} | {fmt(r.get('db_connections_opened'), 'd')} |"
        )
    return "\n".join(out)


# --------------------------------------------------------------------------- local setup


class Stack:
    """The throw-away cluster and the servers of one run; stop() undoes everything."""

    def __init__(self, workdir: Path, keep: bool) -> None:
        self.workdir = workdir
        self.keep = keep
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.cluster_started = False
        self.pg_env = {
            **os.environ,
            "BENCH_PGDIR": env("BENCH_PGDIR", "/tmp/tasks-bench-pg"),
            "BENCH_PGPORT": env("BENCH_PGPORT", "55433"),
            "BENCH_PG_CPU": env("BENCH_PG_CPU", "1"),
        }
        self.port = int(self.pg_env["BENCH_PGPORT"])

    def cluster(self, *cmd: str, capture: bool = False) -> str:
        p = subprocess.run(
            [str(CLUSTER), *cmd], env=self.pg_env, check=True, text=True, capture_output=capture
        )
        return p.stdout if capture else ""

    def psql(self, sql: str, db: str = "postgres") -> str:
        return self.cluster("psql", "-d", db, "-v", "ON_ERROR_STOP=1", "-qAtc", sql, capture=True)

    def db_sessions(self) -> int | None:
        """pg_stat_database.sessions of the benchmark database (flushed within ~1 s)."""
        time.sleep(1.1)
        try:
            out = self.psql(f"SELECT sessions FROM pg_stat_database WHERE datname = '{DB_NAME}'")  # noqa: S608
            return int(out.strip())
        except (subprocess.CalledProcessError, ValueError):
            return None

    def dsn(self, user: str = "postgres", db: str = DB_NAME) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def start_cluster(self) -> None:
        self.cluster("init")
        self.cluster_started = True
        self.cluster("start")
        self.psql(f"CREATE ROLE {OWNER} LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS")
        self.psql(f"CREATE DATABASE {DB_NAME} OWNER {OWNER}")
        self.psql(f"ALTER SCHEMA public OWNER TO {OWNER}", db=DB_NAME)

    def migrate(self) -> None:
        t0 = time.time()
        envv = {
            **os.environ,
            "DATABASE_URL": self.dsn(OWNER),
            "ENVIRONMENT": "production",
            "JWT_SECRET": secrets.token_urlsafe(48),
        }
        p = subprocess.run(
            [str(VENV_BIN / "alembic"), "upgrade", "head"],
            cwd=BACKEND,
            env=envv,
            capture_output=True,
            text=True,
            check=False,
        )
        if p.returncode:
            raise SystemExit(f"alembic upgrade head failed:\n{p.stdout}\n{p.stderr}")
        head = self.psql("SELECT version_num FROM alembic_version", db=DB_NAME).strip()
        tables = self.psql(
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
            "WHERE schemaname = 'public'",
            db=DB_NAME,
        ).strip()
        log(f"migrated to {head} in {time.time() - t0:.1f} s (tables: {tables})")

    def seed(self, secret: str, tokens: Path, users: int, tasks: int) -> None:
        subprocess.run(
            [
                sys.executable,
                str(HERE / "seed.py"),
                "--dsn",
                self.dsn(),
                # One argument: a token_urlsafe secret may start with "-", which argparse
                # would take for an option if it came as the next argument.
                f"--secret={secret}",
                "--out",
                str(tokens),
                "--users",
                str(users),
                "--tasks",
                str(tasks),
            ],
            check=True,
        )

    def spawn(
        self, name: str, cmd: list[str], cwd: Path, extra_env: dict[str, str], logfile: Path
    ) -> subprocess.Popen[bytes]:
        envv = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        envv.update(extra_env)
        out = open(logfile, "wb")  # noqa: SIM115 (lives as long as the server)
        proc = subprocess.Popen(cmd, cwd=cwd, env=envv, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        if self.keep:
            log(
                f"BENCH_KEEP: left running: {[(n, p.pid) for n, p in self.procs]}, cluster "
                f"{self.pg_env['BENCH_PGDIR']} (bench/cluster.sh destroy)"
            )
            return
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    log(f"{name} ({proc.pid}) ignored SIGINT; killing it")
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()
        if self.cluster_started:
            try:
                self.cluster("destroy")
            except subprocess.CalledProcessError as e:
                log(f"cluster destroy failed: {e}")
            self.cluster_started = False


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def start_api(stack: Stack, secret: str, port: int, workdir: Path) -> subprocess.Popen[bytes]:
    if not port_free(port):
        raise SystemExit(f"port {port} is taken; set BENCH_API_PORT")
    if (ROOT / ".env").exists():
        log("note: a .env exists at the checkout's root; the API reads it (the environment wins)")
    # As the Dockerfile's CMD, plus the event loop and parser named explicitly; the access
    # log stays on (production default), written to a file as a container's stdout would be.
    cmd = [
        "taskset",
        "-c",
        env("BENCH_API_CPU", "0"),
        str(VENV_BIN / "uvicorn"),
        "tasks_api.main:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "tasks_api.server:HttpToolsProtocol",  # as the Dockerfile: httptools, enveloped 414
        "--proxy-headers",
        "--forwarded-allow-ips",
        "*",
        "--no-server-header",
    ]
    extra = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": stack.dsn(OWNER),
        "JWT_SECRET": secret,
        "PYTHONUNBUFFERED": "1",
    }
    proc = stack.spawn("tasks-api", cmd, BACKEND, extra, workdir / "api.log")
    wait_http(f"http://127.0.0.1:{port}/health/ready", 60, proc)
    log(
        f"tasks-api pid {proc.pid} on 127.0.0.1:{port}, "
        f"CPU {sorted(os.sched_getaffinity(proc.pid))}, RSS {rss_kib(proc.pid) / 1024:.1f} MB, "
        f"log {workdir / 'api.log'}"
    )
    return proc


def start_limit_server(
    stack: Stack, secret: str, port: int, workdir: Path
) -> subprocess.Popen[bytes]:
    if not port_free(port):
        raise SystemExit(f"port {port} is taken; set BENCH_LIMIT_PORT")
    # Our venv has everything its requirements.txt names (uvicorn, uvloop, httptools,
    # asyncpg, PyJWT, orjson), so both servers run on the same library versions.
    cmd = [
        "taskset",
        "-c",
        env("BENCH_API_CPU", "0"),
        str(VENV_BIN / "uvicorn"),
        "limit_server:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    extra = {"BENCH_DSN": stack.dsn(), "BENCH_JWT_SECRET": secret}
    proc = stack.spawn("limit-server", cmd, SHARED_BENCH, extra, workdir / "limit_server.log")
    wait_http(f"http://127.0.0.1:{port}/hello", 30, proc)
    log(f"limit server pid {proc.pid} on 127.0.0.1:{port}")
    return proc


# --------------------------------------------------------------------------- SQL per request


SQL_ENDPOINTS = [
    "get_one",
    "list_100",
    "list_1000",
    "create",
    "update",
    "update_ifmatch",
    "complete",
    "complete_noop",
]


def sql_trace(
    stack: Stack, base: str, spec: Spec, workdir: Path, versions: dict[str, int]
) -> dict[str, Any]:
    """log_statement=all for a moment: the statements each endpoint sends, request by request.

    Requests are sent one at a time; a marker statement from our own connection separates
    them in the server log. A cold request (first of its kind on a pooled connection) also
    prepares its statements; those Parse round trips are not logged, so the second request
    of each endpoint is the one counted.
    """
    logfile = Path(stack.pg_env["BENCH_PGDIR"]) / "server.log"
    stack.psql("ALTER SYSTEM SET log_statement = 'all'")
    stack.psql("ALTER SYSTEM SET log_line_prefix = '%m [%p] app=%a '")
    stack.psql("SELECT pg_reload_conf()")
    time.sleep(0.5)
    start = logfile.stat().st_size
    u = spec.users[1]
    results: dict[str, Any] = {}
    open_ids = list(u.get("open_ids", []))
    try:
        for name in SQL_ENDPOINTS:
            for attempt in range(3):
                marker = f"bench_marker_{name}_{attempt}"
                stack.psql(f"SELECT '{marker}'", db=DB_NAME)
                if name == "get_one":
                    req = ("GET", spec.path("get_one", u, u["task_ids"][attempt]), None, {})
                elif name == "list_100":
                    req = ("GET", spec.path("list", u), None, {})
                elif name == "list_1000":
                    req = ("GET", spec.path("list_1000", u), None, {})
                elif name == "create":
                    req = ("POST", spec.path("create", u), b'{"title": "sql trace"}', {})
                elif name == "update":
                    req = (
                        "PATCH",
                        spec.path("update", u, u["update_ids"][attempt]),
                        b'{"title": "sql trace", "priority": "high"}',
                        {},
                    )
                elif name == "update_ifmatch":
                    tid = u["ifmatch_ids"][attempt][0]
                    _, h, _ = http("GET", base + spec.path("get_one", u, tid), u["token"])
                    stack.psql(f"SELECT '{marker}'", db=DB_NAME)
                    req = (
                        "PATCH",
                        spec.path("update", u, tid),
                        b'{"title": "sql trace"}',
                        {"If-Match": h.get("etag", "")},
                    )
                elif name == "complete":
                    req = ("PATCH", spec.path("complete", u, open_ids.pop()), None, {})
                else:
                    req = ("PATCH", spec.path("complete", u, u["completed_ids"][attempt]), None, {})
                method, path, body, headers = req
                status, h, _ = http(method, base + path, u["token"], body, headers)
                results.setdefault(name, {"status": status, "runs": []})
                m = re.fullmatch(r'"(.+)\.(\d+)"', h.get("etag", ""))
                if m:  # the If-Match scenario starts from the versions we leave
                    versions[m.group(1)] = int(m.group(2))
        stack.psql("SELECT 'bench_marker_end'", db=DB_NAME)
        time.sleep(0.5)
    finally:
        stack.psql("ALTER SYSTEM RESET log_statement")
        stack.psql("ALTER SYSTEM RESET log_line_prefix")
        stack.psql("SELECT pg_reload_conf()")
    with open(logfile, errors="replace") as f:
        f.seek(start)
        text = f.read()
    # Split the log on the markers; keep the API's statements (application_name tasks-api).
    current: list[str] | None = None
    blocks: dict[str, list[str]] = {}
    for entry in re.split(r"\n(?=\d{4}-\d\d-\d\d )", text):
        first_line = entry.split("\n", 1)[0]
        m = re.search(r"SELECT 'bench_marker_(\w+)'", first_line)
        if m:
            key = re.sub(r"_(\d)$", r"#\1", m.group(1))
            # A new list per marker: the last marker before a request wins (update_ifmatch
            # reads the ETag first).
            current = [] if "#" in key else None
            if current is not None:
                blocks[key] = current
            continue
        m = re.search(r"app=tasks-api .*?LOG:\s+(?:statement|execute [^:]*):\s*(.*)", entry, re.S)
        if current is not None and m:
            current.append(re.sub(r"\s+", " ", m.group(1)).strip())
    for name in SQL_ENDPOINTS:
        runs = [blocks.get(f"{name}#{i}", []) for i in range(3)]
        results.setdefault(name, {})["runs"] = runs
    (workdir / "sql_trace.json").write_text(json.dumps(results, indent=1))
    return results


def sql_report(results: dict[str, Any]) -> str:
    out = [
        "| endpoint | status | statements (warm request) | the statements |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        warm = r["runs"][1] if len(r["runs"]) > 1 else []
        shown = "<br>".join("`" + (s if len(s) < 140 else s[:137] + "...") + "`" for s in warm)
        out.append(f"| {name} | {r.get('status')} | {len(warm)} | {shown} |")
    return "\n".join(out)


# --------------------------------------------------------------------------- profiling


def profile(runner: Runner, pid: int, names: tuple[str, ...]) -> None:
    """py-spy under load: a flame graph and a top list (self and inclusive) per scenario."""
    pyspy = VENV_BIN / "py-spy"
    if not pyspy.exists():
        log("py-spy is not installed (make bench syncs the bench group); no profiles")
        return
    PROFILES.mkdir(exist_ok=True)
    secs = 10
    for name in names:
        kind, src = runner.spec.data(name, runner.versions)
        data_file = runner.workdir / f"data_{name}.lua"
        data_file.write_text(src)
        total = 2 + secs + 1 + secs + 2
        box: dict[str, Any] = {}

        def load(
            name: str = name,
            kind: str = kind,
            data_file: Path = data_file,
            total: int = total,
            box: dict[str, Any] = box,
        ) -> None:
            box["res"] = runner.wrk(name, kind, data_file, total, runner.args.connections)

        t = threading.Thread(target=load)
        t.start()
        time.sleep(2)
        raw = runner.workdir / f"profile_{name}.folded"  # large; the summary goes in .txt
        svg = PROFILES / f"{name}.svg"
        # Two recordings in turn: py-spy writes one format per run (raw for the top list).
        for fmt, out in (("raw", raw), ("flamegraph", svg)):
            record = ["record", "--pid", str(pid), "--duration", str(secs), "--rate", "200"]
            subprocess.run(
                [str(pyspy), *record, "--nonblocking", "--format", fmt, "-o", str(out)],
                check=False,
                capture_output=True,
            )
        dump = subprocess.run(
            [str(pyspy), "dump", "--pid", str(pid)], capture_output=True, text=True, check=False
        )
        t.join()
        res = box.get("res", {})
        rps = res.get("requests", 0) / max(1e-9, res.get("duration_us", 1) / 1e6)
        summary = top_list(raw, 25)
        (PROFILES / f"{name}.txt").write_text(
            f"# py-spy, {secs} s at 200 Hz (nonblocking), {runner.args.connections} connections, "
            f"{rps:,.0f} req/s during the recording\n\n{summary}\n\n# py-spy dump\n{dump.stdout}"
        )
        log(f"profile {name}: {svg}, {PROFILES / (name + '.txt')} ({rps:,.0f} req/s under py-spy)")


def top_list(folded: Path, n: int) -> str:
    """Where the samples are, from py-spy's collapsed stacks (line numbers folded away).

    SQLAlchemy runs its async work in greenlets, which py-spy shows as separate stacks, so
    "inclusive" shares of the request path are lower bounds; "self" by package is exact.
    """
    if not folded.exists():
        return "(no samples)"
    self_fn: Counter[str] = Counter()
    self_pkg: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if f]
        if not frames:
            self_fn["(no Python frame: native code or idle)"] += c
            self_pkg["(native/idle)"] += c
            continue
        leaf = frames[-1]
        self_fn[leaf] += c
        m = re.search(r"\(([^/:)]+)", leaf)
        self_pkg[m.group(1).removesuffix(".py") if m else "?"] += c
        for f in set(frames):
            incl[f] += c
    if not total:
        return "(no samples)"
    pct = lambda c: f"{100 * c / total:5.1f}%"  # noqa: E731
    lines = [f"total samples: {total}", "", "## self time by package (leaf frame's top module)"]
    lines += [f"{pct(c)}  {k}" for k, c in self_pkg.most_common(15)]
    lines += ["", "## self time by function"]
    lines += [f"{pct(c)}  {k}" for k, c in self_fn.most_common(n)]
    lines += ["", "## inclusive (anywhere on the stack; the server's outer frames left out)"]
    inner = [(k, c) for k, c in incl.most_common() if c < 0.6 * total]
    lines += [f"{pct(c)}  {k}" for k, c in inner[: n * 2]]
    return "\n".join(lines)


# --------------------------------------------------------------------------- modes


def run_scenarios(runner: Runner, scenarios: list[tuple[str, int]]) -> list[dict[str, Any]]:
    rows = []
    for name, conns in scenarios:
        rows.append(runner.scenario(name, conns))
        if runner.args.out:
            with open(runner.args.out, "a") as f:
                f.write(json.dumps({"label": runner.args.label, **rows[-1]}) + "\n")
    return rows


def soak(runner: Runner, seconds: int) -> dict[str, Any]:
    sampler = RssSampler(runner.pid, 10)
    log(f"soak: mixed load for {seconds} s, RSS every 10 s")
    row = runner.scenario("mix", runner.args.connections, duration=seconds, sampler=sampler)
    s = sampler.samples
    row["rss_samples"] = s
    if len(s) >= 2:
        first_min = [kib for t, kib in s if t <= 60] or [s[0][1]]
        last_min = [kib for t, kib in s if t >= s[-1][0] - 60] or [s[-1][1]]
        row["rss_growth_mb"] = round((max(last_min) - max(first_min)) / 1024, 1)
        log("soak RSS MB: " + " ".join(f"{t:.0f}s={kib / 1024:.1f}" for t, kib in s))
        log(f"soak RSS growth (max of last minute - max of first): {row['rss_growth_mb']} MB")
    return row


def local(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk (make bench does it)")
    workdir = Path(tempfile.mkdtemp(prefix="tasks-bench-"))
    stack = Stack(workdir, keep=args.keep)
    secret = secrets.token_urlsafe(48)
    tokens = workdir / "tokens.json"
    api_port = int(env("BENCH_API_PORT", "18000"))
    limit_port = int(env("BENCH_LIMIT_PORT", "18001"))
    results: list[dict[str, Any]] = []
    try:
        log(f"work dir {workdir}; load average {os.getloadavg()[0]:.2f}")
        stack.start_cluster()
        stack.migrate()
        stack.seed(secret, tokens, args.users, args.tasks)
        api = start_api(stack, secret, api_port, workdir)
        base = f"http://127.0.0.1:{api_port}"
        spec = Spec(json.loads(tokens.read_text()))
        spec.sync_secret = secret
        if args.out is None:
            args.out = str(workdir / "results.jsonl")
        runner = Runner(base, spec, args, api.pid, workdir)
        runner.db_sessions = stack.db_sessions

        if args.compare:
            compare(stack, secret, tokens, api, limit_port, base, args, workdir)
            if args.compare_only:
                return 0
        if args.sql:
            log("SQL per request (log_statement=all, one request at a time)")
            trace = sql_trace(stack, base, spec, workdir, runner.versions)
            print("\n" + sql_report(trace) + "\n", flush=True)
        results = run_scenarios(runner, args.scenario_list)
        if args.profile:
            profile(runner, api.pid, PROFILE_SCENARIOS)
        if args.soak:
            results.append(soak(runner, args.soak))
        sync_rows = sync_measurements(stack, secret, spec, args, api, base, workdir)
        print(
            "\n## tasks-api, one uvicorn worker on CPU 0 "
            f"({args.duration} s measured after {args.warmup} s warm-up per scenario; "
            f"load average now {os.getloadavg()[0]:.2f})\n",
            flush=True,
        )
        print(table(results), flush=True)
        if sync_rows:
            print("\n" + sync_bench.table(sync_rows), flush=True)
        print(f"\nresults: {args.out}", flush=True)
    finally:
        stack.stop()
        for f in workdir.glob("data_*.lua"):  # up to a few MB each; logs and results stay
            f.unlink()
        if not args.keep:
            log(f"stopped the servers and removed the cluster; logs and results in {workdir}")
    return 0


def sync_measurements(
    stack: Stack,
    secret: str,
    spec: Spec,
    args: argparse.Namespace,
    api: subprocess.Popen[bytes],
    base: str,
    workdir: Path,
) -> list[dict[str, Any]]:
    """BENCH_STREAMS=1: 1,000 idle streams on the API, then the fan-out latency from it to
    a second instance (same database) whose get-one load wrk keeps up meanwhile."""
    if not args.streams:
        return []
    import asyncio

    rows = []
    try:
        rows.append(asyncio.run(sync_bench.streams(base, spec.users, api.pid)))
        log(sync_bench.table(rows[-1:]))
        second = workdir / "second"
        second.mkdir(exist_ok=True)
        api2 = start_api(stack, secret, int(env("BENCH_API2_PORT", "18002")), second)
        base2 = f"http://127.0.0.1:{int(env('BENCH_API2_PORT', '18002'))}"
        load = Runner(base2, spec, args, api2.pid, workdir)
        kind, src = spec.data("get_one", {})
        data_file = workdir / "data_get_one_second.lua"
        data_file.write_text(src)
        seconds = max(args.duration, 30)
        wrk = threading.Thread(
            target=load.wrk, args=("get_one", kind, data_file, seconds, args.connections)
        )
        wrk.start()
        time.sleep(2)
        rows.append(asyncio.run(sync_bench.fanout(base, base2, spec.users[0])))
        log(sync_bench.table(rows[-1:]))
        wrk.join()
    except (RuntimeError, OSError, TimeoutError) as e:
        rows.append({"scenario": "streams/fanout", "failed": str(e)[:300]})
        log(f"sync measurements FAILED: {e}")
    with Path(args.out).open("a") as out:
        for row in rows:
            out.write(json.dumps({"label": args.label, **row}) + "\n")
    return rows


def compare(
    stack: Stack,
    secret: str,
    tokens: Path,
    api: subprocess.Popen[bytes],
    limit_port: int,
    base: str,
    args: argparse.Namespace,
    workdir: Path,
) -> None:
    run_sh = SHARED_BENCH / "run.sh"
    if not run_sh.exists():
        log(f"{run_sh} is missing: no comparison")
        return
    ref = start_limit_server(stack, secret, limit_port, workdir)
    out = workdir / "compare.jsonl"
    common = [
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--connections",
        str(args.connections),
        "--out",
        str(out),
    ]
    log(f"../shared/bench/run.sh: limit server, then tasks-api -> {out}")
    subprocess.run(
        [
            str(run_sh),
            f"http://127.0.0.1:{limit_port}",
            str(tokens),
            "--server-pid",
            str(ref.pid),
            "--label",
            "limit-server",
            *common,
        ],
        check=True,
    )
    subprocess.run(
        [
            str(run_sh),
            base,
            str(tokens),
            "--server-pid",
            str(api.pid),
            "--label",
            "tasks-api",
            *common,
        ],
        check=True,
    )
    report = subprocess.run(
        ["python3", str(SHARED_BENCH / "report.py"), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    print("\n" + report.stdout, flush=True)
    (workdir / "compare.md").write_text(report.stdout)
    # The reference is idle from here on; it shares CPU 0, so stop it now.
    ref.send_signal(signal.SIGINT)
    ref.wait(10)


def remote(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk (make bench does it)")
    if not args.tokens:
        raise SystemExit("BASE_URL needs TOKENS=<tokens.json> (bench/README.md: the format)")
    base = args.base_url.rstrip("/")
    if not is_loopback(base):
        log(f"target {base} is not on this machine: the write scenarios change its data")
    workdir = Path(tempfile.mkdtemp(prefix="tasks-bench-"))
    spec = Spec(json.loads(Path(args.tokens).read_text()))
    pid = int(env("BENCH_SERVER_PID", "0")) or None
    if args.out is None:
        args.out = str(workdir / "results.jsonl")
    runner = Runner(base, spec, args, pid, workdir)
    results = run_scenarios(runner, args.scenario_list)
    if args.soak:
        results.append(soak(runner, args.soak))
    print(f"\n## {base}\n", flush=True)
    print(table(results), flush=True)
    print(f"\nresults: {args.out}", flush=True)
    return 0


def make_tokens(args: argparse.Namespace) -> int:
    """A tokens file for a running API: users and tokens given, task ids read from the API."""
    base = args.base_url.rstrip("/")
    if args.users_file:
        users = json.loads(Path(args.users_file).read_text())
    else:
        secret = os.environ.get("JWT_SECRET", "")
        if len(secret) < 32 or not args.user:
            raise SystemExit("give --users-file, or --user U (repeatable) with JWT_SECRET set")
        users = [{"user_id": u, "token": seedmod.mint(u, secret, 1.0)} for u in args.user]
    rng = random.Random(1)
    out = []
    for u in users:
        path = seedmod.PATHS["list_1000"].format(user_id=urllib.parse.quote(u["user_id"], safe=""))
        status, _, body = http("GET", base + path, u["token"])
        if status != 200:
            raise SystemExit(f"GET {path}: {status} {body[:200]!r}")
        tasks = [
            (t["id"], bool(t["is_completed"]), int(t["version"])) for t in json.loads(body)["data"]
        ]
        if len(tasks) < 100:
            log(f"{u['user_id']}: only {len(tasks)} tasks; the write scenarios need ~100 per user")
        out.append(seedmod.user_entry(u["user_id"], u["token"], tasks, rng))
    meta = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": f"tokens {base}",
        "users": len(out),
    }
    Path(args.out).write_text(json.dumps(seedmod.tokens_document(out, meta)))
    log(f"wrote {args.out}: {len(out)} users")
    return 0


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["tokens"]:
        tp = argparse.ArgumentParser(prog="run.py tokens", description=make_tokens.__doc__)
        tp.add_argument("--base-url", required=True)
        tp.add_argument("--users-file", help='JSON: [{"user_id": ..., "token": ...}, ...]')
        tp.add_argument("--user", action="append", help="mint for this user with $JWT_SECRET")
        tp.add_argument("--out", required=True)
        return make_tokens(tp.parse_args(argv[1:]))

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--compare",
        action="store_true",
        help="also run ../shared/bench against its limit server and us",
    )
    ap.add_argument("--compare-only", action="store_true", help="with --compare: only that")
    ap.add_argument("--base-url", default=env("BASE_URL", ""), help="a running API [BASE_URL]")
    ap.add_argument("--tokens", default=env("TOKENS", ""), help="its tokens file [TOKENS]")
    ap.add_argument("--scenarios", default=env("BENCH_SCENARIOS", DEFAULT_SCENARIOS))
    ap.add_argument("--duration", type=int, default=int(env("BENCH_DURATION", "15")))
    ap.add_argument("--warmup", type=int, default=int(env("BENCH_WARMUP", "3")))
    ap.add_argument("--connections", type=int, default=int(env("BENCH_CONNECTIONS", "64")))
    ap.add_argument("--threads", type=int, default=int(env("BENCH_THREADS", "1")))
    ap.add_argument("--wrk-cpu", default=env("BENCH_WRK_CPU", "1"))
    ap.add_argument("--timeout", default=env("BENCH_TIMEOUT", "10s"), help="wrk's per request")
    ap.add_argument("--soak", type=int, default=int(env("BENCH_SOAK", "0")))
    ap.add_argument("--profile", action="store_true", default=env("BENCH_PROFILE", "0") == "1")
    ap.add_argument(
        "--sql", action=argparse.BooleanOptionalAction, default=env("BENCH_SQL", "1") == "1"
    )
    ap.add_argument("--keep", action="store_true", default=env("BENCH_KEEP", "0") == "1")
    ap.add_argument("--streams", action="store_true", default=env("BENCH_STREAMS", "0") == "1")
    ap.add_argument("--users", type=int, default=int(env("BENCH_USERS", "100")))
    ap.add_argument("--tasks", type=int, default=int(env("BENCH_TASKS", "1000")))
    ap.add_argument("--out", default=env("BENCH_OUT", "") or None, help="append JSON lines here")
    ap.add_argument("--label", default=env("BENCH_LABEL", "tasks-api"))
    args = ap.parse_args(argv)
    args.scenario_list = parse_scenarios(args.scenarios, args.connections)

    def on_term(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    if args.base_url:
        return remote(args)
    return local(args)


if __name__ == "__main__":
    sys.exit(main())
