"""results.json / junit.xml / summary.txt: statuses, exit codes, repeats."""

import json
import xml.etree.ElementTree as ET

from zstest.errors import EXIT_BOOT, EXIT_INTERRUPTED, EXIT_OK, EXIT_TEST_FAILED
from zstest.results import RunResults, TestResult, load_results, write_results

WARN = {"kind": "warning", "title": "WARNING: CPU: 0 PID: 1 at mm/zsmalloc.c:1234 zs_page_migrate",
        "text": "------------[ cut here ]------------\nWARNING: ...\n---[ end trace ]---", "line_no": 10}


def _run(*tests, splats=()):
    run = RunResults(suite="boot", tests=list(tests), splats=list(splats),
                     accel={"name": "tcg", "reason": "KVM hangs"}, boot_to_ssh_s=2.5,
                     kernel={"uname": "6.1.0", "build_dir": "/b"})
    run.finish()
    return run


def test_all_passed_is_exit_0():
    run = _run(TestResult("t.py::a", "passed", runs=["passed"]),
               TestResult("t.py::b", "skipped", message="no zstd", runs=["skipped"]))
    assert run.status == "passed" and run.exit_code == EXIT_OK


def test_failed_test_is_exit_1():
    run = _run(TestResult("t.py::a", "passed"), TestResult("t.py::b", "failed", message="boom"))
    assert run.status == "failed" and run.exit_code == EXIT_TEST_FAILED


def test_splat_outside_tests_fails_the_run():
    run = _run(TestResult("t.py::a", "passed"), splats=[WARN])
    assert run.status == "failed" and run.exit_code == EXIT_TEST_FAILED


def test_no_tests_is_an_error_not_a_pass():
    run = _run()
    assert run.status == "error" and run.exit_code == EXIT_BOOT and "no test" in run.message


def test_error_with_message_is_kept_by_finish():
    run = RunResults(status="error", message="the guest did not boot")
    run.finish()
    assert run.exit_code == EXIT_BOOT
    assert RunResults(status="interrupted", message="Ctrl-C").exit_code == EXIT_INTERRUPTED


def test_repeat_merge_shows_flaky_and_worst_status():
    a = TestResult("t.py::mig", "passed", duration_s=1.0, runs=["passed"])
    a.merge_repeat(TestResult("t.py::mig", "failed", duration_s=2.0, message="mismatch", runs=["failed"]))
    a.merge_repeat(TestResult("t.py::mig", "passed", duration_s=1.0, runs=["passed"]))
    assert a.status == "failed" and a.message == "mismatch"
    assert a.passes == 2 and len(a.runs) == 3 and a.duration_s == 4.0


def test_written_files_roundtrip_and_junit_is_valid(tmp_path):
    t = TestResult("test_boot.py::test_uname", "failed", duration_s=1.5, message="uname differs",
                   splats=[WARN], runs=["failed"], metrics={"before": {"x": 1}, "after": {"x": 2}})
    run = _run(t, TestResult("test_boot.py::test_ok", "passed", runs=["passed"]), splats=[WARN])
    write_results(tmp_path, run)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["status"] == "failed" and data["exit_code"] == 1
    assert data["tests"][0]["metrics"]["after"] == {"x": 2}
    assert data["counts"] == {"passed": 1, "failed": 1, "skipped": 0, "error": 0}
    back = load_results(tmp_path)
    assert back.tests[0].splats[0]["title"] == WARN["title"]
    root = ET.parse(tmp_path / "junit.xml").getroot()
    # one failed test plus the kernel_log_clean case: the counts match the cases in the file
    assert root.tag == "testsuite" and root.get("failures") == "2"
    names = [c.get("name") for c in root.iter("testcase")]
    assert names == ["test_uname", "test_ok", "kernel_log_clean"]
    failure = root.find("testcase/failure")
    assert "cut here" in failure.text
    summary = (tmp_path / "summary.txt").read_text()
    assert "FAILED" in summary and "test_boot.py::test_uname" in summary
    assert "zs_page_migrate" in summary
    assert not list(tmp_path.glob("*.tmp"))


def test_summary_shows_a_passed_tests_evidence(tmp_path):
    t = TestResult("test_migration_hotunplug.py::test_hotunplug", "passed", runs=["passed"],
                   details={"zspages_in_movable_before": 7722, "pgmigrate_success_delta": 57284,
                            "rounds": [{"round": 1}]})
    write_results(tmp_path, _run(t))
    line = [ln for ln in (tmp_path / "summary.txt").read_text().splitlines() if "hotunplug" in ln][0]
    assert "zspages_in_movable_before=7722 pgmigrate_success_delta=57284" in line
    assert "rounds" not in line
