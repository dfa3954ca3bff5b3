#!/usr/bin/env python3
"""Noise of the perf suite: the same kernel booted N times, each metric's spread.

    .venv/bin/python bench/bench_perf_noise.py [--build DIR] [--runs 10] [--suite perf]
                                               [--out DIR] [--write-doc] [--json FILE]
    .venv/bin/python bench/bench_perf_noise.py --from OUT [--write-doc]   # the table again

Runs `zstest boot-and-run --suite perf` N times on one unchanged build (the shared test
build by default), one guest at a time, and per metric of results.json's metrics.perf
writes: mean, standard deviation, coefficient of variation, whether every run gave the same
value (exact), and the minimum detectable change with 5 runs a side: the change Welch's
t-test (two-sided, alpha 0.05) finds with 80 % power given the measured sd,
(t(0.975, 8) + t(0.8, 8)) * sd * sqrt(2 / 5), as % of the mean.

Runs alternate between OUT/a/run-NN and OUT/b/run-NN (as compare --perf interleaves its
sides); when `zstest compare --perf` exists, OUT/a is compared with OUT/b (the same kernel on
both sides: any "regressed" or "improved" is a false positive) and the count of flagged
verdicts is written; otherwise the table says so. --write-doc replaces the
"### Perf suite: noise" part of docs/PERFORMANCE.md (the "## Perf suite" section's), no other.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from zstest.cache import cache_dir  # noqa: E402
from zstest.errors import ZstestError  # noqa: E402
from zstest.manifests import load_results  # noqa: E402
from zstest.proc import CommandError, run  # noqa: E402

SECTION = "### Perf suite: noise"
RUNS_A_SIDE = 5


def zstest(*args, timeout: float) -> "object":
    return run([sys.executable, "-m", "zstest.cli", *map(str, args)], timeout=timeout,
               check=False)


def one_run(build: Path, suite: str, out: Path) -> dict:
    load = os.getloadavg()[0]
    start = time.monotonic()
    proc = zstest("boot-and-run", "--build", build, "--suite", suite, "--out", out, timeout=7200)
    run = read_run(out)
    run.update({"exit": proc.returncode, "seconds": round(time.monotonic() - start, 1),
                "load_avg": round((load + os.getloadavg()[0]) / 2, 2)})
    (out / "bench-run.json").write_text(json.dumps(run, indent=2) + "\n")
    return run


def read_run(out: Path) -> dict:
    """One run's perf metrics (and the tests that did not pass) from its results dir."""
    results = load_results(out)
    metrics = {}
    for test in results.tests:
        for name, m in ((test.get("metrics") or {}).get("perf") or {}).items():
            metrics[name] = m
    return {"dir": str(out), "metrics": metrics,
            "failed": [t["name"] for t in results.tests if t["status"] not in ("passed", "skipped")]}


def runs_from(out: Path) -> list:
    """The runs a previous invocation left under out (its bench-run.json files)."""
    files = sorted(out.glob("[ab]/run-*/bench-run.json"),
                   key=lambda p: (p.parent.name, p.parent.parent.name))
    return [json.loads(p.read_text()) for p in files]


def min_detectable_pct(sd: float, mean: float, n: int = RUNS_A_SIDE) -> float:
    from scipy import stats
    df = 2 * n - 2
    change = (stats.t.ppf(0.975, df) + stats.t.ppf(0.8, df)) * sd * math.sqrt(2 / n)
    return 100 * change / abs(mean) if mean else float("inf")


def summarize(runs: list) -> list:
    names = sorted({n for r in runs for n in r["metrics"]})
    rows = []
    for name in names:
        seen = [r["metrics"][name] for r in runs if name in r["metrics"]]
        values = [m["value"] for m in seen]
        mean = statistics.fmean(values)
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append({"metric": name, "unit": seen[0]["unit"], "better": seen[0]["better"],
                     "runs": len(values), "mean": mean, "sd": sd,
                     "cv_pct": 100 * sd / abs(mean) if mean else 0.0,
                     "identical": len(set(values)) == 1,
                     "marked_exact": all(m["exact"] for m in seen),
                     "mdc_pct": min_detectable_pct(sd, mean) if len(values) > 1 else None})
    return rows


def run_dir(out: Path, i: int) -> Path:
    """Run i (0-based) of the bench: a/ and b/ alternately, numbered per side."""
    return out / "ab"[i % 2] / f"run-{i // 2 + 1:02d}"


def compare_sides(out: Path) -> "dict | None":
    """`zstest compare --perf OUT/a OUT/b` (one kernel both sides), if the command exists."""
    probe = zstest("compare", "--help", timeout=60)
    if "--perf" not in probe.stdout:
        return None
    proc = zstest("compare", "--perf", out / "a", out / "b", "--out", out / "compare",
                  timeout=600)
    table = out / "compare" / "perf.txt"
    summary = table.read_text().splitlines()[0] if table.is_file() else proc.stderr.strip()
    return {"exit": proc.returncode, "summary": summary, "stdout": proc.stdout[-8000:],
            "stderr": proc.stderr[-2000:]}


