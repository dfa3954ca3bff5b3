"""Shared test helpers. Stage-specific fixtures live in fixtures_*.py plugins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_SERIES = Path(os.environ.get("ZSTEST_SHARED_SERIES", REPO.parent / "shared" / "series"))

pytest_plugins = ["fixtures_build", "fixtures_vm"]


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
