"""Where a guest that never came up is stuck (zstest/vm/stuck.py), read from recorded real
consoles: the NMI-made panic's task list of a kernel hung in zs_init (the boot-hang fixture),
and SysRq-T over the serial line after /init ran (zstest.nosshd)."""

from __future__ import annotations

from pathlib import Path

from conftest import REPO
from zstest.evidence import read_console
from zstest.splats import is_fatal
from zstest.vm.console import ConsoleMonitor
from zstest.vm.stuck import NMI_NOTE, read_pid1

CONSOLE = REPO / "tests" / "data" / "console"


def _text(name: str) -> str:
    return (CONSOLE / name).read_bytes().decode("utf-8", errors="replace")


def test_pid1_hung_in_an_initcall_is_found_in_the_nmi_panic_task_list():
    text = _text("boot-hang-base-6.1.log")
    pid1 = read_pid1(text)
    assert (pid1.comm, pid1.state) == ("swapper/0", "S")
    assert pid1.in_initcall and pid1.culprit == "zs_init" and pid1.initcall == "zs_init"
    # "? " frames are the unwinder's guesses: not in the stack read
    assert pid1.frames[:4] == ["__schedule", "schedule", "zs_init", "do_one_initcall"]
    assert pid1.text.splitlines()[-1].strip().endswith("</TASK>")
    header = text.replace("\r", "").split("\n")[pid1.line_no - 1]
    assert "pid:1 " in header and "task:swapper/0" in header


def test_pid1_after_init_is_found_in_a_sysrq_t_dump():
    pid1 = read_pid1(_text("sysrq-t-after-init-base-6.1.log"))
    assert (pid1.comm, pid1.state) == ("init", "S")
    assert not pid1.in_initcall and pid1.initcall is None
    assert pid1.culprit == "kernel_wait4"      # the shell waits for a child: not a kernel hang


def test_no_task_dump_no_pid1():
    assert read_pid1(_text("clean-boot-base-6.1.log")) is None
    # a hung-task report lists the blocked task (pid 136), not PID 1
    assert read_pid1(_text("hung-task-debian-6.1.log")) is None
    assert is_fatal("boot_hang", "PID 1 still sleeps in zs_init")


def test_the_panic_zstest_caused_is_no_evidence_but_only_after_its_note(tmp_path):
    log = CONSOLE / "boot-hang-base-6.1.log"
    assert read_console(log).all == []
    without_note = tmp_path / "console.log"
    without_note.write_text("\n".join(line for line in _text(log.name).split("\n")
                                      if NMI_NOTE not in line))
    found = read_console(without_note).all
    assert [s.kind for s in found] == ["panic"] and "NMI: Not continuing" in found[0].title
    # panic_print's task list after a panic is not part of the panic's report
    assert "Kernel Offset" in found[0].text and "task:" not in found[0].text


def test_a_host_note_keeps_console_line_numbers_true(tmp_path):
    console = ConsoleMonitor(tmp_path / "console.log")
    console.feed(b"[    1.0] one\r\n[    1.1] two, half a line")
    mark = console.mark()
    console.note("a note")
    console.feed(b"[    2.0] Kernel panic - not syncing: x\r\n")
    console.join()
    lines = (tmp_path / "console.log").read_text().split("\n")
    assert lines[2] == "zstest: a note"
    assert console.line_no_at(mark) == 2          # the half line the mark fell in
    assert console.splats[0].line_no == 4 and "Kernel panic" in lines[3]