def pct(v: float) -> str:
    return f"{v:.1f} %" if v >= 1 else f"{v:.2g} %"


def fmt(v: float) -> str:
    if float(v).is_integer() or abs(v) >= 1e4:
        return f"{v:.0f}"
    return f"{v:.4g}"


def render(rows: list, runs: list, build: Path, suite: str, compared: "dict | None") -> str:
    loads = [r["load_avg"] for r in runs]
    lines = [
        SECTION, "",
        f"`bench/bench_perf_noise.py --runs {len(runs)} --suite {suite}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): the same kernel "
        f"({build}) booted {len(runs)} times under TCG, one guest at a time, 1024 MiB, 2 vCPUs; "
        f"host load average during the runs {min(loads):.1f}-{max(loads):.1f} on "
        f"{os.cpu_count()} cores (other work on the host). A run took "
        f"{statistics.median(r['seconds'] for r in runs):.0f} s (median, boot included). "
        f"Min. detectable change: what Welch's t-test (alpha 0.05, power 0.8) finds with "
        f"{RUNS_A_SIDE} runs a side at this sd. Timings under TCG compare only side by side "
        f"on one host.", "",
        "| metric | unit | better | runs | mean | sd | CV | identical every run | "
        "marked exact | min. detectable change (5 a side) |",
        "|---|---|---|--:|--:|--:|--:|---|---|--:|",
    ]
    for r in rows:
        mdc = "-" if r["mdc_pct"] is None else (
            "any (exact)" if r["identical"] else pct(r["mdc_pct"]))
        lines.append(f"| {r['metric']} | {r['unit']} | {r['better']} | {r['runs']} | "
                     f"{fmt(r['mean'])} | {fmt(r['sd'])} | {r['cv_pct']:.2f} % | "
                     f"{'yes' if r['identical'] else 'no'} | "
                     f"{'yes' if r['marked_exact'] else 'no'} | {mdc} |")
    lines.append("")
    if compared is None:
        lines.append("False-positive rate of `compare --perf`: not measured here (`zstest compare "
                     "--perf` did not exist when this ran; its own benchmark measures it).")
    else:
        lines.append(f"`zstest compare --perf` of the odd runs against the even ones (one "
                     f"kernel on both sides; a regressed or improved verdict is a false "
                     f"positive): exit {compared['exit']}, \"{compared['summary']}\".")
    failed = sorted({n for r in runs for n in r["failed"]})
    if failed:
        lines.append(f"Tests that did not pass in some run: {', '.join(failed)}.")
    lines.append("")
    return "\n".join(lines)


def write_section(doc: Path, section: str) -> None:
    """Replace (or append) this benchmark's section, leaving every other section alone."""
    text = doc.read_text()
    pattern = re.compile(r"^" + re.escape(SECTION) + r"\n.*?(?=^##+ |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", type=Path, default=cache_dir("test-builds", "default"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--suite", default="perf")
    ap.add_argument("--out", type=Path, default=None,
                    help="where the runs go (default: /tmp/zstest-perf-noise-<stamp>)")
    ap.add_argument("--from", dest="from_dir", type=Path,
                    help="no new runs: the table of the runs an earlier --out holds")
    ap.add_argument("--write-doc", action="store_true", help="update docs/PERFORMANCE.md")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    args = ap.parse_args()
    if args.from_dir:
        return report(runs_from(args.from_dir), args, args.from_dir)
    args.out = args.out or Path(f"/tmp/zstest-perf-noise-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.runs < 2:
        print("bench_perf_noise: --runs needs at least 2 (a spread needs two values)",
              file=sys.stderr)
        return 2
    runs = []
    for i in range(args.runs):
        try:
            runs.append(one_run(args.build, args.suite, run_dir(args.out, i)))
        except (CommandError, ZstestError) as exc:   # one lost run: say so, measure on
            print(f"bench_perf_noise: run {i + 1}: {exc}", file=sys.stderr, flush=True)
            continue
        r = runs[-1]
        print(f"run {i + 1}: exit {r['exit']}, {r['seconds']} s, load {r['load_avg']}, "
              f"{len(r['metrics'])} metrics", flush=True)
    return report(runs, args, args.out)


def report(runs: list, args, out: Path) -> int:
    if len(runs) < 2:
        print(f"bench_perf_noise: {len(runs)} finished runs under {out}: a spread needs two",
              file=sys.stderr)
        return 2
    rows = summarize(runs)
    compared = compare_sides(out)
    table = render(rows, runs, args.build, args.suite, compared)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "rows": rows, "compare": compared},
                                        indent=2) + "\n")
    if args.write_doc:
        write_section(REPO / "docs" / "PERFORMANCE.md", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
