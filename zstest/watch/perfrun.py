"""The perf step in the bot's run (`zstest watch --perf`, perfstep.py measures): a series that
did not pass is not measured; one that passed is recorded first (state `perf` = pending), so
that a stop during the measurement (Ctrl-C, SIGTERM, a killed bot) re-runs only this step: the
restart takes the recorded functional run as it is when its build and every suite's results
are on disk, and runs the whole series again otherwise.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Optional

from ..errors import EXIT_OK
from ..fsutil import write_text_atomic
from ..manifests import has_build, has_results
from .execute import SeriesRun, results_dir_for
from .perfstep import PerfConfig, PerfOutcome, measure, skipped
from .state import PERF_PENDING, SeriesRow

if TYPE_CHECKING:
    from .view import WatcherView


def after_functional(watcher: "WatcherView", row: SeriesRow, run: SeriesRun) -> SeriesRun:
    """run with its perf outcome (--perf): skipped unless it passed; else the passed run is
    recorded first (state `perf` = pending: a stop from here on re-runs only this step)."""
    perf: Optional[PerfConfig] = watcher.cfg.run.perf
    if perf is None:
        return run
    if run.exit_code != EXIT_OK:
        run.perf = skipped(run.verdict)
        return run
    with watcher.state.transaction() as db:
        watcher.state.update_series(db, row.id, verdict=run.verdict, exit_code=run.exit_code,
                                    message=run.message, base=run.base, perf=PERF_PENDING)
    watcher.say(f"{row.key}: passed; measuring it against its base ({perf.describe()})")
    series_dir = watcher.series_dir(row.key)
    try:
        run.perf = measure(series_dir, watcher.cfg.run, watcher.echo)
    except Exception as exc:     # a bug of ours in the perf step keeps the functional verdict
        write_text_atomic(series_dir / "bot-error.txt", traceback.format_exc())
        run.perf = PerfOutcome("error", f"perf not measured: zstest failed "
                                        f"({type(exc).__name__}: {exc}); see bot-error.txt")
    return run


def recorded_run(watcher: "WatcherView", row: SeriesRow) -> Optional[SeriesRun]:
    """The functional run a stopped perf step left (state `pending`, its build and every
    suite's results on disk): taken as it is, so that only the perf step runs again."""
    if row.perf != PERF_PENDING or row.exit_code != EXIT_OK:
        return None
    series_dir = watcher.series_dir(row.key)
    results = [results_dir_for(series_dir, s, i == 0)
               for i, s in enumerate(watcher.cfg.run.suites)]
    if not has_build(series_dir / "build") or not all(has_results(d) for d in results):
        return None
    return SeriesRun(row.verdict, row.exit_code, row.message, row.base, results_dirs=results)
