"""Shared test helpers. Stage-specific fixtures live in fixtures_*.py plugins."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_SERIES = Path(os.environ.get("ZSTEST_SHARED_SERIES", REPO.parent / "shared" / "series"))

pytest_plugins = ["fixtures_build", "fixtures_vm"]


def pytest_addoption(parser):
    parser.addoption("--run-too-slow", action="store_true", default=False,
                     help="also run the tests marked too_slow_for_ci (each pays a cold kernel "
                          "build of its own); ZSTEST_RUN_TOO_SLOW=1 does the same")


# The files that hold the longest work first: ci/test hands whole files to two workers in
# collection order (--dist loadfile --no-loadscope-reorder), and a long file started last runs
# alone at the end while the other worker has nothing left (seen: the i386 build in the last 20
# minutes of a cold run; test_watch.py, alphabetically late, in the last 3-4 minutes of both the
# cold and the warm run of 2026-12-07). xdist gives a worker its next file as soon as its current
# ones have two tests or fewer left, so a file is often queued behind the last long tests of
# another: long files must not come late. Only the order changes; a file not named here keeps
# its place after these. The figures: the slowest tests of the warm CI run of 2026-12-07 on this
# 2-core host (ci/test now also prints each file's total: "slowest 15 test files"; reorder by it).
#   test_arches.py: first, for --run-too-slow (two cold cross builds, ~9 min each).
#   test_demo_series.py: on an empty cache its fixture is the first to need the shared build
#     and starts it (~7 min) at once.
#   test_watch.py: its 14 fast tests (public-inbox, mostly waiting) run on the other worker
#     while that cold build runs; its 2 slow tests (3 series runs) come after.
LONGEST_FIRST = (
    "test_arches.py",
    "test_demo_series.py",          # setup 200 s (the fixture's runs and bisect)
    "test_watch.py",                # 63 s + the 2016 test + ~110 s of fast tests
    "test_perf_compare.py",         # 182 s + 40 s + the comment test
    "test_faults.py",               # 55 s + 12 more boots or builds
    "test_build_cli.py",            # 47 s + 41 s + 3 series builds, 2 rebuilds
    "test_suites_guest.py",         # 158 s
    "test_mutate_demo.py",          # 153 s, one test
    "test_crash_verdict.py",        # 54 s + 5 more boots
    "test_b4_check.py",             # setup 61 s + 5 more slow tests
    "test_vm_guest.py",
    "test_kconfig_profiles.py",     # 11 olddefconfigs; cold: 6.12 unpacked first
    "test_boot_and_run.py",
    "test_affected.py",             # 75 s
    "test_coverage.py",             # ~56 s (the second run boots the first build again)
    "test_watch_perf.py",           # 41 s at load ~1 (a series and its base built, 2 boots)
    "test_series_config.py",        # 66 s
    "test_mutate_cli.py",           # 65 s
    "test_ci_templates.py",         # 43 s (cold run)
    "test_perf_stats.py",           # 56 s (measured alone; no kernel)
    "test_perf_suite.py",
    "test_moved_build.py",
    "test_kmod_build.py",           # cold: 2 x modules_prepare
    "test_kmod_torture.py",
    "test_wheel.py",                # pip builds and installs the wheel; an image from cold
    "test_hardening_artifacts.py",  # 36 s (measured alone)
    "test_hardening.py",            # 35 s (measured alone)
)


def pytest_collection_modifyitems(config, items):
    """Longest files first (see LONGEST_FIRST); too_slow_for_ci tests are skipped, saying where
    the same path is measured, unless asked."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))     # stable: order kept within
    if config.getoption("--run-too-slow") or os.environ.get("ZSTEST_RUN_TOO_SLOW") == "1":
        return
    for item in items:
        marker = item.get_closest_marker("too_slow_for_ci")
        if marker is not None:
            where = marker.kwargs.get("bench", "bench/")
            item.add_marker(pytest.mark.skip(
                reason=f"too slow for CI (a cold build of its own): run with --run-too-slow; "
                       f"{where} measures it"))


