"""The zram/zsmalloc suites on a real guest (slow): the failure probe fails, the default passes."""

import json

import pytest

from conftest import run_zstest

pytestmark = pytest.mark.slow


def _results(out):
    return {t["name"].split("::", 1)[1]: t for t in json.loads((out / "results.json").read_text())["tests"]}


def test_failure_probe_suite_fails_each_check(kernel_build, tmp_path):
    out = tmp_path / "probe"
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "failure-probe",
                      "--out", out, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    tests = _results(out)
    corrupted = tests["test_probe_corrupted_block"]
    assert corrupted["status"] == "failed"
    assert "data differs" in corrupted["message"] and "block=37" in corrupted["message"]
    migration = tests["test_probe_missing_migration"]
    assert migration["status"] == "failed" and "pgmigrate_success rose by 0" in migration["message"]
    splat = tests["test_probe_splat"]
    assert splat["status"] in ("failed", "error")
    assert any("zstest_failure_probe" in s["title"] for s in splat["splats"])


def test_default_suite_passes_with_migration_proof(kernel_build, tmp_path):
    out = tmp_path / "default"
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "default",
                      "--out", out, timeout=900)
    tests = _results(out)
    bad = {n: t["message"][:500] for n, t in tests.items() if t["status"] in ("failed", "error")}
    assert proc.returncode == 0 and not bad, (bad, proc.stdout[-3000:])
    hot = tests["test_hotunplug_migrates_zspages"]
    assert hot["status"] == "passed"
    facts = hot["details"]
    assert facts["zspages_in_movable_before"] > 0
    assert facts["pgmigrate_success_delta"] >= facts["zspages_in_movable_before"]
    assert facts["blocks_offlined"] == len(facts["movable_blocks"]) > 0
    assert facts["bytes_verified"] > 0
    assert len(facts["rounds"]) == 2
    for name in ("test_lifecycle[lzo]", "test_compact_fragmented_pool",
                 "test_compaction_migrates_under_io", "test_swap_under_pressure"):
        assert tests[name]["status"] == "passed", name
        assert tests[name]["metrics"].get("before") and tests[name]["metrics"].get("after")
