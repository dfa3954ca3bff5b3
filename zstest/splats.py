"""Splats: the kernel's own reports of trouble, found in serial console lines.

A pure parser. `SplatScanner` takes lines one at a time (the console monitor
feeds it live); `find_splats` runs it over a whole log. A splat is one
report (an oops, a WARN, a lockdep report, a panic...) with its full trace,
the line it starts on, the kernel timestamp if printed, and the host time it
was seen (for attributing it to the test that was running).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import asdict, dataclass
from typing import Iterable, List, Optional, Pattern, Sequence, Tuple, Union

KINDS = ("oops", "bug", "warning", "kasan", "ubsan", "lockdep", "hung_task", "rcu_stall",
         "soft_lockup", "page_alloc_failure", "panic", "vm_bug_on",
         "boot_hang")   # boot_hang: zstest's, from the kernel's task list (vm/stuck.py)

# "[   12.345678] " and optionally "[    T1] " / "[  C0] " caller ids.
TIMESTAMP = re.compile(r"^\[\s*(\d+\.\d+)\](?:\[\s*[TC]\d+\])?\s?")
# one dash each side is the same test as -+ ... -+ for a search, without its quadratic retries
CUT_HERE = re.compile(r"-\[ cut here \]-")
END_TRACE = re.compile(r"---\[ end (trace [0-9a-f]+|Kernel panic.*) \]---")
SEPARATOR = re.compile(r"^={20,}$")
TASK_END = "</TASK>"
MAX_LINES = 400
# printk lines are at most 1024 bytes; a longer "line" (a binary blob, a hostile log) is read
# only this far, so scanning stays linear in the log's size
MAX_LINE_CHARS = 4096
# Reports after which the guest kernel is not to be trusted (locks held by a killed task, memory
# corrupted, a CPU stuck): the running test fails at once and no more work goes to that guest.
# A WARNING, a lockdep report, an allocation failure or a "BUG: sleeping function called ..."
# leaves the kernel usable: the test fails, the guest goes on.
FATAL_KINDS = frozenset({"oops", "panic", "kasan", "soft_lockup", "rcu_stall", "hung_task",
                         "vm_bug_on", "boot_hang"})
FATAL_BUG_TITLE = re.compile(r"^(kernel BUG at |BUG: (unable to handle|kernel NULL pointer|"
                             r"kernel paging request|Bad rss-counter|KFENCE))")


_KIND_WORDS = {"oops": "an oops", "bug": "a BUG", "panic": "a panic", "kasan": "a KASAN report",
               "ubsan": "a UBSAN report", "lockdep": "a lockdep report", "warning": "a WARNING",
               "soft_lockup": "a soft lockup", "rcu_stall": "an RCU stall",
               "hung_task": "a hung task", "vm_bug_on": "a VM_BUG_ON",
               "page_alloc_failure": "a page allocation failure",
               "boot_hang": "a hang in its own init"}


def kind_words(kind: str) -> str:
    """How a splat kind reads in a sentence: 'an oops', 'a soft lockup'."""
    return _KIND_WORDS.get(kind, f"a {kind}")


def is_fatal(kind: str, title: str) -> bool:
    """True for a report after which the guest kernel cannot be trusted to do more work."""
    return kind in FATAL_KINDS or (kind == "bug" and bool(FATAL_BUG_TITLE.search(title)))


# The runner writes "zstest: begin/end <test>" into /dev/kmsg around every test.
MARKER_PREFIX = "zstest: "
# A trace is printed in one burst: a silence this long ends a splat without an end marker.
GAP_S = 2.0

# (kind, pattern) in priority order; the first that matches a line starts a splat.
START_PATTERNS: List[Tuple[str, Pattern]] = [(k, re.compile(p)) for k, p in [
    ("panic", r"^Kernel panic - not syncing"),
    ("kasan", r"^BUG: KASAN: "),
    ("kasan", r"^BUG: KFENCE: "),
    ("ubsan", r"^UBSAN: "),
    ("lockdep", r"^WARNING: (possible circular locking dependency|inconsistent lock state|"
                r"possible recursive locking|possible irq lock inversion|bad unlock balance|"
                r"suspicious RCU usage|lock held when returning to user space|"
                r"held lock freed|nested lock was not taken|"
                r"Nested lock was not taken|lock held at task exit)"),
    ("lockdep", r"^BUG: (held lock freed|MAX_LOCKDEP|looking up invalid subclass)"),
    ("soft_lockup", r"(watchdog: )?BUG: soft lockup - CPU#\d+ stuck"),
    ("soft_lockup", r"Watchdog detected hard LOCKUP on cpu"),
    ("hung_task", r"^INFO: task .+ blocked for more than \d+ seconds"),
    ("rcu_stall", r"^(rcu: )?INFO: rcu_\w+ (self-)?detected (stalls?|expedited stalls)"),
    ("rcu_stall", r"^(rcu: )?INFO: rcu_\w+ detected expedited stalls"),
    ("page_alloc_failure", r"page allocation failure: order:\d+"),
    ("vm_bug_on", r"^page dumped because: VM_(BUG|WARN)_ON"),
    ("oops", r"^BUG: (unable to handle|kernel NULL pointer dereference|"
             r"kernel paging request)"),
    ("oops", r"^general protection fault"),
    ("oops", r"^Oops: [0-9a-f]{4}"),
    ("bug", r"^kernel BUG at "),
    ("bug", r"^BUG: "),
    ("warning", r"^WARNING: "),
    ("cut_here", r"-\[ cut here \]-"),
]]

# Kinds whose report ends with the first stack dump's </TASK> (no end-trace marker).
ENDS_AT_TASK_END = {"lockdep", "hung_task", "rcu_stall", "soft_lockup", "page_alloc_failure"}
# Kinds closed by a ==== separator line.
ENDS_AT_SEPARATOR = {"kasan", "ubsan"}
# Lines that continue the report already open instead of starting a new one.
CONTINUES = {
    "oops": re.compile(r"^(Oops: |#PF: |PGD |general protection fault)"),
    "bug": re.compile(r"^(invalid opcode: |Oops: )"),
    "vm_bug_on": re.compile(r"^(-+\[ cut here \]-+|kernel BUG at |invalid opcode: |Oops: |"
                            r"WARNING: CPU)"),
    "warning": re.compile(r"^(WARNING: CPU|Modules linked in)"),
    "kasan": re.compile(r"^(BUG: KASAN|Read of size|Write of size)"),
}
PAGE_DUMP_START = re.compile(r"^page:[0-9a-f]+ refcount:")
# show_state()'s first line per task (panic_print=0x1 prints them after a panic)
PANIC_TASK_LIST = re.compile(r"^task:\S+\s+state:")



# ccache (CCACHE_BASEDIR = the worktree) hands gcc paths relative to the objdir, so __FILE__ in
# a WARN or BUG reads "../../worktrees/<tree>/<purpose>/mm/zsmalloc.c": titles name the tree path.
# What is cut: from a "../" through the first "worktrees/<tree>/<purpose>/" after it, the
# components between being non-empty and without spaces (the regex
# (?:\.\./)+(?:[^\s/]+/)*?worktrees/[^\s/]+/[^\s/]+/ was cubic on a line of ../../..).
# (a lookahead: occurrences may overlap, "worktrees/../worktrees/a/b/")
_WORKTREE_DIR = re.compile(r"(?<=/)(?=(worktrees/[^\s/]+/[^\s/]+/))")


def tidy_source_paths(title: str) -> str:
    """A splat title with zstest's scratch-worktree prefix cut from source paths (linear)."""
    if "worktrees/" not in title:
        return title
    return " ".join(_tidy_token(t) if "worktrees/" in t else t for t in title.split(" "))


