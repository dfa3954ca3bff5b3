"""Pure parser of the zstorture module's KTAP output on the kernel log.

The module (kmod/zstorture.c) prints every line as "zstorture: <KTAP line>"
through printk, so its lines survive interleaving with the rest of the kernel
log and can be picked out of `dmesg` or the serial console:

    zstorture: KTAP version 1
    zstorture: # zstorture: threads=2 objects=2048 ... corrupt_one=0
    zstorture: # zstorture: api=zs_map_object page_size=4096 huge_class_size=3264 kernel=6.1
    zstorture: 1..3
    zstorture: # MISMATCH thread=0 pool=0 phase=run obj=17 ... offset=5 expected=0x5a actual=0xa5 bad_bytes=1
    zstorture: # thread0: pool=0 ops=... mismatches=0 ...
    zstorture: ok 1 thread0
    zstorture: # pools: pools=1 pages_left_after_free=0
    zstorture: ok 2 pools
    zstorture: # zstorture done: result=pass threads=2 ... elapsed_ms=30012

A diagnostic "# NAME: k=v ..." line gives the counters of the subtest NAME.
The "# zstorture done:" line is the final line: a run without it crashed or
has not finished, and never passes.  When the log holds several runs, the
last one is parsed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional, Union

PREFIX = "zstorture: "
FINAL_MARK = "# zstorture done:"

# the name is [^#]* stripped afterwards: a lazy [^#]*? before \s* was quadratic on spaces
_RESULT = re.compile(r"^(not ok|ok)\s+(\d+)(?:\s+-)?\s*([^#]*)(?:#\s*(.*))?$")
_PLAN = re.compile(r"^1\.\.(\d+)$")
_VERSION = re.compile(r"^(?:KTAP|TAP) version (\d+)$")
_COUNTERS = re.compile(r"^#\s*([A-Za-z][\w-]*):\s+(\S+=.*)$")
# a key starts a word: retrying \w+ from inside a long word without "=" was quadratic
_PAIR = re.compile(r"(?<!\w)(\w+)=(\S+)")
# a module line is short; a longer one (a corrupted log) is read only this far
MAX_LINE_CHARS = 4096
MAX_DIGITS = 18


def _value(text: str) -> Union[int, str]:
    if len(text) > MAX_DIGITS + 2:
        return text         # int() refuses 4300 digits; no counter has 19
    try:
        return int(text, 0) if text.startswith("0x") else int(text)
    except ValueError:
        return text


def _int(value: object, default: int = -1) -> int:
    """A counter as an int: a text value (thread=abc) or an absurd number is default."""
    if isinstance(value, int):
        return value
    text = str(value)
    return int(text) if text.isdigit() and len(text) <= MAX_DIGITS else default


def _pairs(text: str) -> Dict[str, Union[int, str]]:
    return {k: _value(v) for k, v in _PAIR.findall(text)}


@dataclass
class Mismatch:
    thread: int
    obj: int
    offset: int
    expected: int
    actual: int
    fields: Dict[str, Union[int, str]] = field(default_factory=dict)
    line: str = ""

    def describe(self) -> str:
        f = self.fields
        return (f"thread {self.thread} object {self.obj} (size {f.get('size')}, "
                f"phase {f.get('phase')}): byte {self.offset} is 0x{self.actual:02x}, "
                f"expected 0x{self.expected:02x} ({f.get('bad_bytes')} bad bytes)")


@dataclass
class Subtest:
    number: int
    name: str
    ok: bool
    directive: str = ""
    counters: Dict[str, Union[int, str]] = field(default_factory=dict)


@dataclass
class TortureReport:
    """One run of the module, as its KTAP said it."""
    found: bool = False                 # a KTAP header of ours was seen
    version: Optional[int] = None
    params: Dict[str, Union[int, str]] = field(default_factory=dict)
    plan: Optional[int] = None
    subtests: List[Subtest] = field(default_factory=list)
    mismatches: List[Mismatch] = field(default_factory=list)
    corruptions: List[Dict[str, Union[int, str]]] = field(default_factory=list)
    final: Optional[Dict[str, Union[int, str]]] = None
    problems: List[str] = field(default_factory=list)
    lines: List[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.final is not None

    @property
    def result(self) -> str:
        """pass / fail / aborted / incomplete (no final line) / absent (no output)."""
        if not self.found:
            return "absent"
        if self.final is None:
            return "incomplete"
        declared = str(self.final.get("result", "fail"))
        if declared == "pass" and (self.problems or self.mismatches or
                                   not all(s.ok for s in self.subtests)):
            return "fail"
        return declared

    @property
    def passed(self) -> bool:
        return self.result == "pass"

    def total(self, name: str) -> int:
        """A counter summed over the thread subtests (the final line's value when present)."""
        if self.final and isinstance(self.final.get(name), int):
            return int(self.final[name])
        return sum(int(s.counters.get(name, 0)) for s in self.subtests
                   if s.name.startswith("thread") and isinstance(s.counters.get(name, 0), int))

    def summary(self) -> str:
        if not self.found:
            return "the torture module printed no KTAP header"
        if self.final is None:
            done = len(self.subtests)
            return (f"the torture module printed no final line ({done} of "
                    f"{self.plan if self.plan is not None else '?'} subtests reported): "
                    f"it crashed, hung or is still running")
        text = (f"{self.result}: {self.total('ops')} operations, {self.total('allocs')} "
                f"allocations ({self.total('huge_allocs')} huge), {self.total('verifies')} "
                f"verifications, {self.total('mismatches')} mismatches, "
                f"{self.total('compactions')} compactions")
        bad = [s.name for s in self.subtests if not s.ok]
        if bad:
            text += f"; not ok: {', '.join(bad)}"
        if self.problems:
            text += "; " + "; ".join(self.problems)
        return text

    def to_dict(self) -> Dict:
        d = asdict(self)
        d.pop("lines")
        d["result"] = self.result
        d["complete"] = self.complete
        return d


def extract_lines(text_or_lines: Union[str, Iterable[str]], prefix: str = PREFIX) -> List[str]:
    """The module's lines with everything up to and including the prefix removed.

    Accepts `dmesg` output, `dmesg -r` (<6> levels), or a serial console log
    (timestamps, carriage returns); other kernel lines are dropped.
    """
    lines = text_or_lines.splitlines() if isinstance(text_or_lines, str) else text_or_lines
    out = []
    for raw in lines:
        line = raw[:MAX_LINE_CHARS].rstrip("\r\n")
        at = line.find(prefix)
        if at >= 0:
            out.append(line[at + len(prefix):].rstrip())
    return out


def parse_torture_log(text_or_lines: Union[str, Iterable[str]], prefix: str = PREFIX) -> TortureReport:
    """The last zstorture run found in a kernel log."""
    lines = extract_lines(text_or_lines, prefix)
    starts = [i for i, ln in enumerate(lines) if _VERSION.match(ln)]
    report = TortureReport()
    if not starts:
        return report
    run = lines[starts[-1]:]
    report.found = True
    report.lines = run
    report.version = _int(_VERSION.match(run[0]).group(1))
    pending: Dict[str, Dict[str, Union[int, str]]] = {}
    for line in run[1:]:
        if line.startswith(FINAL_MARK):
            report.final = _pairs(line[len(FINAL_MARK):])
            continue
        plan = _PLAN.match(line)
        if plan:
            report.plan = _int(plan.group(1))
            continue
        result = _RESULT.match(line)
        if result:
            name = (result.group(3) or "").strip()
            report.subtests.append(Subtest(
                number=_int(result.group(2)), name=name, ok=result.group(1) == "ok",
                directive=(result.group(4) or "").strip(), counters=pending.pop(name, {})))
            continue
        if line.startswith("# MISMATCH"):
            f = _pairs(line)
            report.mismatches.append(Mismatch(
                thread=_int(f.get("thread", -1)), obj=_int(f.get("obj", -1)),
                offset=_int(f.get("offset", -1)), expected=_int(f.get("expected", -1)),
                actual=_int(f.get("actual", -1)), fields=f, line=line))
            continue
        if line.startswith("# corrupt_one:"):
            report.corruptions.append(_pairs(line))
            continue
        counters = _COUNTERS.match(line)
        if counters:
            name, rest = counters.group(1), counters.group(2)
            if name == "zstorture":
                report.params.update(_pairs(rest))
            else:
                pending[name] = _pairs(rest)
    _check(report)
    return report


def _check(report: TortureReport) -> None:
    numbers = [s.number for s in report.subtests]
    if numbers != list(range(1, len(numbers) + 1)):
        report.problems.append(f"subtests are numbered {numbers}, not 1..{len(numbers)}")
    if report.final is not None and report.plan is not None and len(numbers) != report.plan:
        report.problems.append(f"the plan said {report.plan} subtests but {len(numbers)} reported")
    if report.final is not None and report.plan is None:
        report.problems.append("no plan line")
    reported = report.total("mismatches")
    if report.final is not None and reported and not report.mismatches:
        report.problems.append(f"{reported} mismatches counted but none described")
