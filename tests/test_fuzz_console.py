"""Property-based fuzzing of what reads a guest's console: the splat scanner (splats.py), the
console evidence (evidence.py) and the torture module's KTAP (ktap.py). Any text ends in a
result, never a traceback, and takes time linear in its size (budget.py, measured here).
"""

from __future__ import annotations

from hypothesis import given, strategies as st

from budget import assert_within_budget, real_console_text
from fuzzing import fuzz
from zstest.evidence import read_console
from zstest.ktap import PREFIX, parse_torture_log
from zstest.splats import KINDS, find_splats

KERNEL_WORDS = ["BUG: ", "WARNING: ", "Kernel panic - not syncing", "------------[ cut here ]------------",
                "---[ end trace 0 ]---", "</TASK>", "<TASK>", "general protection fault", "Oops: 0002",
                "kernel BUG at ", "INFO: task x:1 blocked for more than 2 seconds", "UBSAN: ",
                "BUG: KASAN: ", "=" * 30, "page dumped because: VM_BUG_ON_PAGE", "page:00ab refcount:",
                "task:sh state:", "zstest: begin t [0123abcd]", "zstest: end t [0123abcd]",
                "zstest: ", "../", "worktrees/", "a/", " ", "\t", "\r", "\x1b[2J", "x", "0x1f",
                "watchdog: BUG: soft lockup - CPU#0 stuck", "page allocation failure: order:1",
                "Modules linked in:", "WARNING: CPU: 0 PID: 1 at ", "rcu: INFO: rcu_sched detected stalls"]
TIMESTAMP = st.one_of(st.just(""), st.floats(0, 1e6, allow_nan=False).map(lambda t: f"[{t:12.6f}] "),
                      st.just("[  T1] "), st.just("["))
LINE = st.builds(lambda ts, words: ts + "".join(words), TIMESTAMP,
                 st.lists(st.one_of(st.sampled_from(KERNEL_WORDS), st.text(max_size=8)), max_size=8))
LOG = st.lists(LINE, max_size=60)

KTAP_WORDS = ["KTAP version 1", "TAP version 13", "1..3", "1..", "ok 1 thread0", "not ok 2 pools",
              "ok ", "# MISMATCH thread=0 obj=1 offset=2 expected=0x5a actual=0xa5",
              "# MISMATCH thread=abc", "# thread0: ops=5 mismatches=1", "# zstorture: threads=2",
              "# zstorture done: result=pass ops=1", "# corrupt_one: obj=3", "# SKIP", "=",
              "0x", "9" * 30, " - ", "#"]
KTAP_LINE = st.builds(lambda pre, words: pre + " ".join(words),
                      st.sampled_from([PREFIX, "", "<6>" + PREFIX, "[ 1.0] " + PREFIX]),
                      st.lists(st.one_of(st.sampled_from(KTAP_WORDS), st.text(max_size=6)), max_size=6))


@fuzz(60)
@given(lines=LOG)
def test_any_console_scans(lines):
    splats = find_splats(lines)
    for s in splats:
        assert s.kind in KINDS and 1 <= s.line_no <= len(lines) + 1
        s.summary()


@fuzz(25)
@given(lines=LOG, noise=st.binary(max_size=64))
def test_any_console_log_file_reads(tmp_path, lines, noise):
    log = tmp_path / "console.log"
    log.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + noise)
    ev = read_console(log)
    assert set(ev.unfinished) <= set(ev.started)
    assert all(s.kind in KINDS for s in ev.all)


@fuzz(60)
@given(lines=st.lists(KTAP_LINE, max_size=40))
def test_any_ktap_parses(lines):
    report = parse_torture_log("\n".join(lines))
    assert report.result in ("pass", "fail", "aborted", "incomplete", "absent") or report.final
    report.summary()
    report.to_dict()


@fuzz(5)
@given(unit=st.lists(LINE, min_size=1, max_size=4))
def test_console_scan_time_is_linear(tmp_path, unit):
    """Any few lines, repeated (and each line grown) to ~128 KiB, scan in the time 128 KiB of
    recorded consoles takes here (times budget.FACTOR)."""
    grown = [line * max(1, 2000 // max(1, len(line))) for line in unit]
    block = "\n".join(grown) + "\n"
    text = (block * ((128 << 10) // len(block) + 1))[:128 << 10]
    real = real_console_text(len(text))
    bad, good = tmp_path / "bad.log", tmp_path / "good.log"
    bad.write_text(text, errors="surrogatepass")
    good.write_text(real)
    assert_within_budget(lambda: read_console(bad), lambda: read_console(good),
                         f"{len(text)} chars of {unit[:2]!r}...")


@fuzz(5)
@given(unit=st.lists(KTAP_LINE, min_size=1, max_size=4))
def test_ktap_time_is_linear(unit):
    grown = [line * max(1, 2000 // max(1, len(line))) for line in unit]
    block = "\n".join(grown) + "\n"
    text = PREFIX + "KTAP version 1\n" + (block * ((128 << 10) // len(block) + 1))[:128 << 10]
    real = real_console_text(len(text))
    assert_within_budget(lambda: parse_torture_log(text), lambda: find_splats(real.splitlines()),
                         f"{len(text)} chars of KTAP {unit[:2]!r}...")


def test_ktap_hostile_lines_are_linear_and_refuse_nothing():
    """Found by this fuzzing: `# MISMATCH aaaa...` (20 KB) took 14 s, `ok 1 a<spaces>b` 55 s
    (quadratic regexes); thread=abc and 5000-digit numbers raised ValueError."""
    lines = ["# MISMATCH " + "a" * 20000, "ok 1 a" + " " * 20000 + "b", "# MISMATCH thread=abc",
             "1.." + "9" * 5000, "ok " + "9" * 5000 + " x"]
    text = "\n".join(PREFIX + line for line in ["KTAP version 1"] + lines)
    real = real_console_text(len(text)).splitlines()
    assert_within_budget(lambda: parse_torture_log(text), lambda: find_splats(real), "hostile KTAP")
    report = parse_torture_log(text)
    assert report.mismatches[-1].thread == -1 and report.problems
