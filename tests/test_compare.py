"""`zstest compare`: recorded real results.json and build.json files side by side, and --merge.

The data in tests/data/compare/ are copies of real runs and builds on this project's
machines (see its README.md). A side's kernel.build_dir is an absolute path of the
machine that ran it, so each test copies the results into tmp_path and points
build_dir at a copied build (or nowhere), as a CI artifact download would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from zstest import compare as cmp
from zstest.errors import BadInput
from zstest.target import Target

DATA = REPO / "tests" / "data" / "compare"


def side_dir(tmp_path: Path, name: str, build: str = "", label: str = "") -> Path:
    """A results dir made from recorded data; its build_dir is a copied build, or a dir that is gone."""
    out = tmp_path / (label or name)
    out.mkdir(parents=True)
    data = json.loads((DATA / name / "results.json").read_text())
    if build:
        build_dir = build_copy(tmp_path, build)
    else:
        build_dir = tmp_path / "gone" / name
    data["kernel"]["build_dir"] = str(build_dir)
    (out / "results.json").write_text(json.dumps(data))
    return out


def build_copy(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / "builds" / name
    if not dest.exists():
        dest.mkdir(parents=True)
        shutil.copyfile(DATA / "builds" / name / "build.json", dest / "build.json")
    return dest


def compared(tmp_path, a: str, b: str, **kw) -> cmp.Comparison:
    return cmp.compare(cmp.load_side(side_dir(tmp_path, a, **kw)),
                       cmp.load_side(side_dir(tmp_path, b, label=b + "-b" if a == b else "")))


def verdicts(c: cmp.Comparison) -> dict:
    return {t.name: t.verdict for t in c.tests}


# ------------------------------------------------------------------ tests: verdicts

def test_fixed_test_and_the_reverse_regression(tmp_path):
    c = compared(tmp_path, "default-swap-failed", "default-fio-skipped")
    assert verdicts(c)["test_zram_swap.py::test_swap_under_pressure"] == "fixed"
    assert c.counts()["fixed"] == 1 and c.counts()["regressed"] == 0
    assert c.counts()["passing"] == 14 and c.counts()["skipped"] == 2
    assert c.exit_code == 0
    assert cmp.summary_line(c) == "1 fixed, 0 regressed, 14 passing, 2 skipped"

    back = compared(tmp_path / "r", "default-fio-skipped", "default-swap-failed")
    assert verdicts(back)["test_zram_swap.py::test_swap_under_pressure"] == "regressed"
    assert back.exit_code == 1
    assert back.regressions == ["test test_zram_swap.py::test_swap_under_pressure: passed -> failed"]
    swap = next(t for t in back.tests if t.verdict == "regressed")
    assert "exited with 1 in the guest" in swap.message


def test_new_and_gone(tmp_path):
    c = compared(tmp_path, "torture-corrupt-one", "torture-passed")
    v = verdicts(c)
    assert v["test_torture.py::test_torture_under_migration"] == "fixed"
    assert v["test_torture.py::test_torture_rmmod_while_running"] == "new"
    assert c.exit_code == 0

    back = compared(tmp_path / "r", "torture-passed", "torture-corrupt-one")
    v = verdicts(back)
    assert v["test_torture.py::test_torture_under_migration"] == "regressed"
    assert v["test_torture.py::test_torture_rmmod_while_running"] == "gone"
    assert back.exit_code == 1
    # A test that is gone is reported, but it is not a regression by itself.
    assert len(back.regressions) == 1


def test_skipped_in_a_and_run_in_b_is_new(tmp_path):
    c = compared(tmp_path, "default-fio-skipped", "default-passed")
    v = verdicts(c)
    assert v["test_zram_fs.py::test_fs_fio_verify[4]"] == "new"
    assert v["test_zram_fs.py::test_fs_fio_verify[16]"] == "new"
    assert c.exit_code == 0
    back = compared(tmp_path / "r", "default-passed", "default-fio-skipped")
    assert verdicts(back)["test_zram_fs.py::test_fs_fio_verify[4]"] == "gone"
    assert back.exit_code == 0


def test_verdict_table():
    o = lambda s: cmp.TestOutcome(s, int(s == "passed"), 1)  # noqa: E731
    assert cmp.verdict_for(o("error"), o("passed")) == "fixed"
    assert cmp.verdict_for(o("passed"), o("error")) == "regressed"
    assert cmp.verdict_for(o("failed"), o("error")) == "still failing"
    assert cmp.verdict_for(None, o("failed")) == "new"
    assert cmp.verdict_for(o("failed"), None) == "gone"
    assert cmp.verdict_for(o("skipped"), o("skipped")) == "skipped"


def test_repeat_runs_show_passes_of_runs(tmp_path):
    c = compared(tmp_path, "quick-passed", "quick-repeat2")
    assert c.counts()["passing"] == 10
    lifecycle = next(t for t in c.tests if t.name == "test_zram_lifecycle.py::test_lifecycle[lz4]")
    assert (lifecycle.b.passes, lifecycle.b.runs) == (2, 2)
    assert lifecycle.a.label() == "passed" and lifecycle.b.label() == "2/2"
    assert "  2/2  " in cmp.render_text(c)
    j = cmp.comparison_json(c)
    row = next(t for t in j["tests"] if t["name"] == lifecycle.name)
    assert row["b"] == {"status": "passed", "passes": 2, "runs": 2}


# ------------------------------------------------------------------ tests: run level

def test_new_splat_outside_tests_is_a_regression(tmp_path):
    c = compared(tmp_path, "boot-debug-clean", "boot-debug-rcu-stall")
    assert [s["kind"] for s in c.new_splats] == ["rcu_stall"]
    assert "new splat outside tests: rcu_stall: rcu: INFO: rcu_sched self-detected stall on CPU" \
        in c.regressions
    assert c.top["splats outside tests"] == (0, 1)
    assert c.exit_code == 1
    assert cmp.summary_line(c).endswith("; 1 new splat outside tests")

    back = compared(tmp_path / "r", "boot-debug-rcu-stall", "boot-debug-clean")
    assert back.new_splats == [] and back.exit_code == 0
    assert verdicts(back)["test_boot.py::test_boot_log_has_no_splat"] == "fixed"


def test_the_same_splat_in_both_is_not_new():
    splat = {"kind": "warning", "title": "WARNING: CPU: 0 PID: 1 at mm/zsmalloc.c:1 f+0x0/0x10"}
    moved = dict(splat, title="WARNING: CPU: 1 PID: 77 at mm/zsmalloc.c:1 f+0x4/0x10")
    assert cmp._splat_key(splat) == cmp._splat_key(moved)


def test_a_run_that_ended_in_error_is_a_regression(tmp_path):
    c = compared(tmp_path, "default-passed", "default-guest-lost")
    assert c.top["status"] == ("passed", "error")
    assert c.top["exit code"] == (0, 5)
    assert any(r.startswith("run: passed -> error (the guest stopped answering")
               for r in c.regressions)
    assert c.counts()["gone"] == 10 and c.exit_code == 1


def test_top_level_fields(tmp_path):
    c = compared(tmp_path, "default-swap-failed", "default-fio-skipped")
    assert c.top["kernel"] == ("6.1.192", "6.1.192")
    assert c.top["suite"] == ("default", "default")
    assert c.top["boot_to_ssh_s"] == (11.442, 10.932)
    assert c.top["duration_s"] == (126.646, 151.971)
    assert "build status" not in c.top   # neither build dir exists any more


# ------------------------------------------------------------------ tests: metrics

def test_metric_deltas_show_what_changed_most(tmp_path):
    c = compared(tmp_path, "default-swap-failed", "default-fio-skipped")
    comp = next(t for t in c.tests if t.name.startswith("test_migration_compaction.py"))
    by_key = {m.key: m for m in comp.metrics}
    # The counters moved during the test (after - before), in A and in B.
    assert (by_key["vmstat.pgmigrate_success"].a, by_key["vmstat.pgmigrate_success"].b) == (2698, 5052)
    assert "vmstat.pgmigrate_success +2698 -> +5052" in cmp.render_text(c)
    for t in c.tests:
        assert len(t.metrics) <= cmp.TOP_METRICS
        for m in t.metrics:
            assert m.a != m.b
            assert not (m.kind == "delta" and cmp.NOISE_COUNTER.search(m.key)), m.key
    # Identical deterministic workloads: orig_data_size moved the same in both, so it is not shown.
    life = next(t for t in c.tests if t.name == "test_zram_lifecycle.py::test_lifecycle[lzo]")
    assert all(not m.key.startswith("mm_stat.orig_data_size") for m in life.metrics)


def test_counter_deltas_on_a_recorded_test():
    data = json.loads((DATA / "default-passed" / "results.json").read_text())
    test = next(t for t in data["tests"] if t["name"] == "test_zram_lifecycle.py::test_lifecycle[lzo]")
    deltas = cmp._counter_deltas(test["metrics"])
    m = test["metrics"]
    assert deltas["mm_stat.orig_data_size"] == \
        m["after"]["mm_stat"]["orig_data_size"] - m["before"]["mm_stat"]["orig_data_size"]
    assert deltas["zoneinfo.Node0/Movable.nr_zspages"] == \
        m["after"]["zoneinfo"]["Node0/Movable"]["nr_zspages"] - \
        m["before"]["zoneinfo"]["Node0/Movable"]["nr_zspages"]
    hot = next(t for t in data["tests"] if t["name"].startswith("test_migration_hotunplug"))
    assert "round1.vmstat.pgmigrate_success" in cmp._counter_deltas(hot["metrics"])


def test_details_are_compared_too(tmp_path):
    c = compared(tmp_path, "torture-corrupt-one", "torture-passed")
    torture = next(t for t in c.tests if t.verdict == "fixed")
    by_key = {m.key: m for m in torture.metrics}
    assert by_key["ktap.final.mismatches"].kind == "detail"
    assert (by_key["ktap.final.mismatches"].a, by_key["ktap.final.mismatches"].b) == (1, 0)
    assert "ktap.final.mismatches 1 -> 0" in cmp.render_text(c)


# ------------------------------------------------------------------ tests: patches

def test_patches_side_by_side_build_fixed_and_broke(tmp_path):
    bb, good = build_copy(tmp_path, "build-break-each"), build_copy(tmp_path, "good-3-each")
    c = cmp.compare(cmp.load_side(bb), cmp.load_side(good))
    assert [p.verdict for p in c.patches] == ["same", "build fixed", "same"]
    assert c.patches[1].a.build == "failed" and c.patches[1].b.build == "ok"
    assert c.patches[1].subject == "zram: make default_compressor a const pointer"
    assert c.patches[1].subject_a == "zsmalloc: report the size class layout at init"
    assert c.top["build status"] == ("failed", "ok")
    assert c.top["exit code"] == (4, 0)
    assert c.top["series"] == ("kernel-patches/fixtures/build-break", "kernel-patches/fixtures/good-3")
    assert c.exit_code == 0
    assert cmp.summary_line(c) == "patches: 1 build fixed, 2 same"

    back = cmp.compare(cmp.load_side(good / "build.json"), cmp.load_side(bb / "build.json"))
    assert back.patches[1].verdict == "build broke" and back.exit_code == 1
    assert back.regressions == ["patch 2 'zsmalloc: report the size class layout at init': "
                                "build broke (applied/ok -> applied/FAILED)"]
    text = cmp.render_text(back)
    assert " 2  zsmalloc: report the size class layout at init" in text
    assert "applied/FAILED  build broke" in text


def test_patch_verdicts():
    s = cmp.PatchState
    assert cmp.patch_verdict(s("failed", None, 0), s("applied", "ok", 0)) == "apply fixed"
    assert cmp.patch_verdict(s("applied-3way", "ok", 0), s("failed", None, 0)) == "apply broke"
    assert cmp.patch_verdict(s("applied", "ok", 0), s("applied", "ok", 1)) == "warnings 0 -> 1"
    assert cmp.patch_verdict(None, s("applied", "ok", 0)) == "new"
    assert cmp.patch_verdict(s("applied", None, 0), None) == "dropped"


def test_results_dir_brings_its_build(tmp_path):
    # Real pair: `zstest compare kernel-patches/fixtures/build-break kernel-patches/fixtures/good-3
    # --suite boot` (series mode) made these two runs and their --each builds.
    a = cmp.load_side(side_dir(tmp_path, "boot-build-break", build="build-break-run"))
    b = cmp.load_side(side_dir(tmp_path, "boot-good-3", build="good-3-run"))
    assert a.kind == "results+build" and b.kind == "results+build"
    c = cmp.compare(a, b)
    assert c.top["series revision"] == ("v1", "v1")
    assert c.top["config profiles"] == ("base", "base")
    assert c.top["build status"] == ("failed", "ok")
    # The tests passed on the bootable build-break kernel, but `zstest run` exited 4 for it.
    assert c.top["status"] == ("passed", "passed")
    assert c.top["exit code"] == (4, 0)
    assert [p.verdict for p in c.patches] == ["same", "build fixed", "same"]
    assert c.counts()["passing"] == 5 and c.exit_code == 0
    assert "(build " in cmp.render_text(c).splitlines()[1]
    assert cmp.summary_line(c) == "0 fixed, 0 regressed, 5 passing; patches: 1 build fixed, 2 same"
    back = cmp.compare(b, a)
    assert back.exit_code == 1 and back.patches[1].verdict == "build broke"


# ------------------------------------------------------------------ tests: text and JSON

@pytest.mark.parametrize("a,b", [("default-swap-failed", "default-fio-skipped"),
                                 ("default-passed", "default-guest-lost"),
                                 ("boot-debug-clean", "boot-debug-rcu-stall")])
def test_text_fits_100_columns(tmp_path, a, b):
    text = cmp.render_text(compared(tmp_path, a, b, build="build-break-each"))
    for line in text.splitlines():
        if not line.startswith(("A: ", "B: ")):
            assert len(line) <= 100, line


def test_json_shape(tmp_path):
    c = compared(tmp_path, "default-swap-failed", "default-fio-skipped")
    j = json.loads(json.dumps(cmp.comparison_json(c)))
    assert set(j) >= {"summary", "exit_code", "regressions", "a", "b", "counts", "patch_counts",
                      "top", "tests", "patches", "new_splats"}
    assert j["counts"]["fixed"] == 1 and j["exit_code"] == 0
    assert j["top"]["status"] == {"a": "failed", "b": "passed"}
    swap = next(t for t in j["tests"] if t["name"] == "test_zram_swap.py::test_swap_under_pressure")
    assert swap["verdict"] == "fixed"
    assert swap["a"] == {"status": "failed", "passes": 0, "runs": 1}
    comp = next(t for t in j["tests"] if t["name"].startswith("test_migration_compaction"))
    assert {"key": "vmstat.pgmigrate_success", "kind": "delta", "a": 2698, "b": 5052} in comp["metrics"]


# ------------------------------------------------------------------ tests: bad input

def test_load_side_bad_input(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        cmp.load_side(tmp_path / "nope")
    with pytest.raises(BadInput, match="neither a results directory"):
        cmp.load_side(tmp_path)
    (tmp_path / "other.json").write_text('{"name": "x"}')
    with pytest.raises(BadInput, match="neither a zstest results.json"):
        cmp.load_side(tmp_path / "other.json")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text('{"tests": [')
    with pytest.raises(BadInput, match="not valid JSON"):
        cmp.load_side(tmp_path / "broken")


def test_looks_like_series(tmp_path):
    assert cmp.looks_like_series(str(REPO / "kernel-patches" / "fixtures" / "good-3"))
    assert cmp.looks_like_series(str(REPO / "tests" / "data" / "series" / "resend.mbox"))
    assert not cmp.looks_like_series(str(DATA / "default-passed"))
    assert not cmp.looks_like_series(str(DATA / "default-passed" / "results.json"))
    assert not cmp.looks_like_series(str(tmp_path / "nope"))
    assert cmp.looks_like_series("v6.1..zs-v2")
    assert cmp.looks_like_series("20160520002013.GA18064@bbox")


# ------------------------------------------------------------------ tests: the CLI

def test_cli_exit_codes_and_summary_first(tmp_path):
    a = side_dir(tmp_path, "default-swap-failed")
    b = side_dir(tmp_path, "default-fio-skipped")
    fwd = run_zstest("compare", a, b, timeout=120)
    assert fwd.returncode == 0, fwd.stderr
    assert fwd.stdout.splitlines()[0] == "zstest compare: 1 fixed, 0 regressed, 14 passing, 2 skipped"
    back = run_zstest("compare", b, a, timeout=120)
    assert back.returncode == 1
    assert "REGRESSED test test_zram_swap.py::test_swap_under_pressure: passed -> failed" in back.stdout


def test_cli_json_file_and_stdout(tmp_path):
    bb, good = build_copy(tmp_path, "build-break-each"), build_copy(tmp_path, "good-3-each")
    out = tmp_path / "cmp.json"
    proc = run_zstest("compare", good, bb, "--json", out, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout.startswith("zstest compare: patches: 1 build broke, 2 same")
    data = json.loads(out.read_text())
    assert data["exit_code"] == 1 and data["patches"][1]["verdict"] == "build broke"
    assert data["patches"][1]["a"] == {"apply": "applied", "build": "ok", "new_warnings": 0}
    only = run_zstest("compare", bb, good, "--json", "-", timeout=120)
    assert only.returncode == 0
    assert json.loads(only.stdout)["patch_counts"] == {"same": 2, "build fixed": 1}


@pytest.mark.parametrize("args,words", [
    (("compare", "/nonexistent/results-a", "/nonexistent/results-b"), "does not exist"),
    (("compare", "ONE"), "compare takes two sides"),
    (("compare", "--merge", "/nonexistent/artifacts"), "is not a directory"),
])
def test_cli_bad_input_exits_2(args, words):
    proc = run_zstest(*args, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("zstest: error: ") and words in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_empty_dir_exits_2(tmp_path):
    (tmp_path / "a").mkdir()
    proc = run_zstest("compare", tmp_path / "a", tmp_path / "a", timeout=120)
    assert proc.returncode == 2 and "neither a results directory" in proc.stderr


# ------------------------------------------------------------------ tests: --merge

def artifact_tree(tmp_path: Path, with_probe: bool) -> Path:
    """A CI artifact download: job dirs holding results dirs at different depths."""
    root = tmp_path / "artifacts"
    cells = [("job-1/results", "quick-passed", {"name": "v1-base-6.1-quick", "series": "v1",
                                                "config": "base", "tree": "6.1", "suite": "quick"}),
             ("job-2/results", "quick-repeat2", {"name": "v2-base-6.1-quick", "series": "v2",
                                                 "config": "base", "tree": "6.1", "suite": "quick"}),
             ("deep/er/torture-passed", "torture-passed", None)]
    if with_probe:
        cells.append(("job-3/results", "failure-probe", None))
    for rel, name, meta in cells:
        d = root / rel
        d.mkdir(parents=True)
        shutil.copyfile(DATA / name / "results.json", d / "results.json")
        if meta:
            (d / "cell.json").write_text(json.dumps(meta))
    # QEMU's working dir inside a results dir is not a cell.
    (root / "job-1" / "results" / ".vm").mkdir()
    shutil.copyfile(DATA / "torture-passed" / "results.json",
                    root / "job-1" / "results" / ".vm" / "results.json")
    return root


def test_merge_cells_and_rows(tmp_path):
    table = cmp.merge([artifact_tree(tmp_path, with_probe=False)])
    assert [c.name for c in table.cells] == ["torture-passed", "v1-base-6.1-quick", "v2-base-6.1-quick"]
    assert table.cells[1].meta["suite"] == "quick"
    assert table.exit_code == 0
    assert "test_boot.py::test_uname" not in table.tests
    assert len(table.tests) == 12   # 10 quick tests and the 2 torture tests
    text = cmp.render_merge(table)
    row = next(l for l in text.splitlines() if l.startswith("test_zram_lifecycle.py::test_lifecycle[lz4]"))
    assert row.split()[1:] == ["-", "P", "2/2"]
    row = next(l for l in text.splitlines() if l.startswith("test_torture.py::test_torture_under_migration"))
    assert row.split()[1:] == ["P", "-", "-"]
    assert "  v2-base-6.1-quick  passed      job-2/results" in text
    for line in text.splitlines():
        assert len(line) <= 100, line


def test_merge_failed_cell_exits_1_and_json(tmp_path):
    root = artifact_tree(tmp_path, with_probe=True)
    table = cmp.merge([root])
    names = [c.name for c in table.cells]
    assert "results" in names   # job-3 has no cell.json: its dir name
    assert table.exit_code == 1
    j = cmp.merge_json(table)
    assert j["exit_code"] == 1
    probe = next(t for t in j["tests"] if t["name"] == "test_zram_probe_failures.py::test_probe_splat")
    assert probe["results"]["results"] == {"status": "failed", "passes": 0, "runs": 1}
    assert probe["results"]["v1-base-6.1-quick"] is None
    cell = next(c for c in j["cells"] if c["name"] == "v2-base-6.1-quick")
    assert cell["cell"]["series"] == "v2" and cell["status"] == "passed"

    proc = run_zstest("compare", "--merge", root, "--json", tmp_path / "m.json", timeout=120)
    assert proc.returncode == 1
    assert proc.stdout.startswith("zstest compare --merge: 4 cells, 15 tests; 1 failed (results)")
    assert json.loads((tmp_path / "m.json").read_text())["exit_code"] == 1


def test_merge_same_dir_names_are_told_apart(tmp_path):
    for job in ("job-a", "job-b"):
        d = tmp_path / job / "results"
        d.mkdir(parents=True)
        shutil.copyfile(DATA / "quick-passed" / "results.json", d / "results.json")
    table = cmp.merge([tmp_path / "job-a" / "results", tmp_path / "job-b"])
    assert [c.name for c in table.cells] == ["job-a/results", "job-b/results"]


def test_merge_without_results_is_bad_input(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(BadInput, match="holds no results.json"):
        cmp.merge([tmp_path / "empty"])


def test_apply_broke_and_dropped_patches(tmp_path):
    good, conflict = build_copy(tmp_path, "good-3-each"), build_copy(tmp_path, "conflict")
    c = cmp.compare(cmp.load_side(good), cmp.load_side(conflict))
    assert [p.verdict for p in c.patches] == ["apply broke", "dropped", "dropped"]
    assert c.top["exit code"] == (0, 3)
    assert c.exit_code == 1
    back = cmp.compare(cmp.load_side(conflict), cmp.load_side(good))
    assert [p.verdict for p in back.patches] == ["apply fixed", "new", "new"]
    assert back.exit_code == 0


@pytest.mark.slow
def test_series_mode_builds_and_runs_a_revision(tmp_path, kernel_build):
    """A series source as side A: built (whole series) and booted; B a recorded run of it.

    kernel_build: the shared base build keeps the object dir warm, so this build is incremental.
    """
    b = side_dir(tmp_path, "boot-good-3")
    proc = run_zstest("compare", REPO / "kernel-patches" / "fixtures" / "good-3", b,
                      "--suite", "boot", "--no-each", "--json", tmp_path / "c.json", timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "good-3 is a series: building and running it" in proc.stderr
    assert proc.stdout.startswith("zstest compare: 0 fixed, 0 regressed, 5 passing")
    data = json.loads((tmp_path / "c.json").read_text())
    results = Path(data["a"]["results"])
    assert results.parent.parent.name == "results"   # ~/.cache/zstest/results/<stamp>/
    assert data["top"]["build status"]["a"] == "ok"
    assert data["top"]["series"]["a"].endswith("kernel-patches/fixtures/good-3")


def test_interrupted_side_is_noted(tmp_path):
    a = side_dir(tmp_path, "quick-passed")
    data = json.loads((a / "results.json").read_text())
    data["status"], data["tests"] = "interrupted", data["tests"][:3]
    b = tmp_path / "interrupted"
    b.mkdir()
    (b / "results.json").write_text(json.dumps(data))
    c = cmp.compare(cmp.load_side(a), cmp.load_side(b))
    assert "note: B was interrupted; its results are partial" in cmp.render_text(c)
    assert c.counts()["gone"] == 7 and c.exit_code == 0


def test_demo_v1_to_v2_fixed_with_the_splat_named(tmp_path):
    # Recorded `zstest run --series kernel-patches/demo-migrated/v1|v2 --each --suite migration`.
    a = cmp.load_side(side_dir(tmp_path, "demo-v1-migration", build="demo-v1-each"))
    b = cmp.load_side(side_dir(tmp_path, "demo-v2-migration", build="demo-v2-each"))
    c = cmp.compare(a, b)
    hot = next(t for t in c.tests if t.name.startswith("test_migration_hotunplug.py"))
    assert hot.verdict == "fixed"
    assert hot.message.startswith("warning: WARNING: CPU: 0 PID: 138 at mm/zsmalloc.c:1868 zs_page_migrate")
    # v2 moved v1's patch 1 to 2: rows pair the same patch by subject, not by position.
    zram = next(p for p in c.patches if p.subject.startswith("zram: show pages_migrated"))
    assert (zram.index, zram.index_a, zram.verdict) == (2, 1, "build fixed")
    assert [p.verdict for p in c.patches if p is not zram] == ["same", "same"]
    assert c.top["series revision"] == ("v1", "v2")
    assert c.top["splats in tests"] == (1, 0)
    assert c.exit_code == 0
    back = cmp.compare(b, a)
    assert back.exit_code == 1
    assert "    why: warning: WARNING: CPU: 0 PID: 138 at mm/zsmalloc.c:1868" in cmp.render_text(back)


def test_a_side_reads_its_target_from_results_then_build(tmp_path):
    build = build_copy(tmp_path, "good-3-run")
    data = json.loads((build / "build.json").read_text())
    data["arch"] = {"name": "arm64", "page_size": 16384}
    (build / "build.json").write_text(json.dumps(data))
    assert cmp.load_side(build).target.label == "arm64 16K"
    side = side_dir(tmp_path, "quick-passed")
    results = json.loads((side / "results.json").read_text())
    results["kernel"].update(arch="i386", page_size=4096)
    (side / "results.json").write_text(json.dumps(results))
    assert cmp.load_side(side).target == Target.from_options("i386")
    results["kernel"].update(arch="riscv64")
    (side / "results.json").write_text(json.dumps(results))
    with pytest.raises(BadInput, match=r"results.json names a target this zstest cannot compare "
                                       r"\(unknown architecture 'riscv64'; known: .*\)\.$"):
        cmp.load_side(side).target


def test_a_device_named_as_a_side_is_one_sentence():
    proc = run_zstest("compare", "/dev/zero", "/dev/null", timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "/dev/zero is not a regular file" in proc.stderr


def test_sides_of_different_arches_are_refused_unless_allowed(tmp_path):
    a = side_dir(tmp_path, "quick-passed")
    b = side_dir(tmp_path, "quick-passed", label="arm64-64k")
    data = json.loads((b / "results.json").read_text())
    data["kernel"].update(arch="arm64", page_size=65536)
    (b / "results.json").write_text(json.dumps(data))
    sa, sb = cmp.load_side(a), cmp.load_side(b)
    assert (sa.target, sb.target) == (Target.default(), Target.from_options("arm64", "64k"))
    # one spelling of a target everywhere: Target's label
    with pytest.raises(BadInput, match=r"is x86_64 and B .* is arm64 64K: that compares"):
        cmp.check_same_arch(sa, sb)
    proc = run_zstest("compare", a, b)
    assert proc.returncode == 2 and "--allow-arch-mismatch" in proc.stderr
    assert "is arm64 64K" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_zstest("compare", a, b, "--allow-arch-mismatch")
    assert proc.returncode == 0, proc.stderr
