"""The splat parser on real console logs recorded from QEMU guests (tests/data/console/).

How they were made: tests/data/console/README.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zstest.splats import KINDS, SplatScanner, find_splats, split_timestamp

DATA = Path(__file__).parent / "data" / "console"


def lines(name: str) -> list:
    return (DATA / name).read_text(errors="replace").splitlines()


# file -> [(kind, title regex, last line regex)]
EXPECTED = {
    "warn-debian-6.1.log": [("warning", r"^WARNING: CPU: \d+ PID: \d+ at .*splatmod\.c:\d+ "
                             r"splatmod_init.*\(splatmod: a WARN for zstest\)$",
                             r"---\[ end trace")],
    "oops-debian-6.1.log": [("oops", r"^BUG: kernel NULL pointer dereference", r"---\[ end trace")],
    "bug-debian-6.1.log": [("bug", r"^kernel BUG at .*splatmod\.c:\d+!$", r"---\[ end trace")],
    "alloc-fail-debian-6.1.log": [("page_alloc_failure",
                                   r"^insmod: page allocation failure: order:10", r"</TASK>")],
    "hung-task-debian-6.1.log": [("hung_task", rf"^INFO: task sh:\d+ blocked for more than {n} "
                                  r"seconds\.$", r"</TASK>") for n in (2, 4, 6)],
    "panic-sysrq-debian-6.1.log": [("panic", r"^Kernel panic - not syncing: sysrq triggered crash",
                                    r"Kernel Offset")],
    "panic-bad-init-debian-6.1.log": [("panic", r"^Kernel panic - not syncing: Attempted to kill "
                                       r"init!", r"Kernel Offset")],
}
EXPECTED.update({name.replace("debian-6.1", "base-6.1"): exp for name, exp in EXPECTED.items()
                 if (DATA / name.replace("debian-6.1", "base-6.1")).exists()})
EXPECTED["vm-bug-on-base-6.1.log"] = [
    ("vm_bug_on", r"^page dumped because: VM_BUG_ON_PAGE\(page\) \(kernel BUG at .*splatmod\.c:\d+!\)$",
     r"---\[ end trace")]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_log(name):
    splats = find_splats(lines(name))
    expected = EXPECTED[name]
    assert [s.kind for s in splats] == [e[0] for e in expected], [s.summary() for s in splats]
    for splat, (kind, title, last) in zip(splats, expected):
        assert kind in KINDS
        assert re.search(title, splat.title), splat.title
        text = splat.text.splitlines()
        assert re.search(last, text[-1]), text[-1]
        # the splat starts where the console says it does, and carries its trace
        assert lines(name)[splat.line_no - 1].rstrip("\r") == text[0]
        assert splat.t is not None and splat.t > 0
        if kind != "panic" or "sysrq" in name:
            assert any("Call Trace:" in line for line in text)


def test_clean_boot_logs_have_no_splat():
    clean = sorted(DATA.glob("clean-boot-*.log"))
    for path in clean:
        assert find_splats(path.read_text(errors="replace").splitlines()) == [], path.name
    # boot output before the first splat of every recording is clean, too
    for name in EXPECTED:
        first = find_splats(lines(name))[0].line_no
        assert find_splats(lines(name)[:first - 1]) == []


def test_warning_starts_at_cut_here_and_keeps_the_message():
    (splat,) = find_splats(lines("warn-debian-6.1.log"))
    text = splat.text.splitlines()
    assert "[ cut here ]" in text[0] and "splatmod: a WARN for zstest" in text[1]
    assert any("Modules linked in:" in line for line in text)


def test_vm_bug_on_keeps_the_page_dump_before_it():
    (splat,) = find_splats(lines("vm-bug-on-base-6.1.log"))
    text = splat.text.splitlines()
    assert re.search(r"\] page:[0-9a-f]+ refcount:1", text[0])
    assert any("kernel BUG at" in line for line in text)
    assert any("invalid opcode" in line for line in text)


def test_oops_absorbs_its_oops_line_and_registers():
    (splat,) = find_splats(lines("oops-debian-6.1.log"))
    assert any(re.search(r"Oops: \d{4} \[#1\]", line) for line in splat.text.splitlines())
    assert "RIP: 0010:splatmod_init" in splat.text


def test_ignore_list_drops_matching_titles_only():
    both = lines("warn-debian-6.1.log") + lines("hung-task-debian-6.1.log")
    assert [s.kind for s in find_splats(both)] == ["warning"] + ["hung_task"] * 3
    kept = find_splats(both, ignore=[r"blocked for more than"])
    assert [s.kind for s in kept] == ["warning"]
    assert find_splats(both, ignore=[re.compile("splatmod"), "INFO: task"]) == []


def test_without_timestamps_same_splats():
    for name in ("warn-debian-6.1.log", "oops-debian-6.1.log", "hung-task-debian-6.1.log"):
        bare = [split_timestamp(line)[1] for line in lines(name)]
        with_t = find_splats(lines(name))
        without = find_splats(bare)
        assert [(s.kind, s.title) for s in without] == [(s.kind, s.title) for s in with_t]
        assert all(s.t is None for s in without)


def test_trace_cut_short_by_eof_is_still_a_splat():
    log = lines("bug-debian-6.1.log")
    start = find_splats(log)[0].line_no
    (splat,) = find_splats(log[:start + 5])
    assert splat.kind == "bug" and len(splat.text.splitlines()) == 6


def test_scanner_reports_each_splat_when_it_ends():
    scanner = SplatScanner()
    log = lines("hung-task-debian-6.1.log")
    done_at = []
    for i, line in enumerate(log, 1):
        for splat in scanner.feed(line, wall=float(i)):
            done_at.append((i, splat.wall))
    assert len(done_at) == 3
    for (line_no, wall), splat in zip(done_at, scanner.done):
        assert log[line_no - 1].strip().endswith("</TASK>")
        assert wall == float(splat.line_no)      # wall is when the title line was seen


# Title lines as the 6.1 kernel prints them (format strings from its source), for the kinds
# the base kernel cannot produce on demand (no lockdep, KASAN, UBSAN or lockup detectors).
TITLE_LINES = [
    ("lockdep", "WARNING: possible circular locking dependency detected"),
    ("lockdep", "WARNING: inconsistent lock state"),
    ("lockdep", "WARNING: possible recursive locking detected"),
    ("kasan", "BUG: KASAN: use-after-free in zs_page_migrate+0x3b/0x5d0"),
    ("ubsan", "UBSAN: array-index-out-of-bounds in mm/zsmalloc.c:1234:9"),
    ("rcu_stall", "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"),
    ("rcu_stall", "rcu: INFO: rcu_sched self-detected stall on CPU"),
    ("soft_lockup", "watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [kcompactd0:35]"),
    ("vm_bug_on", "page dumped because: VM_BUG_ON_PAGE(!PageLocked(page))"),
    ("bug", "BUG: sleeping function called from invalid context at mm/zsmalloc.c:480"),
    ("bug", "BUG: Bad page state in process kcompactd0  pfn:10f9a"),
    ("oops", "general protection fault, probably for non-canonical address 0xdead000000000100"),
    ("hung_task", "INFO: task kworker/u4:1:52 blocked for more than 120 seconds."),
]


@pytest.mark.parametrize("kind,line", TITLE_LINES)
def test_title_lines_classify(kind, line):
    (splat,) = find_splats([f"[   12.345678] {line}", "[   12.345679] CPU: 0 PID: 1"])
    assert splat.kind == kind and splat.title == line and splat.t == pytest.approx(12.345678)


def test_zstest_test_boundary_ends_a_report_cut_short():
    # A WARN whose end-trace line never came must still be charged to the test that ran.
    lines = [
        "[   10.000000] ------------[ cut here ]------------",
        "[   10.000001] WARNING: CPU: 0 PID: 77 at mm/zsmalloc.c:1999 zs_page_migrate+0x1/0x2",
        "[   10.000002] Modules linked in:",
        "[   10.000100] zstest: end test_x.py::test_y [abcd1234]",
        "[   10.000200] zstest: begin test_x.py::test_z [ef567890]",
    ]
    scanner = SplatScanner()
    done = []
    for line in lines[:4]:
        done += scanner.feed(line)
    assert [s.kind for s in done] == ["warning"]
    assert "zstest: end" not in done[0].text
    assert "zs_page_migrate" in done[0].title


def test_title_names_the_tree_path_not_the_ccache_relative_one():
    # Recorded: the demo v1 WARN, built with O= and CCACHE_BASEDIR (gcc saw a relative path).
    log = (DATA / "demo-v1-zs-page-migrate-warn.log").read_text()
    splats = find_splats(log.splitlines())
    assert splats[0].title.endswith("at mm/zsmalloc.c:1868 zs_page_migrate+0x34b/0x3c0")
    assert "../../worktrees/" in splats[0].text      # the evidence stays as the kernel said it


# ---------------------------------------------------------------- linear time (issue 26, finding 4)

HOSTILE_LINES = {
    # decode ran for more than 300 s on one 12 KB line of these (tidy_source_paths was cubic)
    "climbing": "WARNING: CPU: 0 PID: 1 at " + "../" * 1000 + "worktrees",
    "climbing-bug": "BUG: " + "../" * 1000,
    # "-+[ cut here ]-+" was searched from every dash: quadratic
    "dashes": "-" * 60000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_LINES))
def test_hostile_lines_scan_in_linear_time(name):
    from budget import assert_within_budget, real_console_text
    line = HOSTILE_LINES[name]
    real = real_console_text(2 * len(line)).splitlines()
    assert_within_budget(lambda: find_splats([line, line]), lambda: find_splats(real),
                         f"two {len(line)}-char lines of {name}")


def test_tidy_source_paths_cuts_what_the_old_pattern_cut():
    """The linear cut against the pattern it replaced (kept here as the reference), on every
    string of up to 6 pieces from an alphabet of the pattern's own tokens."""
    import itertools
    from zstest.splats import tidy_source_paths
    reference = re.compile(r"(?:\.\./)+(?:[^\s/]+/)*?worktrees/[^\s/]+/[^\s/]+/")
    alphabet = ["../", "worktrees/", "a/", "/", " ", ".."]
    for n in range(7):
        for pieces in itertools.product(alphabet, repeat=n):
            s = "".join(pieces)
            assert tidy_source_paths(s) == reference.sub("", s), s
    real = "WARNING: CPU: 1 PID: 9 at ../../worktrees/6f1c/build/mm/zsmalloc.c:1234 zs_free+0x1"
    assert tidy_source_paths(real) == "WARNING: CPU: 1 PID: 9 at mm/zsmalloc.c:1234 zs_free+0x1"
