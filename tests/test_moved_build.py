"""A build directory is used where it is now: build.json's own build_dir is provenance only.

The shared test build is copied (never moved: other tests use it) and the copy's build.json is
made to name a directory that does not exist, as it does after `mv`; boot-and-run on the copy
must boot it and hand the suites the copy (the kselftest reads its scripts from the build dir,
the torture test its module)."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import run_zstest
from fixtures_vm import qemu_pids_for
from zstest.manifests import load_build, save_build


@pytest.mark.slow
def test_a_moved_build_dir_boots_and_runs_from_where_it_is_now(vm_build, tmp_path):
    moved = tmp_path / "elsewhere" / "build"
    shutil.copytree(vm_build, moved, symlinks=True)
    gone = tmp_path / "where-it-was-built"
    data = load_build(moved).data
    data["build_dir"] = str(gone)
    save_build(moved, data)
    out = tmp_path / "res"
    r = run_zstest("boot-and-run", "--build", moved, "--suite", "default", "--out", out,
                   "-k", "test_kernel_is_the_one_built or test_kselftest_zram or "
                         "test_torture_rmmod_while_running",
                   cwd=tmp_path, timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["kernel"]["build_dir"] == str(moved.resolve())
    status = {t["name"].split("::")[-1]: t["status"] for t in results["tests"]}
    # skipped would mean a suite looked for the build where it was, not where it is
    assert status == {"test_kernel_is_the_one_built": "passed", "test_kselftest_zram": "passed",
                      "test_torture_rmmod_while_running": "passed"}, status
    assert not gone.exists()
    assert qemu_pids_for(out) == []
