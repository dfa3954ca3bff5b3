"""`zstest report --kcidb`: recorded results and build dirs (and trees of them) as KCIDB JSON,
validated with kcidb-io's latest schema; the patchset hash as KCIDB's documentation computes it.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import REPO, run_zstest

kcidb_io = pytest.importorskip("kcidb_io")

from zstest import kcidb  # noqa: E402
from zstest.patchset import patch_text, series_patchset_hash  # noqa: E402
from zstest.series import load_series  # noqa: E402

DATA = REPO / "tests" / "data"
DEMO = REPO / "kernel-patches" / "demo-migrated"
RECORDED_B4 = DATA / "b4check" / "demo-v1-hotunplug"


def valid(data: dict) -> dict:
    kcidb_io.schema.LATEST.validate(data)
    return data


def test_compare_tree_validates_and_maps_every_test():
    """Every recorded compare run: one KCIDB test per guest test with the zstest status mapped
    (and the boot), every test's build and every build's checkout present."""
    data = valid(kcidb.to_kcidb([DATA / "compare"]))
    assert (data["version"]["major"], data["version"]["minor"]) == \
        (kcidb_io.schema.LATEST.major, kcidb_io.schema.LATEST.minor)
    build_ids = {b["id"] for b in data["builds"]}
    checkout_ids = {c["id"] for c in data["checkouts"]}
    assert all(t["build_id"] in build_ids for t in data["tests"])
    assert all(b["checkout_id"] in checkout_ids for b in data["builds"])
    assert len({t["id"] for t in data["tests"]}) == len(data["tests"])
    swap = json.loads((DATA / "compare" / "default-swap-failed" / "results.json").read_text())
    for t in swap["tests"]:
        path = kcidb.test_path("default", t["name"])
        [mapped] = [x for x in data["tests"] if x["path"] == path
                    and x["start_time"] == swap["started"]]
        assert mapped["status"] == kcidb.TEST_STATUS[t["status"]]
        assert mapped["duration"] == pytest.approx(t["duration_s"])
    assert {"PASS", "FAIL", "SKIP"} <= {t["status"] for t in data["tests"]}


def test_a_build_that_did_not_apply_is_an_invalid_checkout():
    data = valid(kcidb.to_kcidb([DATA / "compare" / "builds" / "conflict"]))
    [checkout] = data["checkouts"]
    assert checkout["valid"] is False
    [build] = data["builds"]
    assert build["status"] == "FAIL" and not data["tests"]


def test_results_find_their_build_in_a_copied_tree(tmp_path):
    """A tree copied off its machine: kernel.build_dir names a path that is gone, the build
    is found by the build_dir its build.json recorded; the ids do not depend on where the
    tree lies, so a re-export merges in KCIDB instead of duplicating."""
    copy = tmp_path / "artifacts" / "demo"
    shutil.copytree(DATA / "decode" / "demo-v1-migration", copy)
    data = valid(kcidb.to_kcidb([tmp_path / "artifacts"]))
    [build] = data["builds"]
    assert build["command"].startswith("zstest build --series kernel-patches/demo-migrated/v1")
    assert build["config_name"] == "base" and build["architecture"] == "x86_64"
    assert build["compiler"].startswith("gcc")
    [checkout] = data["checkouts"]
    assert checkout["git_commit_hash"] == json.loads(
        (copy / "build.json").read_text())["kernel"]["base"]
    failed = [t for t in data["tests"] if t["status"] == "FAIL"]
    assert any("zs_page_migrate" in t.get("log_excerpt", "") for t in failed)
    again = kcidb.to_kcidb([DATA / "decode" / "demo-v1-migration"])
    assert {t["id"] for t in again["tests"]} == {t["id"] for t in data["tests"]}
    assert [b["id"] for b in again["builds"]] == [build["id"]]


def test_patchset_hash_is_kcidbs_shell_recipe(tmp_path):
    """KCIDB: `sha256sum *.patch | cut -c-64 | sha256sum | cut -c-64` over the patch files;
    ours over the same diffs agrees, and the series threaded as mail (other headers) hashes the
    same as its format-patch files."""
    series = load_series(str(DEMO / "v2"))
    for patch in series.patches:
        (tmp_path / f"{patch.index:04d}.patch").write_text(patch_text(patch.raw))
    shell = subprocess.run(["bash", "-c", "sha256sum *.patch | cut -c-64 | sha256sum | cut -c-64"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert series_patchset_hash(series.patches) == shell
    from test_b4_check import thread_mbox
    (tmp_path / "thread.mbox").write_bytes(thread_mbox(DEMO / "v2", "hash"))
    threaded = load_series(str(tmp_path / "thread.mbox"))
    assert series_patchset_hash(threaded.patches) == shell
    assert series_patchset_hash(load_series(str(DEMO / "v1")).patches) != shell


def test_recorded_b4_check_run_has_its_patchset_and_coverage():
    """The recorded b4-check run of demo v1: build.json carries each patch's sha256 and
    message-id, so the checkout has the patchset hash and the cover's message-id; coverage
    and the boot time are numeric outputs."""
    build = json.loads((RECORDED_B4 / "build.json").read_text())
    data = valid(kcidb.to_kcidb([RECORDED_B4]))
    [checkout] = data["checkouts"]
    expected = load_series(str(RECORDED_B4 / "series.mbox"))
    assert checkout["patchset_hash"] == series_patchset_hash(expected.patches)
    assert checkout["message_id"] == build["series"]["msgid"]
    assert checkout["misc"]["message_ids"][1:] == [p["msgid"] for p in build["series"]["patches"]]
    coverage = [t for t in data["tests"] if ".coverage." in t["path"]]
    assert coverage and all(t["status"] == "DONE" and t["number"]["unit"] == "%"
                            for t in coverage)
    [boot] = [t for t in data["tests"] if t["path"] == "zstest.boot"]
    results = json.loads((RECORDED_B4 / "results.json").read_text())
    assert boot["number"]["value"] == pytest.approx(results["boot_to_ssh_s"])


def test_perf_metrics_are_done_tests_with_numbers(tmp_path):
    """metrics.perf {name: {value, unit, better, exact}} of a test: a DONE test per metric
    under the test's path, the value and unit as KCIDB's number."""
    copy = tmp_path / "run"
    shutil.copytree(DATA / "compare" / "quick-passed", copy)
    results = json.loads((copy / "results.json").read_text())
    # the shape suites' record.perf() writes (zstest/suites/plugin.py), on a recorded test
    results["tests"][0].setdefault("metrics", {})["perf"] = {
        "fill MiB/s": {"value": 41.5, "unit": "MiB/s", "better": "higher", "exact": False}}
    (copy / "results.json").write_text(json.dumps(results))
    data = valid(kcidb.to_kcidb([copy]))
    base = kcidb.test_path(results["suite"], results["tests"][0]["name"])
    [metric] = [t for t in data["tests"] if t["path"] == base + ".fill_MiB_s"]
    assert metric["status"] == "DONE" and metric["number"] == {"value": 41.5, "unit": "MiB/s"}


def test_report_cli_writes_and_refuses(tmp_path):
    out = tmp_path / "kcidb.json"
    proc = run_zstest("report", DATA / "decode", "--kcidb", out, "--kcidb-origin", "my_lab",
                      "--kcidb-url-base", "https://ci.example.org/runs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = valid(json.loads(out.read_text()))
    assert all(o["origin"] == "my_lab" for o in data["builds"] + data["tests"])
    assert "https://ci.example.org/runs/failure-probe/console.log" in {
        t.get("log_url") for t in data["tests"]}
    # failed-boot: the guest missed its deadline and the kernel left no evidence (exit 5)
    failed_boot = json.loads((DATA / "decode" / "failed-boot" / "results.json").read_text())
    [boot] = [t for t in data["tests"] if t["path"] == "zstest.boot"
              and t.get("start_time") == failed_boot["started"]]
    assert failed_boot["exit_code"] == 5 and boot["status"] == "ERROR"
    bad = run_zstest("report", DATA / "compare", "--kcidb", out, "--kcidb-origin", "My Lab",
                     cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "origin" in bad.stderr
    (tmp_path / "empty").mkdir()
    empty = run_zstest("report", tmp_path / "empty", "--kcidb", out, cwd=tmp_path)
    assert empty.returncode == 2 and "holds no results.json or build.json" in empty.stderr
