#!/usr/bin/env python3
"""Coverage-guided mutate against the whole selection: same verdicts, and the time each takes.

    .venv/bin/python bench/bench_mutate_guided.py --out DIR [--function zs_page_migrate]
        [--suite migration] [--operators delete,negate,...] [--compare-only]

Runs `zstest mutate --file mm/zsmalloc.c --function F --suite S` twice on the same kernel, as
a user types it: DIR/unguided (`--no-guided`: every mutant runs the whole selection) and then
DIR/guided (the baseline's coverage picks, per mutant, the tests that execute its line, most
likely killer first, stopping at the first kill). An existing DIR/<mode> is resumed by mutate
itself, so an interrupted benchmark goes on where it stopped. `--compare-only` reads the two
mutate.json files without running anything.

Printed: per mutant the verdict both ways (and the killing test), the seconds of build and of
boot + tests both ways; then the totals, the mutate.json duration_s of each run, and the load
average before and after each run. A verdict that differs is listed and makes the exit code 1:
guiding must never change what the suite decides.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ZSTEST = [str(Path(sys.executable).with_name("zstest"))]
OPERATORS = "delete,negate,relational,off_by_one,skip_check,swap_args"


def load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def run_mode(out: Path, args, guided: bool) -> None:
    argv = ZSTEST + ["mutate", "--file", args.file, "--function", args.function,
                     "--operators", args.operators, "--suite", args.suite, "--out", str(out)]
    if not guided:
        argv.append("--no-guided")
    before, start = load(), time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    print(f"{'guided' if guided else 'unguided'}: exit {proc.returncode}, wall "
          f"{time.monotonic() - start:.1f} s, load {before} -> {load()}", flush=True)
    if not (out / "mutate.json").is_file():
        sys.exit(f"no mutate.json in {out}:\n{proc.stderr[-2000:]}")


def read(out: Path) -> dict:
    return json.loads((out / "mutate.json").read_text())


def run_seconds(mutant: dict) -> float:
    return sum(r.get("run_s") or 0.0 for r in mutant.get("runs") or []) or (mutant.get("run_s") or 0.0)


def compare(unguided: dict, guided: dict) -> int:
    by_id = {m["id"]: m for m in guided["mutants"]}
    differ, rows = [], []
    totals = {"ub": 0.0, "ur": 0.0, "gb": 0.0, "gr": 0.0}
    for u in unguided["mutants"]:
        g = by_id.get(u["id"])
        if g is None or g.get("verdict") is None or u.get("verdict") is None:
            continue
        same = (u["verdict"], u.get("test")) == (g["verdict"], g.get("test")) or \
            u["verdict"] == g["verdict"] != "killed"
        if u["verdict"] != g["verdict"]:
            differ.append((u["id"], u["verdict"], g["verdict"]))
        totals["ub"] += u.get("build_s") or 0.0
        totals["ur"] += run_seconds(u)
        totals["gb"] += g.get("build_s") or 0.0
        totals["gr"] += run_seconds(g)
        tests = [t.split("::")[-1] for r in g.get("runs") or [] for t in r.get("tests") or []]
        rows.append(f"| {u['id']} {u['operator']} :{u['line']} | {u['verdict']}"
                    f"{'' if same else ' / ' + g['verdict']} | {(u.get('test') or '').split('::')[-1]}"
                    f" | {u.get('build_s') or 0:.1f} + {run_seconds(u):.1f}"
                    f" | {g.get('build_s') or 0:.1f} + {run_seconds(g):.1f} | {', '.join(tests)} |")
    print("| mutant | verdict | killed by (unguided) | unguided: build + tests s "
          "| guided: build + tests s | guided: tests run |")
    print("|---|---|---|---:|---:|---|")
    print("\n".join(rows))
    print(f"\njudged both ways: {len(rows)}; build {totals['ub']:.0f} s vs {totals['gb']:.0f} s; "
          f"boot + tests {totals['ur']:.0f} s vs {totals['gr']:.0f} s")
    print(f"mutate.json duration_s: unguided {unguided.get('duration_s')}, "
          f"guided {guided.get('duration_s')}")
    print(f"summaries: unguided {unguided.get('summary')}\n           guided {guided.get('summary')}")
    for mid, a, b in differ:
        print(f"VERDICT DIFFERS: {mid}: unguided {a}, guided {b}")
    return 1 if differ else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--file", default="mm/zsmalloc.c")
    ap.add_argument("--function", default="zs_page_migrate")
    ap.add_argument("--suite", default="migration")
    ap.add_argument("--operators", default=OPERATORS)
    ap.add_argument("--compare-only", action="store_true")
    args = ap.parse_args()
    if not args.compare_only:
        run_mode(args.out / "unguided", args, guided=False)
        run_mode(args.out / "guided", args, guided=True)
    return compare(read(args.out / "unguided"), read(args.out / "guided"))


if __name__ == "__main__":
    sys.exit(main())
