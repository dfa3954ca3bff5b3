"""The console log as the source of truth: reconcile() on recorded real console logs.

Pure: no QEMU. The logs are tests/data/console (see its README for how each was made).
"""

from __future__ import annotations

from pathlib import Path

from zstest.evidence import read_console, reconcile, splats_of_results_dir
from zstest.results import RunResults, TestResult, summary_text
from zstest.splats import find_splats, is_fatal

DATA = Path(__file__).parent / "data" / "console"
DEMO = DATA / "demo-v1-zs-page-migrate-warn.log"
HOT = "test_migration_hotunplug.py::test_hotunplug_migrates_zspages"
COMPACT = "test_migration_compaction.py::test_compaction_migrates_under_io"


def test_splats_are_attributed_to_the_test_between_its_markers():
    ev = read_console(DEMO)
    assert ev.started == [COMPACT, HOT]
    assert ev.unfinished == []
    assert [s.kind for s in ev.by_test[HOT]] == ["warning"]
    assert "zs_page_migrate" in ev.by_test[HOT][0].title
    assert COMPACT not in ev.by_test and ev.outside == []


def test_a_run_that_lost_its_splats_gets_them_back_and_fails():
    """What an interrupted run wrote once: every test 'passed', "splats": []."""
    run = RunResults(suite="migration", status="interrupted", message="interrupted",
                     tests=[TestResult(COMPACT, "passed", runs=["passed"]),
                            TestResult(HOT, "passed", runs=["passed"])])
    reconcile(run, DEMO)
    hot = next(t for t in run.tests if t.name == HOT)
    assert hot.status == "failed" and hot.runs == ["failed"]
    assert hot.message.startswith("the kernel logged a WARNING: WARNING: CPU: 0 PID: 138 at "
                                  "mm/zsmalloc.c:1868")
    assert next(t for t in run.tests if t.name == COMPACT).status == "passed"
    assert run.status == "interrupted" and run.exit_code == 130    # Ctrl-C stays Ctrl-C
    assert "zs_page_migrate" in summary_text(run)


def test_a_test_cut_short_is_added_with_its_splats(tmp_path):
    """The guest died mid-test: its begin marker is there, its end marker never came."""
    lines = DEMO.read_text(errors="replace").splitlines()
    cut = next(i for i, ln in enumerate(lines) if "end trace" in ln) + 1
    log = tmp_path / "console.log"
    log.write_text("\n".join(lines[:cut]) + "\n")
    run = RunResults(suite="migration", tests=[TestResult(COMPACT, "passed", runs=["passed"])])
    ev = reconcile(run, log, unfinished_status="error")
    assert ev.unfinished == [HOT]
    hot = next(t for t in run.tests if t.name == HOT)
    assert hot.status == "failed" and hot.splats and hot.splats[0]["kind"] == "warning"
    run.finish()
    assert run.status == "failed" and run.exit_code == 1 and run.blame() == "kernel"


def test_a_lost_guest_with_kernel_evidence_is_exit_1_without_it_exit_5():
    lost = "the guest stopped answering during a test: the SSH connection dropped"
    quiet = RunResults(status="error", message=lost,
                       tests=[TestResult("t.py::a", "error", runs=["error"])])
    quiet.finish()
    assert quiet.exit_code == 5 and quiet.blame() == "infrastructure"
    oops = find_splats((DATA / "oops-base-6.1.log").read_text(errors="replace"))
    loud = RunResults(status="error", message=lost,
                      tests=[TestResult("t.py::a", "error", runs=["error"],
                                        splats=[s.to_dict() for s in oops])])
    loud.finish()
    assert loud.exit_code == 1 and loud.blame() == "kernel"
    assert loud.verdict().startswith("the kernel under test logged [oops]")
    assert summary_text(loud).splitlines()[0].startswith(
        "zstest  suite: FAILED (the kernel under test logged a splat)")


def test_a_panic_over_a_missing_init_blames_the_boot_not_the_kernel():
    panic = find_splats((DATA / "panic-bad-init-base-6.1.log").read_text(errors="replace"))
    assert panic
    run = RunResults(status="error", message="the guest did not boot",
                     splats=[s.to_dict() for s in panic])
    run.finish()
    assert run.exit_code == 5


def test_fatal_kinds():
    by_file = {"oops-base-6.1.log": True, "bug-base-6.1.log": True,
               "vm-bug-on-base-6.1.log": True, "panic-sysrq-base-6.1.log": True,
               "hung-task-debian-6.1.log": True, "warn-base-6.1.log": False,
               "alloc-fail-base-6.1.log": False}
    for name, fatal in by_file.items():
        splats = find_splats((DATA / name).read_text(errors="replace"))
        assert splats, name
        assert any(s.fatal for s in splats) is fatal, (name, [(s.kind, s.title) for s in splats])
    assert not is_fatal("bug", "BUG: sleeping function called from invalid context at x.c:1")
    assert is_fatal("bug", "kernel BUG at mm/zsmalloc.c:1863!")


