"""`zstest watch --perf`: a series that passed, measured against its base as `zstest compare
--perf BASE SERIES` measures it (zstest/perf: the same request, boots, statistics and files).

The base is the commit the series was applied on (its build.json's kernel.base), built by the
series build's own request without the series (same tree, configs, arch, toolchain, make
variables, so the same object dir: an incremental build) into SERIES_DIR/perf/builds/a; side
B is the series' own build (SERIES_DIR/build). Everything compare --perf writes lands in
SERIES_DIR/perf/ (a/ and b/ runs, perf.txt, perf.json, summary.txt, junit.xml, plots/).

A series that did not pass (failed, did not apply, build or boot) is not measured: its state
and page say "perf not run" and why. A perf regression (compare's exit 1) does not turn the
functional verdict into a failure: the series' verdict says "perf regressed" and the report
and the reply offer no Tested-by (execute.write_outputs).
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, List, Optional

from ..errors import EXIT_OK, BadInput

PERF_DIR = "perf"
SHOWN_METRICS = 3          # metrics named in the one-line outcome; the table has them all
# outcome state -> the series' verdict word when it overrides "passed"
VERDICT_OF = {"regressed": "perf regressed", "failed": "perf run failed"}


@dataclass
class PerfConfig:
    """What every passed series is measured with: compare --perf's --suite, -k, --runs and
    --warmup (watch's --perf-suite, --perf-k, --perf-runs, --perf-warmup)."""
    suite: str
    runs: int
    warmup: int
    keyword: str = ""

    def check(self) -> "PerfConfig":
        from ..suites import available_suites
        if self.suite not in available_suites():
            raise BadInput(f"--perf-suite {self.suite!r} is no suite; known: "
                           f"{', '.join(available_suites())}.")
        if self.runs < 1 or self.warmup < 0:
            raise BadInput("--perf-runs must be 1 or more and --perf-warmup 0 or more.")
        return self

    def describe(self) -> str:
        keyword = f" -k {shlex.quote(self.keyword)}" if self.keyword else ""
        return (f"suite {self.suite}{keyword}, {self.runs} run{'s' * (self.runs != 1)} a side "
                f"after {self.warmup} warm-up{'s' * (self.warmup != 1)}")


@dataclass
class PerfOutcome:
    state: str              # regressed / failed / ok (compare judged) / error / skipped
    text: str               # one line for the state file, the page and the reply's note
    exit_code: Optional[int] = None     # compare --perf's (0 or 1) when it judged

    @property
    def words(self) -> str:
        """text without its leading "perf" (under a "Perf:" label or in the perf column)."""
        return without_perf_word(self.text)

    @property
    def verdict(self) -> Optional[str]:
        """The series' verdict when this outcome overrides a functional "passed"."""
        return VERDICT_OF.get(self.state)

    @property
    def withholds_tested_by(self) -> bool:
        return self.state in VERDICT_OF


def without_perf_word(text: str) -> str:
    return text.removeprefix("perf").removeprefix(":").strip()


def skipped(verdict: str) -> PerfOutcome:
    return PerfOutcome("skipped", f"perf not run: the series did not pass ({verdict})")


def _pct(value) -> str:
    return f"{value:+.1f}%" if isinstance(value, (int, float)) else "?"


def _named(metrics: List[dict]) -> str:
    shown = ", ".join(f"{m.get('name')} {_pct(m.get('change_pct'))}"
                      for m in metrics[:SHOWN_METRICS])
    more = len(metrics) - SHOWN_METRICS
    return shown + (f" and {more} more" if more > 0 else "")


def outcome_of(perf: dict) -> PerfOutcome:
    """The outcome of a comparison, from its perf.json (render.perf_json's shape)."""
    metrics = [m for m in perf.get("metrics") or [] if isinstance(m, dict)]
    code = perf.get("exit_code")
    regressed = [m for m in metrics if m.get("verdict") == "regressed"]
    if regressed:
        return PerfOutcome("regressed", f"perf regressed: {_named(regressed)}", code)
    b_failed = [f for f in perf.get("failed_runs") or [] if str(f).startswith("B ")]
    if b_failed:
        return PerfOutcome("failed", f"perf: a run of the series' kernel did not pass "
                                     f"({b_failed[0]})", code)
    improved = [m for m in metrics if m.get("verdict") == "improved"]
    text = f"perf: no regression: {perf.get('summary') or 'no metrics'}"
    if improved:
        text = f"perf: no regression; improved: {_named(improved)}"
    return PerfOutcome("ok", text, code if code is not None else EXIT_OK)


def base_commit(series_build: Path) -> str:
    """The commit the series was applied on, as its build.json records it."""
    from ..manifests import load_build
    base = (load_build(series_build).data.get("kernel") or {}).get("base")
    if not isinstance(base, str) or not base:
        raise BadInput(f"{series_build}/build.json records no base commit: the base cannot be "
                       f"built to measure the series against.")
    return base


def build_base(series_dir: Path, cfg, dest: Path, echo: Callable[[str], None]) -> Path:
    """The series' base built as the series was (cfg: execute.RunConfig), without the series."""
    from ..options import with_reproducer
    from ..pipeline import run_build
    base = base_commit(series_dir / "build")
    breq = with_reproducer(replace(cfg.build, series=None, base=base, each=False,
                                   series_limit=None, out=dest, quiet=True, progress=False))
    echo(f"zstest: watch: perf: building the base {base[:12]} (no series) into {dest}")
    # ApplyFailed / BuildFailed propagate: the outcome is then "perf not measured"
    return Path(run_build(breq, echo=lambda line: None).build_dir)


def measure(series_dir: Path, cfg, echo: Callable[[str], None] = print) -> PerfOutcome:
    """Base (A) against the series (B) into series_dir/perf/, as compare --perf does; a
    ZstestError on the way is the outcome `error`; Ctrl-C and SIGTERM propagate."""
    from ..errors import ZstestError
    from ..manifests import read_object
    from ..perf.render import write_outputs
    from ..perf.run import PerfRequest, compare_perf
    perf: PerfConfig = cfg.perf
    out = series_dir / PERF_DIR
    if out.exists():
        shutil.rmtree(out)      # a re-run after a stop starts empty: no old run counted
    try:
        base = build_base(series_dir, cfg, out / "builds" / "a", echo)
        req = PerfRequest(a=str(base), b=str(series_dir / "build"), out=out, runs=perf.runs,
                          warmup=perf.warmup, build=cfg.build,
                          boot=replace(cfg.boot, suite=perf.suite, keyword=perf.keyword,
                                       repeat=1, on_progress=None, say=None),
                          echo=echo)
        write_outputs(compare_perf(req), out)
        return outcome_of(read_object(out / "perf.json"))
    except ZstestError as exc:
        return PerfOutcome("error", f"perf not measured: {exc.message}")


def table_lines(series_dir: Path) -> List[str]:
    """The comparison's table (perf.txt, what compare --perf prints), for the report."""
    from ..perf.render import PERF_TXT
    path = series_dir / PERF_DIR / PERF_TXT
    if not path.is_file():
        return []
    return ["  " + line if line else "" for line in
            path.read_text(errors="replace").rstrip("\n").splitlines()]

