#!/usr/bin/env python3
"""`make bench-scale` (issue 14): the same scenarios at three data sizes, one table.

    bench/scale.py [--sizes 10000x1000,100x1000,2x100000] [--out results.jsonl]

Runs bench/run.py once per size (each with its own throw-away cluster, seed and API; the
environment's BENCH_* knobs pass through), appends every result to one JSON-lines file
labelled by size, and prints req/s and p50 per scenario side by side, with each size's ratio
to the first size given in --base (100x1000). Ratios within one session are what to quote:
this VM's speed moves between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCENARIOS = (
    "get_one,list_100,list_100_pending,list_1000,create,update,update_ifmatch,complete,"
    "complete_noop,stats,list_q,list_tag,get_one@1,list_100@1,list_100_pending@1,stats@1,"
    "list_q@1,list_tag@1,list_1000@1"
)


def table(rows: list[dict[str, Any]], sizes: list[str], base: str) -> str:
    by = {(r["label"], r["scenario"]): r for r in rows}
    keys = list(dict.fromkeys(r["scenario"] for r in rows))
    head = "| scenario | " + " | ".join(f"{s} req/s | {s} p50 ms" for s in sizes) + " |"
    out = [head, "|---" * (1 + 2 * len(sizes)) + "|"]
    for name in keys:
        cells = []
        ref = by.get((base, name))
        for size in sizes:
            r = by.get((size, name))
            if r is None:
                cells += ["", ""]
                continue
            rps, p50 = r["rps"], r["p50_ms"]
            if ref is not None and size != base and ref["rps"] and ref["p50_ms"]:
                cells += [
                    f"{rps:,.0f} ({rps / ref['rps']:.2f}x)",
                    f"{p50:.2f} ({p50 / ref['p50_ms']:.2f}x)",
                ]
            else:
                cells += [f"{rps:,.0f}", f"{p50:.2f}"]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sizes = os.environ.get("BENCH_SIZES", "10000x1000,100x1000,2x100000")
    ap.add_argument("--sizes", default=sizes, help="users x tasks per user, comma list")
    ap.add_argument("--base", default="100x1000")
    ap.add_argument("--out", default=os.environ.get("BENCH_OUT") or None)
    args = ap.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    out = Path(args.out or tempfile.mkstemp(prefix="tasks-bench-scale-", suffix=".jsonl")[1])
    for size in sizes:
        users, tasks = size.split("x")
        env = {
            **os.environ,
            "BENCH_USERS": users,
            "BENCH_TASKS": tasks,
            "BENCH_LABEL": size,
            "BENCH_OUT": str(out),
            "BENCH_SCENARIOS": os.environ.get("BENCH_SCENARIOS", SCENARIOS),
            "BENCH_SQL": os.environ.get("BENCH_SQL", "0"),
        }
        print(f"[scale {time.strftime('%H:%M:%S')}] {size}", flush=True)
        subprocess.run([sys.executable, str(HERE / "run.py")], env=env, check=True)
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    print(f"\n## Three data sizes, one session (ratios to {args.base})\n")
    print(table(rows, sizes, args.base))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
