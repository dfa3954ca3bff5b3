"""Shared test helpers. Stage-specific fixtures live in fixtures_*.py plugins."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_SERIES = Path(os.environ.get("ZSTEST_SHARED_SERIES", REPO.parent / "shared" / "series"))

pytest_plugins = ["fixtures_build", "fixtures_vm"]


def pytest_addoption(parser):
    parser.addoption("--run-too-slow", action="store_true", default=False,
                     help="also run the tests marked too_slow_for_ci (each pays a cold kernel "
                          "build of its own); ZSTEST_RUN_TOO_SLOW=1 does the same")


# The files that hold the longest work (the demo series' per-patch builds, the mutation runs, a
# cross build with --run-too-slow), first: ci/test hands whole files to two workers in collection
# order (--dist loadfile --no-loadscope-reorder), and a long file started last runs alone at the
# end while the other worker has nothing left (seen: the i386 build, and the builds waiting on its
# worktree lock, in the last 20 minutes of a cold run).
# Only the order changes; a file not named here keeps its place after these.
LONGEST_FIRST = ("test_arches.py", "test_demo_series.py", "test_mutate_demo.py",
                 "test_boot_and_run.py", "test_suites_guest.py", "test_build_cli.py",
                 "test_kconfig_profiles.py", "test_faults.py", "test_crash_verdict.py",
                 "test_vm_guest.py")


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
