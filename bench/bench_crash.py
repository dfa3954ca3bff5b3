#!/usr/bin/env python3
"""The crash path, measured: a clean default suite against the same suite on a crashing kernel.

    .venv/bin/python bench/bench_crash.py [--build DIR] [--out DIR] [--json FILE] [--skip-default]

Cases, each a real `zstest` command (TCG, this host):
- clean: `boot-and-run --suite default` on the build (default: the tests' shared base build);
- crash-migrate: `run --series kernel-patches/fixtures/crash-migrate --suite default` (a
  one-line zs_page_migrate() bug: VM_BUG_ON_PAGE on the first zsmalloc migration);
- one LKDTM kind each (oops, BUG, WARNING, soft lockup, hung task, panic) in the faults suite,
  followed by one more test (`test_after`) that must run in a fresh guest.
For each: exit code, wall time, results.json duration, verdict_after_splat_s (first fatal
report -> final results.json), the guests booted, and the host load at the start.
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
CRASH_SERIES = REPO / "kernel-patches" / "fixtures" / "crash-migrate"
KINDS = {"oops": "test_lkdtm_oops and not then", "bug": "test_lkdtm_bug",
         "warning": "test_lkdtm_warning and not wait", "soft lockup": "test_lkdtm_softlockup",
         "hung task": "test_lkdtm_hung_task", "panic": "test_panic"}


def zstest(*args: str) -> tuple[int, float, str]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "zstest.cli", *args], cwd=REPO,
                          capture_output=True, text=True)
    return proc.returncode, time.monotonic() - start, proc.stderr


def case(name: str, out: Path, args: list[str]) -> dict:
    load = os.getloadavg()[0]
    code, wall, err = zstest(*args, "--out", str(out))
    row = {"case": name, "exit": code, "wall_s": round(wall, 1), "load": round(load, 1)}
    try:
        data = json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        row["error"] = err.strip().splitlines()[-1:] if err.strip() else ["no results.json"]
        return row
    row.update({"duration_s": data.get("duration_s"), "tests": len(data.get("tests") or []),
                "failed": sum(t["status"] == "failed" for t in data.get("tests") or []),
                "verdict_after_splat_s": data.get("verdict_after_splat_s"),
                "guests": len((data.get("vm") or {}).get("boots") or []),
                "cause": data.get("cause")})
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", type=Path,
                    default=Path.home() / ".cache/zstest/test-builds/default")
    ap.add_argument("--out", type=Path, default=Path("/tmp/zstest-bench-crash"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--skip-default", action="store_true",
                    help="only the LKDTM kinds (no default-suite runs)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    if not args.skip_default:
        rows.append(case("clean default suite", args.out / "clean",
                         ["boot-and-run", "--build", str(args.build), "--suite", "default"]))
        rows.append(case("crash-migrate, default suite", args.out / "crash",
                         ["run", "--series", str(CRASH_SERIES), "--suite", "default",
                          "--build-out", str(args.out / "crash-build")]))
    for kind, keyword in KINDS.items():
        rows.append(case(f"LKDTM {kind} + 1 test", args.out / kind.replace(" ", "-"),
                         ["boot-and-run", "--build", str(args.build), "--suite", "faults",
                          "-k", f"{keyword} or test_after"]))
    cols = ["case", "exit", "wall_s", "duration_s", "tests", "failed", "verdict_after_splat_s",
            "guests", "cause", "load"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
