"""Make the runs of `compare --perf`: A and B booted alternately, same guest, same host CPUs.

A side is a build dir (booted as is), a series source (built first, through the pipeline's
run_build, into OUT/builds/a|b) or results already made (a results dir, or a directory holding
several: nothing is booted; both sides must then be results). Booted sides run
OUT/warmup/{a,b}/run-NN first (discarded: caches, the image, the host's frequency), then
OUT/a/run-01, OUT/b/run-01, OUT/b/run-02, OUT/a/run-02, OUT/a/run-03, ... (run_order) each a
normal boot-and-run of the perf suite
with the same guest RAM and vCPUs, while zstest (and so QEMU, its child) is pinned to the same
host CPUs. OUT/a and OUT/b are then sides a later `compare --perf OUT/a OUT/b` reads again.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional, Set

from ..build import BuildRequest
from ..errors import EXIT_INTERRUPTED, BadInput
from ..manifests import find_results, has_build, has_results, load_build
from ..options import BuildsAndBoots, boot_template, build_template, with_command, with_reproducer
from ..runner import BootRunRequest
from ..target import Target
from .samples import load_side_runs
from .verdict import PerfComparison, Thresholds, compare_runs

DEFAULT_SUITE = "perf"


@dataclass
class PerfRequest(BuildsAndBoots):
    a: str
    b: str
    out: Path
    runs: int = 5
    warmup: int = 1                    # discarded runs per side before the measured ones
    # how series sides are built (series and out are set per side) and how every run boots
    # (build_dir and out set per run): zstest.options' requests of the command's options
    build: BuildRequest = field(default_factory=build_template)
    boot: BootRunRequest = field(default_factory=lambda: boot_template(suite=DEFAULT_SUITE))
    host_cpus: Optional[Set[int]] = None   # None: the CPUs zstest may run on now
    thresholds: Thresholds = Thresholds()
    allow_arch_mismatch: bool = False
    echo: Callable[[str], None] = print


def side_kind(src: str) -> str:
    """results / build / series: what a side of `compare --perf` names."""
    from ..compare import looks_like_series
    path = Path(src).expanduser()
    if path.is_dir() and has_build(path) and not has_results(path):
        return "build"
    if path.is_dir() and (has_results(path) or find_results(path)):
        return "results"
    if looks_like_series(src):
        return "series"
    raise BadInput(f"{src} is neither a build dir, a series, a results dir nor a directory "
                   f"holding results dirs.")


def parse_cpus(text: str) -> Set[int]:
    """'0-1,3' -> {0, 1, 3}; BadInput for anything else or CPUs zstest may not use."""
    cpus: Set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise BadInput(f"--host-cpus {text!r} is not a CPU list such as 0-1 or 0,2.") from None
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise BadInput(f"--host-cpus {text!r} names CPUs this host does not offer (these: "
                       f"{cpu_list(allowed)}).")
    return cpus


def cpu_list(cpus: Set[int]) -> str:
    """{0, 1, 3} -> '0-1,3'."""
    out, ordered = [], sorted(cpus)
    start = prev = ordered[0]
    for c in ordered[1:] + [None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
        if c is not None:
            start = prev = c
    return ",".join(out)


@contextlib.contextmanager
def pinned(cpus: Set[int]):
    """zstest on cpus while the runs go: QEMU, forked from this thread, inherits the mask."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _build_series(req: PerfRequest, src: str, tag: str) -> Path:
    from ..pipeline import run_build
    breq = with_reproducer(replace(req.build, series=src, out=Path(req.out) / "builds" / tag))
    req.echo(f"zstest: {tag.upper()}: building {src}")
    # ApplyFailed / BuildFailed propagate (exit 3 / 4): a side that does not build has no numbers
    return Path(run_build(breq, echo=lambda line: None).build_dir)


def _check_builds(req: PerfRequest, a: Path, b: Path) -> None:
    ta, tb = Target.from_manifest(load_build(a)), Target.from_manifest(load_build(b))
    if ta != tb and not req.allow_arch_mismatch:
        raise BadInput(f"A ({a}) is built for {ta.label} and B ({b}) for {tb.label}: that "
                       f"compares the architectures, not the revisions; pass "
                       f"--allow-arch-mismatch to compare them anyway.")