def _tidy_token(token: str) -> str:
    import bisect
    # every place the cut may end, and every place a path component is empty or has a space
    ends = [(m.start(), m.start() + len(m.group(1))) for m in _WORKTREE_DIR.finditer(token)]
    starts = [e[0] for e in ends]
    breaks = [m.start() for m in re.finditer(r"(?=//)|\s", token)]
    out, emitted, search = [], 0, 0
    while True:
        p = token.find("../", search)
        if p < 0:
            break
        k = bisect.bisect_left(starts, p + 3)
        if k == len(starts):
            break
        q, end = ends[k]
        b = bisect.bisect_left(breaks, p)
        if b < len(breaks) and breaks[b] < q - 1:
            search = breaks[b] + 1      # no cut may span an empty component or a space
            continue
        out.append(token[emitted:p])
        emitted = search = end
    out.append(token[emitted:])
    return "".join(out)


@dataclass
class Splat:
    kind: str                    # one of KINDS
    title: str                   # the line that names it, e.g. "kernel BUG at mm/zsmalloc.c:1234!"
    text: str                    # the whole report, timestamps kept
    line_no: int                 # 1-based line of the console where it starts
    t: Optional[float] = None    # kernel timestamp of the title line, when printed
    wall: Optional[float] = None  # host monotonic time when the title line was seen
    fatal: bool = False          # the guest kernel is not to be trusted after it (is_fatal)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        where = f" at {self.t:.3f}s" if self.t is not None else ""
        return f"{self.kind}: {self.title} (console line {self.line_no}{where})"


