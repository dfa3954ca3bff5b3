"""Execution coverage: gcov's real output mapped onto a series' lines.

The fast tests compile a small C file with gcc --coverage, run it (the .gcda is real), and
read it back through zstest.coverage with gcc's own gcov; the series parsing uses the
project's demo series. The slow test runs `zstest run --coverage` on the demo series v2 and
shows patch 3's line in zs_page_migrate() executed by the hot-unplug test, and not executed
when `boot-and-run` boots that coverage build again with that test deselected.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from zstest.coverage import (analyze, changed_lines, gcov_make_vars, instrumented_files,
                             run_gcov, summary_lines)
from zstest.results import TestResult
from zstest.series.sources import load_series

DEMO_V2 = REPO / "kernel-patches" / "demo-migrated" / "v2"

PROGRAM = """\
#include <stdio.h>

static int migrate(int page, int isolated)
{
	if (isolated)
		return -1;
	return page * 2;
}

static int putback(int page)
{
	return page + 1;
}

int main(int argc, char **argv)
{
	int r = migrate(argc, 0);
	if (argc > 5)
		r = putback(r);
	printf("%d\\n", r);
	return 0;
}
"""


@pytest.fixture
def gcov_run(tmp_path) -> tuple[Path, Path]:
    """An objdir holding mm/prog.o + .gcno, and a .gcda from one real run, copied aside."""
    if shutil.which("gcc") is None or shutil.which("gcov") is None:
        pytest.skip("gcc/gcov not installed")
    src = tmp_path / "tree" / "mm"
    src.mkdir(parents=True)
    (src / "prog.c").write_text(PROGRAM)
    objdir = tmp_path / "obj"
    (objdir / "mm").mkdir(parents=True)
    subprocess.run(["gcc", "--coverage", "-O0", "-c", str(src / "prog.c"), "-o",
                    str(objdir / "mm" / "prog.o")], check=True)
    subprocess.run(["gcc", "--coverage", str(objdir / "mm" / "prog.o"), "-o",
                    str(objdir / "prog")], check=True)
    subprocess.run([str(objdir / "prog")], check=True, capture_output=True)
    gcda_dir = tmp_path / "res" / "coverage" / "test_one"
    (gcda_dir / "mm").mkdir(parents=True)
    shutil.move(objdir / "mm" / "prog.gcda", gcda_dir / "mm" / "prog.gcda")
    return objdir, tmp_path / "tree"


def test_gcov_reads_a_real_gcda_with_the_objdirs_gcno(gcov_run):
    objdir, tree = gcov_run
    gcda = next((objdir.parent / "res").rglob("prog.gcda"))
    files = run_gcov(objdir, "mm/prog.o", gcda, srctree=tree)
    prog = next(f for f in files if f.path == "mm/prog.c")
    assert prog.counts[7] == 1             # return page * 2
    assert prog.counts[6] == 0             # return -1: never taken
    assert prog.counts[12] == 0            # putback's body: never called
    assert prog.functions[12] == "putback"
    assert "migrate" in prog.function_lines


def test_changed_lines_map_to_patches_executed_or_not(gcov_run, tmp_path):
    objdir, tree = gcov_run
    build = {"objdir": str(objdir), "kernel": {"worktree": str(tree)},
             "series": {"patches": [{"index": 1, "subject": "take the fast path"},
                                    {"index": 2, "subject": "add putback"}]},
             "coverage": {"enabled": True, "files": ["mm/prog.c"],
                          "changed_lines": {"mm/prog.c": [[7, 1], [6, 1], [12, 2], [10, 2]]}}}
    tests = [TestResult("t.py::test_one", "passed", coverage={"gcda": ["coverage/test_one"]})]
    cov = analyze(tmp_path / "res", tests, build)
    p1, p2 = cov["patches"]
    assert (p1["executable"], p1["executed"], p1["tests"]) == (2, 1, ["t.py::test_one"])
    assert p1["not_executed"] == ["mm/prog.c:6 in migrate"]
    # line 10 is the function's opening line, which gcov does count: both lines measurable
    assert p2["executed"] == 0 and p2["not_executed"][0].endswith("in putback")
    assert cov["files"]["mm/prog.c"]["functions"]["putback"]["executed"] == 0
    text = "\n".join(summary_lines(cov))
    assert "patch 1: 1/2 changed lines executed (by test_one); not executed: mm/prog.c:6 in migrate" \
        in text


def test_instrumented_files_and_make_vars_for_the_demo_series():
    series = load_series(str(DEMO_V2))
    files = instrumented_files(series.patches)
    assert files[:3] == ["mm/zsmalloc.c", "drivers/block/zram/zram_drv.c",
                         "drivers/block/zram/zcomp.c"]
    assert gcov_make_vars(files) == ["GCOV_PROFILE_zcomp.o=y", "GCOV_PROFILE_zram_drv.o=y",
                                     "GCOV_PROFILE_zsmalloc.o=y"]
    lines = changed_lines(series.patches)
    by_patch = {}
    for path, pairs in lines.items():
        for line, index in pairs:
            by_patch.setdefault(index, set()).add(path)
    assert by_patch[3] == {"mm/zsmalloc.c"}
    assert "drivers/block/zram/zram_drv.c" in by_patch[2]


@pytest.mark.slow
def test_demo_series_coverage_follows_the_hotunplug_test(tmp_path):
    """Patch 3/3 adds one check to zs_page_migrate(): the hot-unplug test reaches it every
    time, a zram test that migrates no page never, on the same kernel booted again. (Not the
    compaction test: whether compaction moves a zspage depends on where its scanners meet, and
    CI saw both.)"""
    build = tmp_path / "build"
    runs = {}
    # one --coverage build for both runs (the second boots it again): the same kernel, so
    # only the tests selected differ
    for name, command, suite, keyword in (
            ("with", ("run", "--coverage", "--series", DEMO_V2, "--build-out", build),
             "migration", "hotunplug"),
            ("without", ("boot-and-run", "--build", build), "quick", "lifecycle and lz4")):
        out = tmp_path / name
        proc = run_zstest(*command, "--suite", suite, "-k", keyword, "--out", out, timeout=3600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs[name] = json.loads((out / "results.json").read_text())
        assert Path(runs[name]["kernel"]["build_dir"]).resolve() == build.resolve()
    with_hot = {p["index"]: p for p in runs["with"]["coverage"]["patches"]}
    without = {p["index"]: p for p in runs["without"]["coverage"]["patches"]}
    assert with_hot[3]["executable"] >= 1 and with_hot[3]["executed"] == with_hot[3]["executable"]
    assert with_hot[3]["tests"] == ["test_migration_hotunplug.py::test_hotunplug_migrates_zspages"]
    assert without[3]["executed"] == 0
    assert any("zs_page_migrate" in r for r in without[3]["not_executed"])
    summary = (tmp_path / "without" / "summary.txt").read_text()
    assert "patch 3: 0/" in summary and "in zs_page_migrate" in summary
    report = run_zstest("report", tmp_path / "without")
    assert "not executed: mm/zsmalloc.c:" in report.stdout and "in zs_page_migrate" in report.stdout
    junit = (tmp_path / "with" / "junit.xml").read_text()
    assert 'name="coverage.patch3"' in junit
    zs = runs["with"]["coverage"]["files"]["mm/zsmalloc.c"]
    assert zs["functions"]["zs_page_migrate"]["executed"] > 0


def test_the_builds_own_gcno_is_used_when_the_objdir_was_rebuilt(gcov_run, tmp_path):
    """A later build of the shared objdir rewrites the .gcno; gcov refuses the old .gcda
    against it. The build keeps its own copy (build_dir/gcno), and that one is used."""
    objdir, tree = gcov_run
    build_dir = tmp_path / "build"
    (build_dir / "gcno" / "mm").mkdir(parents=True)
    shutil.copy2(objdir / "mm" / "prog.gcno", build_dir / "gcno" / "mm" / "prog.gcno")
    (tree / "mm" / "prog.c").write_text(PROGRAM.replace("page * 2", "page * 3 + 1"))
    subprocess.run(["gcc", "--coverage", "-O0", "-c", str(tree / "mm" / "prog.c"), "-o",
                    str(objdir / "mm" / "prog.o")], check=True)
    build = {"objdir": str(objdir), "kernel": {"worktree": str(tree)},
             "coverage": {"enabled": True, "files": ["mm/prog.c"], "gcno_dir": "gcno"}}
    tests = [TestResult("t.py::test_one", "passed", coverage={"gcda": ["coverage/test_one"]})]
    stale = analyze(tmp_path / "res", tests, build)
    assert stale["files"] == {} and stale["notes"], stale
    kept = analyze(tmp_path / "res", tests, build, build_dir)
    assert kept["files"]["mm/prog.c"]["executed"] > 0, kept
