"""One series, run: the pipeline as `zstest run` drives it, then its report, reply and KCIDB.

Per series dir (WATCH_DIR/series/<key>/): thread.mbox (the thread when it was ready), build/,
results/ (the first suite; results-<suite>/ for the others), perf/ (--perf: perfstep.py),
report.txt, reply.txt and kcidb.json. The tree is the configured one (`--kernel`, else zstest's default); the build
checks the series' base-commit out when that tree's git history has it (tree.choose_base),
else uses the tree as it is, and build.json says which.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional

from ..build import BuildRequest
from ..errors import (EXIT_APPLY, EXIT_BOOT, EXIT_BUILD, EXIT_OK, EXIT_TEST_FAILED, BadInput,
                      BootFailed, ZstestError)
from ..manifests import has_build, has_results, load_build
from ..options import boot_template, build_template, with_command, with_reproducer
from ..runner import BootRunRequest
from . import perfstep, reply
from .perfstep import PerfConfig, PerfOutcome
from .state import SeriesRow

VERDICTS = {EXIT_OK: "passed", EXIT_TEST_FAILED: "failed", EXIT_APPLY: "does not apply",
            EXIT_BUILD: "does not build", EXIT_BOOT: "did not boot"}


@dataclass
class RunConfig:
    """What every series is run with (the watch command's options): how it is built and booted
    (zstest.options' requests; series, out and suite are set per series and suite)."""
    build: BuildRequest = field(default_factory=build_template)
    boot: BootRunRequest = field(default_factory=boot_template)
    suites: List[str] = field(default_factory=lambda: ["default"])
    complete_timeout_s: float = 7200.0
    perf: Optional[PerfConfig] = None       # --perf: a passed series measured against its base

    @property
    def configs(self) -> List[str]:
        return self.build.configs


@dataclass
class SeriesRun:
    verdict: str
    exit_code: int
    message: str = ""
    base: str = ""
    results_dirs: List[Path] = field(default_factory=list)
    perf: Optional[PerfOutcome] = None      # --perf: the perf step's outcome

    @property
    def final_verdict(self) -> str:
        """The verdict the state and page show: a perf regression says so over "passed"."""
        perf_word = self.perf.verdict if self.perf is not None else None
        return perf_word if perf_word and self.verdict == "passed" else self.verdict


def verdict_word(exit_code: int) -> str:
    return VERDICTS.get(exit_code, "error")


def results_dir_for(series_dir: Path, suite: str, first: bool) -> Path:
    return series_dir / ("results" if first else f"results-{suite}")


def _boot_request(build_dir, out: Path, suite: str, cfg: RunConfig, echo):
    return replace(cfg.boot, build_dir=build_dir, out=out, suite=suite,
                   on_progress=lambda msg: echo(f"zstest: {msg}"),
                   say=lambda msg: echo(f"zstest: {msg}"))


def _fresh(path: Path) -> Path:
    """A run's output dir starts empty: a re-run after a stop must not mix in the old files."""
    if path.exists():
        shutil.rmtree(path)
    return path


def run_series(series_dir: Path, row: SeriesRow, cfg: RunConfig,
               echo: Callable[[str], None] = print) -> SeriesRun:
    """Build and run the series in series_dir/thread.mbox; never raises for what the kernel or
    the series did (it is the verdict); Ctrl-C and SIGTERM propagate."""
    from ..pipeline import PipelineRequest, boot_and_run, run_pipeline
    build_dir = _fresh(series_dir / "build")
    _fresh(series_dir / perfstep.PERF_DIR)      # an older run's comparison is not this run's
    results = [_fresh(results_dir_for(series_dir, s, i == 0)) for i, s in enumerate(cfg.suites)]
    mbox = series_dir / "thread.mbox"
    breq = with_reproducer(replace(cfg.build, series=str(mbox), out=build_dir, quiet=True,
                                   progress=False))
    outcome = run_pipeline(PipelineRequest(
        build=breq, run=_boot_request(None, results[0], cfg.suites[0], cfg, echo), echo=echo))
    code, error = outcome.exit_code, outcome.error
    if outcome.run is not None:
        for suite, out in zip(cfg.suites[1:], results[1:]):
            try:
                extra = boot_and_run(with_command(
                    _boot_request(outcome.build_dir, out, suite, cfg, echo)))
                code = code or extra.exit_code
            except BootFailed as exc:
                code, error = code or exc.exit_code, error or exc
    run = SeriesRun(verdict_word(code), code, message=error.message if error else "",
                    base=_base(build_dir), results_dirs=[d for d in results if has_results(d)])
    if error is not None and error.detail:
        run.message += "\n" + error.detail
    return run


def _base(build_dir: Path) -> str:
    if not has_build(build_dir):
        return ""
    try:
        data = load_build(build_dir).data
    except BadInput:
        return ""
    base = (data.get("kernel") or {}).get("base") or ""
    series = data.get("series") or {}
    how = series.get("base_from") or ""
    tree = (data.get("kernel") or {}).get("tree") or ""
    return f"{base[:12]} of {tree}" + (f" ({how})" if how else "") if base else ""


def write_outputs(series_dir: Path, row: SeriesRow, run: SeriesRun, cfg: RunConfig,
                  echo: Callable[[str], None] = print) -> None:
    """report.txt, reply.txt and kcidb.json of a finished run."""
    from ..report import render_report
    note = reply.missing_note(row.missing, row.total, cfg.complete_timeout_s)
    if run.perf is not None:
        note += reply.perf_note(run.perf.words, run.perf.withholds_tested_by)
    if run.results_dirs:
        body = render_report(run.results_dirs[0])
        table = perfstep.table_lines(series_dir) if run.perf is not None else []
        if table and cfg.perf is not None:
            body = reply.with_perf_section(body, _perf_heading(cfg.perf), table)
    else:
        error, _, detail = run.message.partition("\n")
        body = reply.failure_text(run.verdict, row.title, row.revision, row.total,
                                  error or run.verdict, detail, run.base)
    # not the whole series, or a perf regression: no Tested-by, in the report as in the reply
    tested_by = not row.missing and not (run.perf is not None and run.perf.withholds_tested_by)
    report = reply.report_text(body, note, tested_by)
    reply.write_draft(series_dir / "report.txt", report)
    reply.write_draft(series_dir / "reply.txt", reply.draft(row.subject, row.root, report))
    write_kcidb_for(series_dir, run.results_dirs + _perf_runs(series_dir), echo)


def _perf_heading(perf: PerfConfig) -> str:
    return f"against the base (zstest compare --perf BASE SERIES), {perf.describe()}"


def _perf_runs(series_dir: Path) -> List[Path]:
    """The measured runs of the series' kernel (compare's side B): their perf metrics are
    KCIDB numeric outputs of the series' build; the base's runs (side A) are not its."""
    side_b = series_dir / perfstep.PERF_DIR / "b"
    return [side_b] if side_b.is_dir() else []


def write_kcidb_for(series_dir: Path, results_dirs: List[Path],
                    echo: Callable[[str], None] = print) -> Optional[Path]:
    """kcidb.json of the series' build and results (KCIDB's own schema, zstest/kcidb.py)."""
    try:
        from ..kcidb import write_kcidb
    except ImportError:
        return None
    sources = [d for d in [series_dir / "build"] + list(results_dirs) if d.is_dir()]
    if not sources:
        return None
    try:
        return write_kcidb(sources, series_dir / "kcidb.json")
    except ZstestError as exc:
        echo(f"zstest: watch: no kcidb.json for {series_dir.name}: {exc.message}")
        return None
