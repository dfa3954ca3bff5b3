"""Pure parser of kernel build output (make + gcc + ld + modpost).

parse_build_log(lines) -> BuildLog with diagnostics as file:line:message, the
units that were compiled, and the failed make targets. No I/O: tested on
recorded real logs in tests/data/build/.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, List, Optional

# gcc: path:line:col: warning: message [-Wflag]   (col optional)
_GCC_RE = re.compile(
    r"^(?P<file>[^\s:][^:]*?):(?P<line>\d+):(?:(?P<col>\d+):)?\s+"
    r"(?P<kind>warning|error|fatal error):\s+(?P<msg>.*)$")
# ld: mm/zsmalloc.o: in function `f': zsmalloc.c:(.text+0x1a): undefined reference to `g'
_LD_UNDEF_RE = re.compile(r"^(?:\S*ld(?:\.bfd)?): (?P<file>[^:]+): (?P<msg>.*undefined reference.*)$")
_LD_ERR_RE = re.compile(r"^(?:\S*/)?ld(?:\.bfd)?: (?P<msg>.*)$")
# modpost: ERROR: modpost: "sym" [drivers/x.ko] undefined!
_MODPOST_RE = re.compile(r"^(?P<kind>ERROR|WARNING): modpost: (?P<msg>.*)$")
_MAKE_FAIL_RE = re.compile(r"^make(?:\[\d+\])?: \*\*\* \[(?:(?P<mk>[^:\]]+):(?P<mkline>\d+): )?(?P<target>[^\]]+)\] (?P<what>Error \d+|Interrupt|Killed.*)$")
_KBUILD_STEP_RE = re.compile(r"^\s{2}(?P<step>[A-Z][A-Z0-9_\[\] ]{0,8}?)\s+(?P<target>\S+)$")
_FLAG_RE = re.compile(r"\s*\[(-W[^\]]+|enabled by default)\]\s*$")
_NOSPACE_RE = re.compile(r"No space left on device")


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int
    col: Optional[int]
    kind: str              # warning / error
    message: str
    flag: Optional[str] = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def key(self) -> tuple:
        """Identity across patches: line numbers shift when a patch adds lines above."""
        return (self.file, self.kind, self.message)

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.message}"

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line, "col": self.col, "kind": self.kind,
                "message": self.message, "flag": self.flag}


@dataclass
class BuildLog:
    warnings: List[Diagnostic] = field(default_factory=list)
    errors: List[Diagnostic] = field(default_factory=list)
    compiled: List[str] = field(default_factory=list)      # objects from "  CC  x.o" lines
    steps: Counter = field(default_factory=Counter)         # CC, LD, AR, ... counts
    failed_targets: List[str] = field(default_factory=list)
    no_space: bool = False
    returncode: Optional[int] = None   # set by the caller that ran make
    tail: str = ""
    timed_out: bool = False

    @property
    def first_error(self) -> Optional[Diagnostic]:
        return self.errors[0] if self.errors else None

    def compiled_sources(self) -> List[str]:
        return [c[:-2] + ".c" for c in self.compiled if c.endswith(".o")]


def normalize_path(path: str, srctree: Optional[str] = None, objdir: Optional[str] = None) -> str:
    """A diagnostic's path relative to the source tree when it lies in it."""
    if objdir and not os.path.isabs(path):
        path = os.path.normpath(os.path.join(objdir, path))
    for root in (srctree, objdir):
        if root and os.path.isabs(path):
            root = os.path.normpath(root)
            if path == root or path.startswith(root + os.sep):
                return os.path.relpath(path, root)
    return path


def parse_line(line: str, log: BuildLog, srctree: Optional[str] = None,
               objdir: Optional[str] = None) -> Optional[Diagnostic]:
    """Feed one line into log; returns the diagnostic it held, if any."""
    line = line.rstrip("\n")
    if _NOSPACE_RE.search(line):
        log.no_space = True
    m = _KBUILD_STEP_RE.match(line)
    if m:
        step = m.group("step").strip()
        log.steps[step] += 1
        if step in ("CC", "CC [M]") and m.group("target").endswith(".o") \
                and not m.group("target").endswith(".mod.o"):
            log.compiled.append(m.group("target"))
        return None
    m = _GCC_RE.match(line)
    if m:
        kind = "error" if m.group("kind") in ("error", "fatal error") else "warning"
        msg = m.group("msg").strip()
        flag = None
        fm = _FLAG_RE.search(msg)
        if fm:
            flag = fm.group(1)
            msg = msg[:fm.start()].rstrip()
        diag = Diagnostic(normalize_path(m.group("file"), srctree, objdir), int(m.group("line")),
                          int(m.group("col")) if m.group("col") else None, kind, msg, flag)
        (log.errors if kind == "error" else log.warnings).append(diag)
        return diag
    m = _LD_UNDEF_RE.match(line)
    if m:
        diag = Diagnostic(normalize_path(m.group("file"), srctree, objdir), 0, None, "error",
                          m.group("msg").strip())
        log.errors.append(diag)
        return diag
    m = _MODPOST_RE.match(line)
    if m:
        kind = "error" if m.group("kind") == "ERROR" else "warning"
        diag = Diagnostic("modpost", 0, None, kind, m.group("msg").strip())
        (log.errors if kind == "error" else log.warnings).append(diag)
        return diag
    m = _MAKE_FAIL_RE.match(line)
    if m:
        log.failed_targets.append(m.group("target"))
        return None
    m = _LD_ERR_RE.match(line)
    if m and ("error" in m.group("msg").lower() or "multiple definition" in m.group("msg")):
        diag = Diagnostic("ld", 0, None, "error", m.group("msg").strip())
        log.errors.append(diag)
        return diag
    return None


def parse_build_log(lines: Iterable[str], srctree: Optional[str] = None,
                    objdir: Optional[str] = None) -> BuildLog:
    log = BuildLog()
    for line in lines:
        parse_line(line, log, srctree, objdir)
    return log


def new_warnings(previous: Iterable[Diagnostic], current: Iterable[Diagnostic]) -> List[Diagnostic]:
    """Warnings of `current` beyond those of `previous`, matched without line numbers.

    A multiset: a patch that adds a second copy of an existing warning is caught.
    """
    seen = Counter(d.key() for d in previous)
    out = []
    for diag in current:
        if seen[diag.key()] > 0:
            seen[diag.key()] -= 1
        else:
            out.append(diag)
    return out


def dedupe(diags: Iterable[Diagnostic]) -> List[Diagnostic]:
    """The same header warning is printed once per unit including it: keep one."""
    seen = set()
    out = []
    for d in diags:
        k = (d.file, d.line, d.kind, d.message)
        if k not in seen:
            seen.add(k)
            out.append(d)
    return out
