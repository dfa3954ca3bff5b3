#!/usr/bin/env python3
"""Benchmark of the build stage; prints a Markdown table for docs/PERFORMANCE.md.

  cold      `zstest build` (base profile, 6.1) in a fresh cache: empty ccache, new O= dir
  raw       `make O= olddefconfig && make -jN bzImage modules` of the same .config and
            the same source, plain gcc: zstest's overhead is cold / raw
  incr      `zstest build --series <one-line change to mm/zsmalloc.c>` after the cold build
  revisit   revisions A, B, A (two different one-line patches); the second A is served by
            make + ccache
  debuginfo the same cold make with CONFIG_DEBUG_INFO added (optional: --debug-info)

Runs in its own cache (--cache, default /tmp/zstest-bench-cache) so it never touches the
user's ccache; the kernel source is linked from the real cache. Takes a while: run it
when the machine is otherwise idle.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sh(argv, env=None, cwd=None, log=None):
    start = time.monotonic()
    with open(log, "a") if log else open(os.devnull, "w") as out:
        rc = subprocess.run([str(a) for a in argv], env=env, cwd=cwd, stdout=out,
                            stderr=subprocess.STDOUT).returncode
    return rc, time.monotonic() - start


def zstest(args, env, log):
    return sh([sys.executable, "-m", "zstest.cli", "build", *args], env=env, cwd=REPO, log=log)


def one_line_patch(src: Path, out: Path, marker: str) -> Path:
    """A git-format patch adding one line to mm/zsmalloc.c (after the includes)."""
    text = (src / "mm" / "zsmalloc.c").read_text()
    lines = text.splitlines(keepends=True)
    idx = next(i for i, l in enumerate(lines) if l.startswith("#include")) + 1
    new = lines[:idx] + [f"/* zstest bench {marker} */\n"] + lines[idx:]
    a, b = out / "a", out / "b"
    for d in (a, b):
        (d / "mm").mkdir(parents=True, exist_ok=True)
    (a / "mm" / "zsmalloc.c").write_text(text)
    (b / "mm" / "zsmalloc.c").write_text("".join(new))
    diff = subprocess.run(["diff", "-u", "a/mm/zsmalloc.c", "b/mm/zsmalloc.c"], cwd=out,
                          capture_output=True, text=True).stdout
    patch = out / f"{marker}.patch"
    patch.write_text(
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        "From: Bench <bench@localhost>\nDate: Sat, 1 Jan 2000 00:00:00 +0000\n"
        f"Subject: [PATCH] zsmalloc: bench {marker}\n\nOne line.\n\nSigned-off-by: Bench <bench@localhost>\n"
        f"---\n{diff}--\n2.39.2\n\n")
    return patch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/zstest-bench-cache"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-raw", action="store_true")
    ap.add_argument("--cold-from", type=Path,
                    help="take the cold numbers from this build dir (a cold `zstest build` made "
                         "earlier, e.g. the test fixture's) and use its cache instead of a fresh one")
    ap.add_argument("--debug-info", action="store_true", help="also measure a DEBUG_INFO cold build")
    ap.add_argument("--json", type=Path, help="write the numbers here too")
    args = ap.parse_args()

    sys.path.insert(0, str(REPO))
    from zstest.cache import default_kernel_tree
    results = {"jobs": args.jobs}
    if args.cold_from:
        # Reuse a cold build made in the real cache (its ccache was cold for that worktree).
        env = dict(os.environ)
        work = Path(tempfile.mkdtemp(prefix="zstest-bench-"))
        log = work / "bench.log"
        cold_dir = args.cold_from.resolve()
    else:
        real_src = default_kernel_tree("6.1")
        cache = args.cache.resolve()
        if cache.exists():
            shutil.rmtree(cache)
        (cache / "src").mkdir(parents=True)
        (cache / "src" / "linux-source-6.1").symlink_to(real_src)
        env = dict(os.environ, ZSTEST_CACHE=str(cache))
        work = cache / "bench"
        work.mkdir()
        log = work / "bench.log"
        # Import + worktree once, outside the timed cold build (the tree stage's cost).
        sys.stderr.write("bench: preparing worktree (import of the plain tree)\n")
        rc, t = sh([sys.executable, "-c", "from zstest.tree import prepare_worktree;"
                    "from zstest.cache import default_kernel_tree;"
                    "prepare_worktree(default_kernel_tree('6.1')).release()"], env=env, cwd=REPO,
                   log=log)
        results["worktree_first_s"] = round(t, 1)
        sys.stderr.write("bench: cold zstest build\n")
        rc, t = zstest(["-j", args.jobs, "--out", work / "cold"], env, log)
        assert rc == 0, f"cold build failed, see {log}"
        cold_dir = work / "cold"
    cold = json.loads((cold_dir / "build.json").read_text())
    results["cold_s"] = cold["duration_s"]
    results["cold_make_s"] = cold["durations"].get("build")
    results["cold_config_s"] = cold["durations"].get("config")
    results["cold_worktree_s"] = cold["durations"].get("worktree")
    results["cold_ccache_misses"] = cold["ccache"]["misses"]
    results["cold_ccache_hits"] = cold["ccache"]["hits"]
    src = Path(cold["kernel"]["worktree"])

    if not args.skip_raw:
        sys.stderr.write("bench: raw make of the same .config\n")
        raw = work / "raw-obj"
        raw.mkdir()
        shutil.copy(cold_dir / ".config", raw / ".config")
        start = time.monotonic()
        rc1, _ = sh(["make", "-C", src, f"O={raw}", "ARCH=x86_64", "olddefconfig"], log=log)
        rc2, _ = sh(["make", "-C", src, f"O={raw}", "ARCH=x86_64", f"-j{args.jobs}", "bzImage",
                     "modules"], log=log)
        assert rc1 == 0 and rc2 == 0, f"raw make failed, see {log}"
        results["raw_s"] = round(time.monotonic() - start, 1)
        # The worktree import is the tree stage's one-time cost, not the build's.
        zs = results["cold_s"] - (results["cold_worktree_s"] or 0)
        results["ratio_cold_vs_raw"] = round(zs / results["raw_s"], 3)
        shutil.rmtree(raw)

    pa = one_line_patch(src, work, "A")
    pb = one_line_patch(src, work, "B")
    sys.stderr.write("bench: incremental (one-line change to mm/zsmalloc.c)\n")
    rc, t = zstest(["--series", pa, "--out", work / "incr"], env, log)
    assert rc == 0, f"incremental build failed, see {log}"
    results["incremental_s"] = round(t, 1)
    results["incremental_durations"] = json.loads((work / "incr" / "build.json").read_text())["durations"]

    sys.stderr.write("bench: revisit A, B, A\n")
    for name, patch in (("B", pb), ("A2", pa)):
        rc, t = zstest(["--series", patch, "--out", work / f"rev-{name}"], env, log)
        assert rc == 0, f"revisit build {name} failed, see {log}"
        manifest = json.loads((work / f"rev-{name}" / "build.json").read_text())
        results[f"revisit_{name}_s"] = round(t, 1)
        results[f"revisit_{name}_ccache_hits"] = manifest["ccache"]["hits"]

    if args.debug_info:
        sys.stderr.write("bench: cold build with DEBUG_INFO\n")
        frag = work / "debuginfo.config"
        frag.write_text("# include: base\nCONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT=y\n"
                        "# CONFIG_DEBUG_INFO_NONE is not set\n")
        rc, t = zstest(["--config", frag, "-j", args.jobs, "--out", work / "dbg"], env, log)
        assert rc == 0, f"DEBUG_INFO build failed, see {log}"
        dbg = json.loads((work / "dbg" / "build.json").read_text())
        results["debug_info_cold_s"] = round(t, 1)
        results["debug_info_make_s"] = dbg["durations"].get("build")
        results["debug_info_vmlinux_mb"] = round((work / "dbg" / "vmlinux").stat().st_size / 2**20, 1)
        results["vmlinux_mb"] = round((cold_dir / "vmlinux").stat().st_size / 2**20, 1)

    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
