"""zstest.report: the plain-text, 72-column report of a results directory.

On recorded real runs (tests/data/decode): a failure-probe run on the base tree,
the demo series v1 with a real WARN in zs_page_migrate(), and a boot that failed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from zstest.decode import annotate_results
from zstest.errors import BadInput
from zstest.report import UNBREAKABLE, WIDTH, render_report

DATA = REPO / "tests" / "data" / "decode"


def results_copy(tmp_path: Path, name: str, build_json: "Path | None" = None,
                 drop: tuple = ()) -> Path:
    """A recorded results dir in tmp_path, its kernel.build_dir pointing at a copy of build_json."""
    results = tmp_path / name
    shutil.copytree(DATA / name, results)
    data = json.loads((results / "results.json").read_text())
    build = tmp_path / "build"
    build.mkdir()
    if build_json is not None:
        manifest = json.loads(build_json.read_text())
        for key in drop:
            manifest["kernel"].pop(key, None)
        (build / "build.json").write_text(json.dumps(manifest))
    data["kernel"]["build_dir"] = str(build)
    (results / "results.json").write_text(json.dumps(data))
    return results


def assert_mail_ready(text: str) -> None:
    for line in text.splitlines():
        # past WIDTH only a line holding a path, file:line, function+offset or URL (never cut),
        # or a reproducer's quoted -k expression (a cut there breaks the command)
        assert len(line) <= WIDTH or UNBREAKABLE.search(line) or line.strip().startswith("'"), line
        assert "\x1b" not in line and "\t" not in line, line
    assert text.endswith("\n")


def test_base_tree_run_with_failures_and_a_splat(tmp_path):
    results = results_copy(tmp_path, "failure-probe", DATA / "failure-probe" / "build.json",
                           drop=("git_dir", "worktree"))
    text = render_report(results)
    assert_mail_ready(text)
    assert text.startswith("zstest results: FAILED\n")
    assert "Series:   no series: base tree" in text
    assert "Base:     linux-source-6.1 6.1.192, commit dddd42f2c04c" in text
    assert "Config:   profile base; missing options: none" in text
    assert "Tests:    failure-probe suite: 0 passed, 3 failed, 0 skipped" in text
    # every failing test named, with its one-line message
    assert "FAILED test_zram_probe_failures.py::test_probe_missing_migration" in text
    assert "AssertionError: pgmigrate_success rose by 0, expected at least 1:" in text
    assert "FAILED test_zram_probe_failures.py::test_probe_corrupted_block" in text
    # the first splat, decoded to its bug-table line
    assert "zstest_failure_probe+0x0/0x10  mm/zsmalloc.c:1 (bug-table)" in text
    assert "Accel:    tcg (" in text
    repro = text.split("How to reproduce:\n", 1)[1]
    # one command for another machine: no build dir of this one, the failing tests selected
    assert repro.startswith("  zstest run --suite failure-probe -k \\\n")
    assert "/root/.cache" not in repro and "--build" not in repro
    assert "'test_probe_corrupted_block or test_probe_missing_migration or test_probe_splat'" \
        in repro


def test_series_run_lists_every_patch_and_the_splat_site(tmp_path):
    results = results_copy(tmp_path, "demo-v1-migration", DATA / "demo-v1-migration" / "build.json",
                           drop=("git_dir",))
    text = render_report(results)
    assert_mail_ready(text)
    assert "Series:   v1, 3 patches" in text
    assert "Source:   kernel-patches/demo-migrated/v1" in text
    assert "  1/3 applied, not built alone: zram: show pages_migrated in mm_stat" in text
    assert "  3/3 applied, built: zsmalloc: check the new page in" in text
    assert "Splats:   1, during" in text
    assert "[warning] WARNING: CPU: 1 PID: 93 at" in text
    # the O= build's relative __FILE__ comes out tree-relative
    assert "zs_page_migrate+0x34b/0x3c0  mm/zsmalloc.c:1868 (bug-table)" in text
    assert "--suite migration" in text


def test_a_stored_decode_is_used_when_the_build_is_gone(tmp_path):
    results = results_copy(tmp_path, "failure-probe", DATA / "failure-probe" / "build.json",
                           drop=("git_dir", "worktree"))
    assert annotate_results(results) == 1
    shutil.rmtree(tmp_path / "build")
    text = render_report(results)
    assert "mm/zsmalloc.c:1 (bug-table)" in text
    assert "Build:    no build.json in" in text
    assert_mail_ready(text)


def test_failed_boot_says_why_and_shows_the_console_tail(tmp_path):
    results = results_copy(tmp_path, "failed-boot", DATA / "failure-probe" / "build.json",
                           drop=("git_dir", "worktree"))
    text = render_report(results)
    assert_mail_ready(text)
    assert text.startswith("zstest results: ERROR\n")
    assert "Tests:    boot suite: no test ran" in text
    assert "Run:      the guest did not boot: the guest printed no ready marker" in text
    assert "Console tail (console.log):" in text
    assert "Splats:   none in the console log" in text


def test_bad_input_is_one_sentence(tmp_path):
    with pytest.raises(BadInput):
        render_report(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"tests": "junk", "kernel": []}))
    with pytest.raises(BadInput):
        render_report(tmp_path)
    proc = run_zstest("report", str(tmp_path / "missing"))
    assert proc.returncode == 2
    assert "zstest: error:" in proc.stderr and "Traceback" not in proc.stderr


def test_report_command_writes_the_file(tmp_path):
    results = results_copy(tmp_path, "panic-sysrq", DATA / "failure-probe" / "build.json",
                           drop=("git_dir", "worktree"))
    out = tmp_path / "report.txt"
    proc = run_zstest("report", str(results), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert_mail_ready(text)
    assert "[panic] Kernel panic - not syncing: sysrq triggered crash" in text
    assert "FAILED faults_guest.py::test_panic" in text
