#!/usr/bin/env python3
"""Per-arch benchmark: cold cross build, boot to SSH and the default suite under TCG.

    .venv/bin/python bench/bench_arches.py [--arch arm64 --arch arm64:64k --arch i386]
                                           [--kernel 6.1 --kernel 6.12] [--boots 5] [--json FILE]

For each arch (ARCH or ARCH:PAGESIZE) and each Debian kernel tree it runs the real CLI:
`zstest build --arch ...` (the build's own duration and unit count from build.json; cold only
when the object dir is new: the script says which), then `zstest boot-and-run --suite boot`
N times for the boot-to-SSH median, then `zstest boot-and-run --suite default` once, and prints
one table row per (arch, tree): build s, units, boot-to-SSH median, default-suite s, passed /
failed / skipped, and the skip reasons. These are the figures docs/PERFORMANCE.md's "Arches"
section quotes; the runs that CI cannot afford are here: every cross build (CI builds no foreign kernel;
`ci/test --run-too-slow` adds tests/test_arches.py's boot tests), arm64 with 64K pages,
the 6.12 trees.
Builds go to ~/.cache/zstest/bench/arches/<arch>-<tree>.
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
sys.path.insert(0, str(REPO))

from zstest.cache import cache_dir, default_kernel_tree  # noqa: E402


def zstest(*args, timeout=4 * 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zstest.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def one(arch: str, page_size: str | None, tree_version: str, boots: int) -> dict:
    label = f"{arch}{'-' + page_size if page_size else ''}-{tree_version}"
    build = cache_dir("bench", "arches", label)
    row = {"arch": arch, "page_size": page_size or "default", "kernel": tree_version}
    argv = ["build", "--arch", arch, "--kernel", default_kernel_tree(tree_version), "--out", build,
            "--quiet"]
    if page_size:
        argv += ["--page-size", page_size]
    start = time.monotonic()
    proc = zstest(*argv)
    row["build_wall_s"] = round(time.monotonic() - start, 1)
    try:
        manifest = json.loads((build / "build.json").read_text())
    except (OSError, ValueError):
        manifest = {}
    row["build_status"] = manifest.get("status") or f"exit {proc.returncode}"
    row["build_make_s"] = (manifest.get("durations") or {}).get("build")
    row["ccache_hits"] = (manifest.get("ccache") or {}).get("hits")
    row["ccache_misses"] = (manifest.get("ccache") or {}).get("misses")
    if proc.returncode != 0:
        row["error"] = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
        return row
    to_ssh = []
    with tempfile.TemporaryDirectory(prefix="zstest-bench-arch-") as tmp:
        for i in range(boots):
            out = Path(tmp) / f"boot{i}"
            zstest("boot-and-run", "--build", build, "--suite", "boot", "--out", out,
                   "--quiet", timeout=1800)
            try:
                to_ssh.append(json.loads((out / "results.json").read_text())["boot_to_ssh_s"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
        out = Path(tmp) / "default"
        start = time.monotonic()
        proc = zstest("boot-and-run", "--build", build, "--suite", "default", "--out", out,
                      "--quiet", timeout=3 * 3600)
        row["default_wall_s"] = round(time.monotonic() - start, 1)
        try:
            results = json.loads((out / "results.json").read_text())
        except (OSError, ValueError):
            results = {}
    row["boot_to_ssh_median_s"] = round(statistics.median(to_ssh), 2) if to_ssh else None
    row["default_exit"] = proc.returncode
    tests = results.get("tests") or []
    for status in ("passed", "failed", "skipped", "error"):
        row[status] = sum(1 for t in tests if t.get("status") == status)
    row["skips"] = sorted({f"{t['name']}: {t.get('message', '')[:120]}" for t in tests
                           if t.get("status") == "skipped"})
    row["failures"] = [f"{t['name']}: {t.get('message', '')[:200]}" for t in tests
                       if t.get("status") in ("failed", "error")]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", action="append", help="ARCH or ARCH:PAGESIZE (repeatable)")
    ap.add_argument("--kernel", action="append", help="6.1 or 6.12 (repeatable)")
    ap.add_argument("--boots", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    load = os.getloadavg()[0]
    for spec in args.arch or ["arm64", "arm64:64k", "i386"]:
        arch, _, page = spec.partition(":")
        for version in args.kernel or ["6.1"]:
            row = one(arch, page or None, version, args.boots)
            row["load_before"] = round(load, 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
            load = os.getloadavg()[0]
    print("\n| arch | page | kernel | build (make) s | boot to SSH (median) s | default suite s | "
          "passed / failed / skipped |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arch']} | {r['page_size']} | {r['kernel']} | {r.get('build_make_s')} | "
              f"{r.get('boot_to_ssh_median_s')} | {r.get('default_wall_s')} | "
              f"{r.get('passed')} / {r.get('failed')} / {r.get('skipped')} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