# ---------------------------------------------------------------- per-file times

@dataclass
class FileTime:
    """One test file's share of a run: what LONGEST_FIRST orders by."""
    seconds: float = 0.0        # setup + call + teardown of its tests
    tests: int = 0
    workers: set = field(default_factory=set)
    start: float = float("inf")
    stop: float = 0.0


_FILE_TIMES: dict = {}
_SESSION_START = [time.time()]


def pytest_sessionstart(session):
    _SESSION_START[0] = time.time()


def pytest_runtest_logreport(report):
    """Each file's time (on xdist's controller: the reports of every worker)."""
    entry = _FILE_TIMES.setdefault(report.nodeid.split("::", 1)[0], FileTime())
    entry.seconds += report.duration
    entry.tests += report.when == "setup"
    gateway = getattr(getattr(report, "node", None), "gateway", None)
    entry.workers.add(getattr(gateway, "id", "main"))
    entry.start = min(entry.start, getattr(report, "start", entry.start))
    entry.stop = max(entry.stop, getattr(report, "stop", entry.stop))


def _clock(t: float) -> str:
    minutes, seconds = divmod(max(0, int(t - _SESSION_START[0])), 60)
    return f"{minutes}:{seconds:02d}"


def pytest_terminal_summary(terminalreporter, config):
    """With --durations (ci/test): the slowest files, which worker ran each and when, and when
    each worker finished: the numbers LONGEST_FIRST is ordered by, and the idle tail."""
    if config.getoption("durations", None) is None or not _FILE_TIMES:
        return
    tr = terminalreporter
    tr.write_sep("=", "slowest 15 test files (setup + call + teardown; worker; from-to since "
                      "the session's start)")
    files = sorted(_FILE_TIMES.items(), key=lambda kv: -kv[1].seconds)
    for path, f in files[:15]:
        tr.write_line(f"{f.seconds:8.1f}s {','.join(sorted(f.workers)):>5} "
                      f"{_clock(f.start):>6}-{_clock(f.stop):<6} {path} ({f.tests} tests)")
    workers = {}
    for f in _FILE_TIMES.values():
        for w in f.workers:
            busy, stop = workers.get(w, (0.0, 0.0))
            workers[w] = (busy + f.seconds / len(f.workers), max(stop, f.stop))
    tr.write_line("workers: " + "; ".join(
        f"{w} busy {busy:.0f} s, last test done at {_clock(stop)}"
        for w, (busy, stop) in sorted(workers.items())))


# A run started where SIGINT is ignored (a non-interactive shell's background job, `ci/test &`;
# xdist workers inherit it) has no KeyboardInterrupt: interrupt_main() does nothing and the
# Ctrl-C tests' child processes inherit SIG_IGN. Handle it as a terminal would, as cli.main does.
if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL, None):
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _sigint_handler_left_as_found():
    """A test that leaves SIGINT ignored or replaced breaks every later Ctrl-C test of the process
    (interrupt_main does nothing, children inherit SIG_IGN): name that test, restore, go on."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        pytest.fail(f"this test left SIGINT's handler as {after!r} (it was {before!r})")


@pytest.fixture
def shared_series() -> Path:
    """../shared/series (real mboxes of the 2016 series); skip when absent."""
    if not (SHARED_SERIES / "nonlru-migration-v4.mbox").is_file():
        pytest.skip(f"real mboxes not found in {SHARED_SERIES} (set ZSTEST_SHARED_SERIES)")
    return SHARED_SERIES


def run_zstest(*args, cwd=None, env=None, timeout=3600, input=None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would; returns the completed process."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "zstest.cli", *map(str, args)],
                          cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout, input=input)


@pytest.fixture
def zstest():
    return run_zstest
