#!/usr/bin/env python3
"""The fuzz tests (tests/test_fuzz_*.py) run long: new random examples, many more of them.

    .venv/bin/python bench/bench_fuzz.py [--scale 20] [--rounds 1] [--json FILE] [-k EXPR]

CI runs each property with a small, derandomized set of examples (tests/fuzzing.py). This runs
the same properties with ZSTEST_FUZZ_SCALE=<scale> (every max_examples multiplied) and
ZSTEST_FUZZ_RANDOM=1 (examples drawn afresh each round), one pytest per round, and reports per
test file: wall time, examples asked, passed or the first failure (hypothesis prints the
failing example and a @reproduce_failure line to replay it). The host load is recorded at the
start and end of each round: the time budgets are relative, the wall times are not.
Exit 0 when every round passed, 1 when a property failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILES = sorted(p.name for p in (REPO / "tests").glob("test_fuzz_*.py"))


def examples_of(path: Path, scale: float) -> int:
    """Examples asked by a file's @fuzz(n) decorators at this scale."""
    return sum(max(1, int(int(n) * scale)) for n in re.findall(r"@fuzz\((\d+)\)", path.read_text()))


def run_file(name: str, scale: float, keyword: str) -> dict:
    env = {**os.environ, "ZSTEST_FUZZ_SCALE": str(scale), "ZSTEST_FUZZ_RANDOM": "1"}
    argv = [sys.executable, "-m", "pytest", f"tests/{name}", "-q", "-p", "no:cacheprovider"]
    if keyword:
        argv += ["-k", keyword]
    load = os.getloadavg()[0]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    row = {"file": name, "examples": examples_of(REPO / "tests" / name, scale),
           "wall_s": round(time.monotonic() - start, 1), "load_start": round(load, 1),
           "load_end": round(os.getloadavg()[0], 1), "exit": proc.returncode,
           "summary": (proc.stdout.strip().splitlines() or [""])[-1]}
    if proc.returncode not in (0, 5):
        row["failure"] = "\n".join(l for l in proc.stdout.splitlines()
                                   if l.startswith(("E ", "FAILED", "@reproduce_failure"))
                                   or "Falsifying example" in l)[-4000:]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=20.0, help="examples per property, times CI's")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("-k", dest="keyword", default="", help="pytest -k expression")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    rows = []
    for round_no in range(1, args.rounds + 1):
        for name in FILES:
            row = run_file(name, args.scale, args.keyword)
            row["round"] = round_no
            rows.append(row)
            print(f"round {round_no} {name:<28} {row['examples']:>6} examples "
                  f"{row['wall_s']:>7.1f} s  load {row['load_start']}->{row['load_end']}  "
                  f"{row['summary']}", flush=True)
            if "failure" in row:
                print(row["failure"], flush=True)
    total = sum(r["wall_s"] for r in rows)
    print(f"total {sum(r['examples'] for r in rows)} examples in {total:.1f} s; "
          f"{sum(1 for r in rows if 'failure' in r)} file(s) failed")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any("failure" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