def _one_run(req: PerfRequest, build: Path, out: Path, sink) -> None:
    from ..pipeline import boot_and_run
    started = time.monotonic()
    with contextlib.redirect_stdout(sink):
        run = boot_and_run(with_command(replace(req.boot, build_dir=build, out=out)))
    if run.exit_code == EXIT_INTERRUPTED:
        raise KeyboardInterrupt
    req.echo(f"zstest: {out.relative_to(req.out)}: {run.status} "
             f"({time.monotonic() - started:.0f} s)")


def run_order(runs: int, warmup: int) -> List[tuple]:
    """(side, results subdir) in boot order: warm-ups, then pairs A B, B A, A B, ...

    Each pair boots both sides under the same host conditions; which goes first alternates,
    because a host whose load alternates with the period of one run (seen here: every second
    boot of one kernel faster) would otherwise favour whichever side always boots second."""
    order = []
    for i in range(1, warmup + 1):
        order += [("a", f"warmup/a/run-{i:02d}"), ("b", f"warmup/b/run-{i:02d}")]
    for i in range(1, runs + 1):
        pair = [("a", f"a/run-{i:02d}"), ("b", f"b/run-{i:02d}")]
        order += pair if i % 2 else pair[::-1]
    return order


def interleave(req: PerfRequest, build_a: Path, build_b: Path) -> dict:
    """Boot A and B alternately; the setup record for perf.json."""
    from ..suites import load_suite
    if req.runs < 1 or req.warmup < 0:
        raise BadInput("--runs must be 1 or more and --warmup 0 or more.")
    suite = load_suite(req.suite)
    cpus = req.host_cpus or os.sched_getaffinity(0)
    out = Path(req.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    builds = {"a": build_a, "b": build_b}
    order = run_order(req.runs, req.warmup)
    req.echo(f"zstest: {len(order)} boots ({req.warmup} warm-up a side, then {req.runs} pairs "
             f"A B, B A, ...), suite {req.suite}, QEMU on host CPUs {cpu_list(cpus)}; under {out}")
    with pinned(cpus), open(out / "suite-output.log", "a") as sink:
        for side, sub in order:
            _one_run(req, builds[side], out / sub, sink)
    return {"runs": req.runs, "warmup": req.warmup, "order": " ".join(side.upper() for side, _ in order),
            "suite": req.suite, "host_cpus": cpu_list(cpus),
            "guest": f"{req.memory_mb or suite.memory_mb} MiB, {suite.cpus} vCPUs",
            "build_a": str(build_a), "build_b": str(build_b),
            "host_load_before": [round(x, 2) for x in load_before],
            "host_load_after": [round(x, 2) for x in os.getloadavg()],
            "duration_s": round(time.monotonic() - started, 1)}


def measure(req: PerfRequest, build_a: Path, build_b: Path) -> PerfComparison:
    """Boot two builds alternately into req.out and judge every metric."""
    _check_builds(req, build_a, build_b)
    setup = interleave(req, build_a, build_b)
    out = Path(req.out)
    cmp = compare_runs(load_side_runs("A", out / "a"), load_side_runs("B", out / "b"),
                       req.thresholds, req.allow_arch_mismatch)
    cmp.setup = setup
    return cmp


def compare_perf(req: PerfRequest) -> PerfComparison:
    """Run (or read) both sides and judge every metric."""
    kinds = (side_kind(req.a), side_kind(req.b))
    if kinds.count("results") == 2:
        return compare_runs(load_side_runs("A", Path(req.a).expanduser()),
                            load_side_runs("B", Path(req.b).expanduser()),
                            req.thresholds, req.allow_arch_mismatch)
    if "results" in kinds:
        raise BadInput("one side of `compare --perf` is runs already made and the other is to be "
                       "booted: they would not be interleaved; give two build dirs or series, "
                       "or two sets of results dirs.")
    builds = [Path(src).expanduser() if kind == "build" else _build_series(req, src, tag)
              for src, kind, tag in zip((req.a, req.b), kinds, ("a", "b"))]
    return measure(req, *builds)
