"""zstest.ktap on real kernel logs of the zstorture module (tests/data/ktap/)."""

from __future__ import annotations

from conftest import REPO

from zstest.ktap import extract_lines, parse_torture_log

DATA = REPO / "tests" / "data" / "ktap"


def read(name: str) -> str:
    return (DATA / name).read_text()


def after(text: str, marker: str) -> str:
    return text[text.index(marker):]


def test_passing_run_under_migration():
    log = read("console-6.1-migration-pass-then-rmmod.log")
    run = log[log.index("torture start b7f1cc44fe94"):log.index("torture start caa4cf5c2473")]
    report = parse_torture_log(run)
    assert report.found and report.complete and report.passed
    assert report.version == 1 and report.plan == 3
    assert [(s.number, s.name, s.ok) for s in report.subtests] == \
        [(1, "thread0", True), (2, "thread1", True), (3, "pools", True)]
    assert report.subtests[0].counters["ops"] == 216603
    assert report.subtests[1].counters["huge_allocs"] == 23902
    assert report.subtests[2].counters == {"pools": 1, "pages_left_after_free": 0}
    assert report.params["api"] == "zs_map_object"
    assert report.params["huge_class_size"] == 3257
    assert report.params["duration_s"] == 20
    assert report.total("allocs") == 220697 == report.total("frees")
    assert report.total("mismatches") == 0 and report.mismatches == []
    assert report.summary().startswith("pass: 457928 operations")


def test_last_run_in_a_log_is_parsed_and_rmmod_means_aborted():
    report = parse_torture_log(read("console-6.1-migration-pass-then-rmmod.log"))
    assert report.params["duration_s"] == 3600
    assert report.complete and report.result == "aborted" and not report.passed
    assert all(s.ok for s in report.subtests)
    assert report.final["elapsed_ms"] == 3268


def test_run_without_final_line_is_incomplete():
    report = parse_torture_log(read("dmesg-6.1-midrun-multipool.txt"))
    assert report.found and report.plan == 4
    assert not report.complete
    assert report.result == "incomplete" and not report.passed
    assert report.subtests == []
    assert "no final line (0 of 4 subtests reported)" in report.summary()


def test_multipool_run():
    report = parse_torture_log(read("dmesg-6.1-multipool-pass.txt"))
    assert report.passed and report.plan == 4
    assert [s.counters["pool"] for s in report.subtests[:3]] == [0, 1, 0]
    assert report.params["pools"] == 2 and report.final["threads"] == 3


def test_corruption_is_reported_with_object_offset_and_bytes():
    report = parse_torture_log(read("dmesg-6.1-corrupt-one.txt"))
    assert report.complete and report.result == "fail" and not report.passed
    assert report.corruptions == [{"thread": 0, "obj": 153, "size": 1422, "offset": 711}]
    (m,) = report.mismatches
    assert (m.thread, m.obj, m.offset, m.expected, m.actual) == (0, 153, 711, 0x60, 0x9f)
    assert m.fields["phase"] == "free" and m.fields["bad_bytes"] == 1
    assert m.describe() == ("thread 0 object 153 (size 1422, phase free): byte 711 is 0x9f, "
                            "expected 0x60 (1 bad bytes)")
    assert [s.ok for s in report.subtests] == [False, True, True]
    assert "not ok: thread0" in report.summary()


def test_huge_only_run():
    report = parse_torture_log(read("dmesg-6.1-huge-only.txt"))
    assert report.passed
    assert report.params["min_size"] == 3300
    assert report.total("huge_allocs") == report.total("allocs") == 17254
    assert report.total("compactions") == 0


def test_earlier_runs_can_be_selected_by_slicing():
    text = read("dmesg-6.1-huge-only.txt")
    corrupt = parse_torture_log(after(text, "zstest: capture corrupt"))
    assert corrupt.result == "pass"   # the last run after the marker is the huge-only one
    between = text[text.index("zstest: capture corrupt"):text.index("zstest: capture tiny")]
    assert parse_torture_log(between).result == "fail"


def test_other_kernel_lines_are_ignored():
    log = read("console-6.1-migration-pass-then-rmmod.log")
    lines = extract_lines(log)
    assert lines[0] == "loading out-of-tree module taints kernel."
    assert all("zstest: begin" not in ln for ln in lines)


def test_no_output_and_a_pass_without_results_are_not_passes():
    assert parse_torture_log("").result == "absent"
    assert parse_torture_log("[    1.0] Linux version 6.1\n").summary() == \
        "the torture module printed no KTAP header"
    # a final line claiming pass while the plan is not met must not pass
    log = read("console-6.1-migration-pass-then-rmmod.log")
    run = log[log.index("torture start b7f1cc44fe94"):log.index("torture start caa4cf5c2473")]
    truncated = "\n".join(ln for ln in run.splitlines() if "ok 2 thread1" not in ln)
    report = parse_torture_log(truncated)
    assert report.result == "fail"
    assert "the plan said 3 subtests but 2 reported" in report.summary()
