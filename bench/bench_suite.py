#!/usr/bin/env python3
"""A suite's time on one build: `zstest boot-and-run` N times, per test and in total.

    .venv/bin/python bench/bench_suite.py [--build DIR] [--suite default] [--runs 3] [--json FILE]

Each run is the real command a user types (`zstest boot-and-run --build DIR --suite S --out
TMP`); its results.json gives the suite's own time and each test's. Printed: the host's load
average before and after every run (a figure without its load says nothing on a shared host),
the suite's time per run and its median, and the median per test, longest first. Issue 28's
budget is the default suite under 180 s on a quiet host.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# the console script beside this interpreter (the venv's), as a user runs it
ZSTEST = [str(Path(sys.executable).with_name("zstest"))]


def load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def one_run(build: Path, suite: str, out: Path) -> dict:
    before = load()
    start = time.monotonic()
    proc = subprocess.run(ZSTEST + ["boot-and-run", "--build", str(build), "--suite", suite,
                                    "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - start
    if not (out / "results.json").is_file():
        raise SystemExit(f"bench_suite: boot-and-run exited {proc.returncode} with no results.json:\n"
                         f"{proc.stderr[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    tests = {t["name"]: t.get("duration_s") or 0.0 for t in results.get("tests", [])}
    outcomes: dict = {}
    for t in results.get("tests", []):
        outcomes[t.get("status", "?")] = outcomes.get(t.get("status", "?"), 0) + 1
    return {"exit": proc.returncode, "wall_s": round(wall, 1),
            "suite_s": results.get("duration_s"), "tests_s": round(sum(tests.values()), 1),
            "boot_to_ssh_s": results.get("boot_to_ssh_s"),
            "outcomes": outcomes, "tests": tests, "load_before": before, "load_after": load()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", type=Path,
                    default=Path(os.environ.get("ZSTEST_CACHE", Path.home() / ".cache/zstest"))
                    / "test-builds" / "default")
    ap.add_argument("--suite", default="default")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = ap.parse_args()
    if not (args.build / "build.json").is_file():
        print(f"bench_suite: {args.build} has no build.json (build it with `zstest build`).",
              file=sys.stderr)
        return 2
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmp:
        for i in range(args.runs):
            run = one_run(args.build, args.suite, Path(tmp) / f"run{i}")
            runs.append(run)
            print(f"run {i + 1}: exit {run['exit']}, suite {run['suite_s']} s (tests {run['tests_s']} s, "
                  f"boot to SSH {run['boot_to_ssh_s']} s), wall {run['wall_s']} s, "
                  f"{run['outcomes']}, load {run['load_before']} -> {run['load_after']}", flush=True)
    names = sorted({n for r in runs for n in r["tests"]},
                   key=lambda n: -statistics.median(r["tests"].get(n, 0.0) for r in runs))
    print(f"\n{args.suite}: median suite time {statistics.median(r['suite_s'] for r in runs):.1f} s, "
          f"median wall (boot and teardown included) {statistics.median(r['wall_s'] for r in runs):.1f} s "
          f"over {len(runs)} runs")
    for name in names:
        values = [r["tests"].get(name, 0.0) for r in runs]
        print(f"  {statistics.median(values):7.1f} s  {name}  ({', '.join(f'{v:.1f}' for v in values)})")
    if args.json:
        args.json.write_text(json.dumps({"build": str(args.build), "suite": args.suite,
                                         "runs": runs}, indent=1) + "\n")
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