def split_timestamp(line: str) -> Tuple[Optional[float], str]:
    """(kernel time or None, the message without the timestamp prefix)."""
    line = line.rstrip("\r\n").replace("\r", "")
    m = TIMESTAMP.match(line)
    if m:
        return float(m.group(1)), line[m.end():]
    return None, line


def classify(message: str) -> Optional[str]:
    for kind, pattern in START_PATTERNS:
        if pattern.search(message):
            return kind
    return None


@dataclass
class _Open:
    kind: str
    title: str
    lines: List[str]
    line_no: int
    t: Optional[float]
    wall: Optional[float]
    timestamped: bool
    last_t: Optional[float]
    awaiting_title: bool = False     # after "cut here", the next line names the splat
    seen_task_end: bool = False
    custom_message: bool = False     # a WARN(cond, fmt) message came before the WARNING line


class SplatScanner:
    """Finds splats in console lines fed one at a time."""

    def __init__(self, ignore: Sequence[Union[str, Pattern]] = (), first_line_no: int = 1):
        self.ignore = [re.compile(p) if isinstance(p, str) else p for p in ignore]
        # a console log appended to (a fresh guest after a crash) goes on numbering its lines
        self.line_no = first_line_no - 1
        self.current: Optional[_Open] = None
        self.recent: deque = deque(maxlen=12)     # (line_no, raw) before any splat
        self.done: List[Splat] = []

    def feed(self, line: str, wall: Optional[float] = None) -> List[Splat]:
        """Take one console line; return the splats it completed."""
        self.line_no += 1
        raw = line[:MAX_LINE_CHARS].rstrip("\r\n").replace("\r", "")
        t, msg = split_timestamp(raw)
        finished: List[Splat] = []
        cur = self.current
        if cur is not None:
            if self._ends_before(cur, t, msg):
                finished += self._close()
                cur = None
            else:
                kind = classify(msg) if not cur.awaiting_title else None
                if cur.awaiting_title:
                    if msg.strip():
                        real = classify(msg)
                        cur.kind = real if real not in (None, "cut_here") else "warning"
                        cur.custom_message = real is None
                        cur.title = msg.strip()
                        cur.t, cur.wall = t, wall
                        cur.awaiting_title = False
                    cur.lines.append(raw)
                    cur.last_t = t if t is not None else cur.last_t
                    return finished
                if kind is not None and not self._continues(cur, kind, msg):
                    finished += self._close()
                    cur = None
                else:
                    cur.lines.append(raw)
                    cur.last_t = t if t is not None else cur.last_t
                    if cur.kind == "vm_bug_on" and msg.startswith("kernel BUG at "):
                        cur.title += f" ({msg.strip()})"
                    elif cur.kind == "warning" and cur.custom_message and \
                            msg.startswith("WARNING: CPU"):
                        # WARN(cond, fmt): the location line names it, the message says why
                        cur.title = f"{msg.strip()} ({cur.title})"
                        cur.custom_message = False
                    if END_TRACE.search(msg):
                        finished += self._close()
                    elif msg.strip() == TASK_END and cur.kind in ENDS_AT_TASK_END:
                        finished += self._close()
                    elif (SEPARATOR.match(msg.strip()) and cur.kind in ENDS_AT_SEPARATOR
                          and len(cur.lines) > 2):
                        finished += self._close()
                    return finished
        kind = classify(msg)
        if kind is None:
            self.recent.append((self.line_no, raw))
            return finished
        start_no, lines = self.line_no, [raw]
        prev = self.recent[-1] if self.recent else None
        if prev is not None and SEPARATOR.match(split_timestamp(prev[1])[1].strip()):
            start_no, lines = prev[0], [prev[1], raw]
        if kind == "vm_bug_on":
            # the page dump printed just before names the page; keep it with the splat
            for i in range(len(self.recent) - 1, -1, -1):
                if PAGE_DUMP_START.match(split_timestamp(self.recent[i][1])[1]):
                    kept = list(self.recent)[i:]
                    start_no, lines = kept[0][0], [r for _, r in kept] + [raw]
                    break
        self.recent.clear()
        self.current = _Open(kind, msg.strip(), lines, start_no, t, wall,
                             timestamped=t is not None, last_t=t,
                             awaiting_title=(kind == "cut_here"))
        if END_TRACE.search(msg):
            finished += self._close()
        return finished

    def open_report(self) -> Optional[Tuple[str, str]]:
        """(kind, title) of the report being read now, once its title is known; else None."""
        cur = self.current
        if cur is None or cur.awaiting_title:
            return None
        return cur.kind, tidy_source_paths(cur.title)

    def _continues(self, cur: _Open, kind: str, msg: str) -> bool:
        pattern = CONTINUES.get(cur.kind)
        return bool(pattern and pattern.search(msg))

    def _ends_before(self, cur: _Open, t: Optional[float], msg: str) -> bool:
        if not msg.strip() and not cur.awaiting_title:
            return True
        if msg.startswith(MARKER_PREFIX):
            return True      # zstest's own test boundary: a report cut short ends here
        if len(cur.lines) >= MAX_LINES:
            return True
        if cur.kind == "panic" and PANIC_TASK_LIST.match(msg):
            return True      # panic_print's list of every task follows: not the panic's report
        if cur.timestamped and t is None:
            return True      # output that is not the kernel's (init, a shell) ends the report
        if t is not None and cur.last_t is not None and t - cur.last_t > GAP_S:
            return True
        return False

    def _close(self) -> List[Splat]:
        cur, self.current = self.current, None
        if cur is None:
            return []
        if cur.kind == "cut_here":
            cur.kind = "warning"
        title = tidy_source_paths(cur.title)
        splat = Splat(cur.kind, title, "\n".join(cur.lines), cur.line_no, cur.t, cur.wall,
                      fatal=is_fatal(cur.kind, title))
        if any(p.search(splat.title) for p in self.ignore):
            return []
        self.done.append(splat)
        return [splat]

    def flush(self) -> List[Splat]:
        """End of the log: close the report still open (a trace cut short is still a splat)."""
        return self._close()


def find_splats(lines: Iterable[str], ignore: Sequence[Union[str, Pattern]] = ()) -> List[Splat]:
    """All splats in console lines (a list, a file object, or text split into lines)."""
    if isinstance(lines, str):
        lines = lines.splitlines()
    scanner = SplatScanner(ignore)
    found: List[Splat] = []
    for line in lines:
        found += scanner.feed(line)
    found += scanner.flush()
    return found
