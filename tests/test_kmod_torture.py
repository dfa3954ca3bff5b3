"""The torture suite test end to end: a real kernel, QEMU (TCG), SSH, the real module.

One run passes on the unmodified kernel; one run with the module's corrupt_one
test hook must fail, with the mismatch (object, offset, expected/actual) in
results.json and the exit code 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_zstest
from fixtures_vm import qemu_pids_for

from zstest.suites import available_suites, load_suite

pytestmark = pytest.mark.slow

TORTURE = "test_torture_under_migration"


def torture_suite() -> str:
    """default when it lists test_torture.py (it should), else any suite that does."""
    names = available_suites()
    for name in ["default"] + names:
        if any(p.name == "test_torture.py" for p in load_suite(name).paths):
            return name
    pytest.fail(f"no suite of suites.ini lists test_torture.py (suites: {names})")


def torture_result(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    tests = [t for t in results["tests"] if TORTURE in t["name"]]
    assert len(tests) == 1, [t["name"] for t in results["tests"]]
    return tests[0]


def run_torture(kernel_build, out: Path, seconds: int, params: str = ""):
    env = {"ZSTEST_TORTURE_DURATION": str(seconds)}
    if params:
        env["ZSTEST_TORTURE_PARAMS"] = params
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", torture_suite(),
                      "-k", TORTURE, "--out", out, env=env, timeout=900)
    assert qemu_pids_for(out) == [], "a QEMU process outlived the run"
    return proc


def test_torture_passes_on_unmodified_kernel(kernel_build, tmp_path):
    out = tmp_path / "res"
    proc = run_torture(kernel_build, out, 20)
    result = torture_result(out)
    assert proc.returncode == 0, f"{result['status']}: {result.get('message')}\n{proc.stderr[-2000:]}"
    assert result["status"] == "passed"
    ktap = result["details"]["ktap"]
    assert ktap["result"] == "pass" and ktap["complete"]
    assert [s["name"] for s in ktap["subtests"]] == ["thread0", "thread1", "pools"]
    assert all(s["counters"].get("verifies", 0) > 0 for s in ktap["subtests"][:2])
    assert ktap["final"]["mismatches"] == 0
    assert ktap["final"]["huge_allocs"] > 0
    assert result["details"]["pgmigrate_success_delta"] > 0


def test_corrupted_object_fails_the_torture_test(kernel_build, tmp_path):
    out = tmp_path / "res"
    proc = run_torture(kernel_build, out, 10, "corrupt_one=1")
    result = torture_result(out)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert result["status"] == "failed"
    assert "corrupted object(s)" in result["message"]
    ktap = result["details"]["ktap"]
    assert ktap["result"] == "fail"
    assert len(ktap["corruptions"]) == 1 and len(ktap["mismatches"]) == 1
    flipped, caught = ktap["corruptions"][0], ktap["mismatches"][0]
    # the mismatch names the very byte the hook flipped, with both values
    assert (caught["thread"], caught["obj"], caught["offset"]) == \
        (flipped["thread"], flipped["obj"], flipped["offset"])
    assert caught["expected"] ^ caught["actual"] == 0xff
    assert f"byte {flipped['offset']} is 0x{caught['actual']:02x}" in result["message"]