def test_readers_of_a_results_dir_see_what_the_console_holds(tmp_path):
    (tmp_path / "console.log").write_bytes(DEMO.read_bytes())
    found = splats_of_results_dir(tmp_path, recorded=[])
    assert [s["kind"] for s in found] == ["warning"]
    assert splats_of_results_dir(tmp_path / "nowhere", recorded=[{"title": "x"}]) == [{"title": "x"}]


def test_decode_and_report_do_not_deny_what_the_console_holds(tmp_path):
    """The issue's case: results.json says "splats": [] and all passed; console.log has a WARN."""
    import json

    from conftest import run_zstest
    (tmp_path / "console.log").write_bytes(DEMO.read_bytes())
    (tmp_path / "results.json").write_text(json.dumps({
        "status": "interrupted", "suite": "migration", "splats": [],
        "tests": [{"name": COMPACT, "status": "passed", "splats": []},
                  {"name": HOT, "status": "passed", "splats": []}]}))
    decode = run_zstest("decode", tmp_path)
    assert decode.returncode == 0, decode.stderr
    assert "no splats" not in decode.stdout and "zs_page_migrate" in decode.stdout
    report = run_zstest("report", tmp_path)
    assert report.returncode == 0, report.stderr
    assert "none in the console log" not in report.stdout
    assert "zs_page_migrate" in report.stdout and HOT in report.stdout.replace("\n", "")


def test_a_splat_the_live_view_gave_a_test_is_not_also_outside(tmp_path):
    """Printed just before the test's begin marker reached the console: the live view (by
    console offset) gave it to the test; the rescan (by markers) sees it outside. Once only."""
    lines = DEMO.read_text(errors="replace").splitlines()
    begin = next(i for i, ln in enumerate(lines) if "zstest: begin " + HOT in ln)
    warn_start = next(i for i, ln in enumerate(lines) if "cut here" in ln)
    warn_end = next(i for i, ln in enumerate(lines) if "end trace" in ln)
    moved = lines[:begin] + lines[warn_start:warn_end + 1] + lines[begin:warn_start] + \
        lines[warn_end + 1:]
    log = tmp_path / "console.log"
    log.write_text("\n".join(moved) + "\n")
    live = [s.to_dict() for s in find_splats(moved)]
    run = RunResults(suite="migration", tests=[
        TestResult(COMPACT, "passed", runs=["passed"]),
        TestResult(HOT, "failed", runs=["failed"], splats=live)])
    reconcile(run, log)
    assert run.splats == []
    assert len(next(t for t in run.tests if t.name == HOT).splats) == 1


# ---------------------------------------------------------------- bounded work (issue 26, finding 4)

def test_read_console_streams_in_bounded_memory(tmp_path):
    """A console.log was read whole (1 GB: 2.1 GB RSS); a 48 MB line without a newline between
    two recorded logs now costs a few KiB, and both logs' splats are still found."""
    import tracemalloc
    real = DEMO.read_bytes()
    log = tmp_path / "console.log"
    with open(log, "wb") as fh:
        fh.write(real)
        for _ in range(48):
            fh.write(b"\xff" * (1 << 20))
        fh.write(b"\n" + real)
    single = len(read_console(DEMO).all)
    tracemalloc.start()
    try:
        ev = read_console(log)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak >> 20} MiB reading a 48 MiB log"
    assert len(ev.all) == 2 * single


def test_read_console_is_linear_on_a_hostile_log(tmp_path):
    from budget import assert_within_budget, real_console_text
    hostile = ("[    1.000000] WARNING: CPU: 0 PID: 1 at " + "../" * 4000 + "worktrees\n") * 8
    bad, good = tmp_path / "bad.log", tmp_path / "good.log"
    bad.write_text(hostile)
    good.write_text(real_console_text(len(hostile)))
    assert_within_budget(lambda: read_console(bad), lambda: read_console(good),
                         f"read_console on {len(hostile)} bytes of ../ lines")


def test_a_log_of_endless_reports_keeps_the_first_and_counts_the_rest(tmp_path, monkeypatch):
    import zstest.evidence as evidence
    monkeypatch.setattr(evidence, "MAX_SPLATS", 10)
    log = tmp_path / "console.log"
    log.write_text("".join(f"[ {i}.000000] WARNING: CPU: 0 PID: 1 at mm/x.c:{i} f+0x1\n\n"
                           for i in range(1, 26)))
    ev = read_console(log)
    assert [s.title.rsplit(":", 1)[1] for s in ev.all][:2] == ["1 f+0x1", "2 f+0x1"]
    assert len(ev.all) == 10 and ev.dropped == 15
