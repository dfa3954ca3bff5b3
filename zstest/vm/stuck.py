"""A guest that never reaches SSH: ask its kernel where PID 1 is, and read the answer.

When the boot deadline passes with QEMU alive, no panic and no ready marker, the kernel is
asked for every task's stack, in one of two ways:

- still in its initcalls (no "Run /init as init process" yet): the serial port takes no input
  before the console is opened for /init, so an NMI goes in through QMP (`inject-nmi`, x86).
  x86 guests boot with `unknown_nmi_panic panic_print=0x1` (the arch record), which the image's
  init turns off as its first act: until then an NMI panics the kernel and the panic prints
  every task (show_state). A `zstest:` line before it in console.log says the panic is
  zstest's doing, and evidence.read_console drops it.
- later (init ran; a kernel call of init or sshd hangs): SysRq-T over the serial line (QEMU's
  mux chardev turns Ctrl-A b into a serial BREAK, the 8250/PL011 driver takes the next key as
  a SysRq command; CONFIG_MAGIC_SYSRQ_SERIAL).

The dump goes to the console log like any kernel output. `read_pid1` is the pure part: it
finds PID 1's entry in that dump and says where it waits. PID 1 still inside `do_one_initcall`
means the kernel never finished its own init: the kernel under test hung while booting, which
is the kernel's evidence (a `boot_hang` splat, exit 1), not the machine's.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import List, Optional

from ..splats import split_timestamp
from .console import PANIC

# Ctrl-A b: QEMU's mux chardev sends a BREAK to the serial port; the next byte is the SysRq key
SYSRQ_BREAK = b"\x01b"
SHOW_STATE = re.compile(r"sysrq: Show State")
RAN_INIT = re.compile(r"Run \S+ as init process")
# the line zstest writes into console.log before the NMI, and the panic that follows it
NMI_NOTE = ("boot deadline passed: an NMI asks the kernel where its tasks are "
            "(the panic after this line is zstest's doing)")
INDUCED_PANIC = "NMI: Not continuing"
# 6.1+: "task:swapper/0  state:S stack:0  pid:1  ppid:0  flags:0x00004000"
# (5.x printed "task:swapper/0  state:S stack:    0 pid:    1 ppid: ...")
TASK_HEADER = re.compile(r"^task:(?P<comm>\S+)\s+state:(?P<state>\S+)\s.*?\bpid:\s*(?P<pid>\d+)\b")
# What a sleeping task's stack starts with whatever it waits for: the caller below these is
# the code that chose to wait.
WAITING = re.compile(
    r"^(__schedule|schedule\w*|io_schedule\w*|preempt_schedule\w*|__cond_resched|"
    r"__wait\w*|wait_\w+|do_wait\w*|prepare_to_wait\w*|finish_wait|autoremove_wake_function|"
    r"msleep\w*|usleep\w*|ssleep|do_nanosleep|hrtimer_nanosleep|schedule_hrtimeout\w*|"
    r"__mutex_lock\w*|mutex_lock\w*|__down\w*|down\w*|rwsem_down\w*|rt_mutex\w*|"
    r"percpu_down\w*|__percpu_down\w*|__flush_work\w*|flush_work|__synchronize_\w+|"
    r"synchronize_\w+|__wait_rcu_gp|kthread_park|__refrigerator|"
    r"wait_for_completion\w*|__wait_for_common|wait_for_common\w*)(\.\w+)?$")
INITCALL = "do_one_initcall"


@dataclass
class Pid1:
    """PID 1's entry in a task dump (SysRq-T, or a panic's with panic_print=0x1)."""
    comm: str
    state: str                                    # R running, S sleeping, D uninterruptible...
    frames: List[str] = field(default_factory=list)   # reliable frames, innermost first
    text: str = ""                                # the entry as printed (header to </TASK>)
    line_no: int = 0                              # 1-based line of the header in the text read
    mark: int = 0                                 # the console mark that text was read from

    @property
    def in_initcall(self) -> bool:
        return INITCALL in self.frames

    @property
    def culprit(self) -> Optional[str]:
        """The innermost frame that is not a scheduler, lock or wait primitive."""
        for name in self.frames:
            if not WAITING.match(name):
                return name
        return self.frames[0] if self.frames else None

    @property
    def initcall(self) -> Optional[str]:
        """The initcall PID 1 is in (the frame do_one_initcall called), when it is in one."""
        if not self.in_initcall:
            return None
        i = self.frames.index(INITCALL)
        return self.frames[i - 1] if i > 0 else None


def read_pid1(text: str) -> Optional[Pid1]:
    """PID 1's entry in console text holding a task dump (the last one), or None."""
    lines = text.replace("\r", "").split("\n")
    found: Optional[Pid1] = None
    current: Optional[Pid1] = None
    kept: List[str] = []

    def close():
        nonlocal found, current
        from ..decode.symbols import parse_frames     # the splat decoder's trace parser
        current.text = "\n".join(kept)
        current.frames = [f.function for f in parse_frames(current.text)
                          if f.kind == "trace" and f.reliable and f.function]
        found, current = current, None

    for no, raw in enumerate(lines, 1):
        msg = split_timestamp(raw)[1].strip()
        header = TASK_HEADER.match(msg)
        if header:
            if current is not None:
                close()
            if header.group("pid") == "1":
                current, kept = Pid1(header.group("comm"), header.group("state")[:1],
                                     line_no=no), [raw]
            continue
        if current is not None:
            kept.append(raw)
            if msg == "</TASK>":
                close()
    if current is not None:
        close()
    return found


def ask_where_pid1_is(guest, wait_s: float = 8.0) -> Optional[Pid1]:
    """PID 1's entry in a task dump the live guest was made to print, or None when the kernel
    gives none (no NMI on this machine, no MAGIC_SYSRQ_SERIAL, sysrq disabled, CPUs stuck)."""
    found = None
    if not RAN_INIT.search(guest.console.text(0)):
        found = _ask_by_nmi(guest, wait_s)
    if found is None and guest.qemu_alive and not guest.console.panicked:
        found = _ask_by_sysrq(guest, wait_s)
    return found


def _ask_by_nmi(guest, wait_s: float) -> Optional[Pid1]:
    console = guest.console
    mark = console.mark()
    console.note(NMI_NOTE)
    try:
        guest.qmp("inject-nmi")
    except Exception:          # not on this machine type (arm virt), or QMP gone
        return None
    if console.wait_for(PANIC, timeout=wait_s / 2, since=mark) is None:
        return None
    return _read_when_quiet(guest, mark, wait_s)


def _ask_by_sysrq(guest, wait_s: float) -> Optional[Pid1]:
    console = guest.console
    mark = console.mark()
    try:
        guest.child.send(SYSRQ_BREAK)
        time.sleep(0.3)
        guest.child.send(b"t")
    except Exception:
        return None
    if console.wait_for(SHOW_STATE, timeout=wait_s / 2, since=mark,
                        stop=lambda: not guest.qemu_alive) is None:
        return None
    return _read_when_quiet(guest, mark, wait_s)


def _read_when_quiet(guest, mark: int, wait_s: float) -> Optional[Pid1]:
    """The dump arrives in one burst: read it once the console was quiet for a second."""
    console = guest.console
    end = time.monotonic() + wait_s
    size = -1
    while time.monotonic() < end and not console.closed.is_set():
        now = len(console.text(mark))
        if now == size:
            break
        size = now
        time.sleep(1.0)
    found = read_pid1(console.text(mark))
    if found is not None:
        found.mark = mark
    return found
