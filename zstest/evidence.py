"""The console log as the source of truth for splats, whatever ended the run.

The console monitor finds splats live, but a run can end in ways that leave its
in-memory view short: Ctrl-C mid-test, a guest lost while a trace was still
printing, a fresh guest booted after a crash. At the end of every run the whole
console.log is scanned again and every splat is put where it belongs: with the
test whose `zstest: begin/end <test> [nonce]` markers surround it, else with the
run. `reconcile` merges that into a RunResults; `splats_of_results_dir` gives the
same view to readers of a results directory (decode, report) that must not
believe a results.json that says less than its console.log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .results import CONSOLE_LOG, TestResult
from .splats import (MARKER_PREFIX, MAX_LINE_CHARS, Splat, SplatScanner, kind_words,
                     split_timestamp)
from .vm.stuck import INDUCED_PANIC, NMI_NOTE

# "zstest: begin test_x.py::test_y[p] [0123abcd]" as the plugin writes it into /dev/kmsg
MARKER = re.compile(MARKER_PREFIX + r"(begin|end) (.+) \[([0-9a-f]{8})\]\s*$")
# A console with more reports than this has said what it had to: the rest are counted, not
# kept (a hostile 1 GB log of WARNINGs must not become 1 GB of splats in memory).
MAX_SPLATS = 2000
READ_BYTES = 1 << 16


@dataclass
class ConsoleEvidence:
    """Every splat of a console log, split by the test that was running."""
    by_test: dict[str, list[Splat]] = field(default_factory=dict)
    outside: list[Splat] = field(default_factory=list)
    started: list[str] = field(default_factory=list)   # tests with a begin marker, in order
    unfinished: list[str] = field(default_factory=list)  # begun, never ended
    dropped: int = 0        # splats beyond MAX_SPLATS, counted only

    @property
    def all(self) -> list[Splat]:
        out = [s for splats in self.by_test.values() for s in splats] + self.outside
        return sorted(out, key=lambda s: s.line_no)


def console_lines(path: Path):
    """The lines of a console log, read streaming: each cut to MAX_LINE_CHARS (the rest of an
    over-long line is skipped unread into memory), split at b"\\n" as the live monitor does."""
    with open(path, "rb") as fh:
        while True:
            line = fh.readline(MAX_LINE_CHARS)
            if not line:
                return
            if not line.endswith(b"\n") and len(line) == MAX_LINE_CHARS:
                while True:     # the rest of this line: skipped in bounded reads
                    rest = fh.readline(READ_BYTES)
                    if not rest or rest.endswith(b"\n"):
                        break
            yield line.decode("utf-8", errors="replace").rstrip("\n")


@dataclass
class _Spans:
    """Which test each console line belongs to, from zstest's begin/end markers."""
    evidence: ConsoleEvidence
    spans: list = field(default_factory=list)      # (first line, end line, test)
    open_tests: dict = field(default_factory=dict)

    def feed(self, no: int, msg: str) -> None:
        m = MARKER.match(msg.strip())
        if m is None:
            # another zstest line (a fresh guest's banner): whatever was open ended with it
            self._close_all(no)
            return
        what, name = m.group(1), m.group(2)
        if what == "begin":
            self._close_all(no)         # a begin without its end
            self.open_tests = {name: no}
            self.evidence.started.append(name)
        elif name in self.open_tests:
            self.spans.append((self.open_tests.pop(name), no, name))

    def _close_all(self, no: int) -> None:
        for name, start in self.open_tests.items():
            self.spans.append((start, no, name))
            self.evidence.unfinished.append(name)
        self.open_tests = {}


def read_console(path: Path) -> ConsoleEvidence:
    """Scan a console log in one streaming pass: the splats, and the test each one happened in."""
    path = Path(path)
    evidence = ConsoleEvidence()
    if not path.is_file():
        return evidence
    spans = _Spans(evidence)
    scanner = SplatScanner()
    found: list[Splat] = []
    induced_after = None
    no = 0
    for no, line in enumerate(console_lines(path), 1):
        _, msg = split_timestamp(line)
        if msg.startswith(MARKER_PREFIX):
            spans.feed(no, msg)
            if induced_after is None and msg.strip() == MARKER_PREFIX + NMI_NOTE:
                induced_after = no
        _keep(found, scanner.feed(line), evidence, induced_after)
    _keep(found, scanner.flush(), evidence, induced_after)
    spans._close_all(no + 1)
    for splat in found:
        owner = next((name for start, end, name in spans.spans
                      if start < splat.line_no < end), None)
        if owner is None:
            evidence.outside.append(splat)
        else:
            evidence.by_test.setdefault(owner, []).append(splat)
    return evidence


def _keep(found: list[Splat], splats: list[Splat], evidence: ConsoleEvidence,
          induced_after) -> None:
    for splat in splats:
        # the panic an NMI from zstest caused (vm/stuck.py: a boot that hung) is no kernel evidence
        if induced_after is not None and splat.line_no > induced_after \
                and splat.kind == "panic" and INDUCED_PANIC in splat.title:
            continue
        if len(found) >= MAX_SPLATS:
            evidence.dropped += 1
            continue
        found.append(splat)


def _key(s: dict[str, Any]) -> tuple:
    """One splat, as the live scan and a rescan both see it: its kind and kernel timestamp
    (titles change: older results kept ccache's ../../worktrees/ paths in them)."""
    if s.get("t") is None:
        return (s.get("kind"), s.get("title"))
    return (s.get("kind"), s.get("t"))


def _merge(known: list[dict[str, Any]], found: list[Splat]) -> list[dict[str, Any]]:
    """The console's splats, keeping what the live view knew of each (host time seen)."""
    live = {_key(s): s for s in known}
    merged = []
    for splat in found:
        d = splat.to_dict()
        seen = live.pop(_key(d), None)
        if seen is not None and seen.get("wall") is not None:
            d["wall"] = seen["wall"]
        if seen is not None and "decoded" in seen:
            d["decoded"] = seen["decoded"]
        merged.append(d)
    # a splat only the live view has (the log could not be written whole): keep it too
    merged += list(live.values())
    return sorted(merged, key=lambda s: s.get("line_no") or 0)


def reconcile(run, console_log: Path, *, unfinished_status: str = "error") -> ConsoleEvidence:
    """Put every splat of console_log into run (a RunResults): per test, or at run level.

    A test with a splat fails, whatever it asserted. A test that began in the log but
    has no result (the run ended while it ran) is added with `unfinished_status`.
    """
    evidence = read_console(console_log)
    by_name = {t.name: t for t in run.tests}
    for name in evidence.started:
        if name not in by_name:
            t = TestResult(name=name, status=unfinished_status, runs=[unfinished_status],
                           message="the run ended while this test was running")
            run.tests.append(t)
            by_name[name] = t
    attributed = set()
    for name, test in by_name.items():
        found = evidence.by_test.get(name, [])
        attributed |= {_key(s.to_dict()) for s in found}
        if not found and not test.splats:
            continue
        test.splats = _merge(test.splats, found)
        # with the kernel's evidence a test failed, also when its guest was lost (not "error")
        if test.splats and test.status in ("passed", "skipped", "error"):
            test.status = "failed"
            test.runs = [("failed" if r in ("passed", "error") else r) for r in test.runs] \
                or ["failed"]
        if test.splats and not test.message.startswith("the kernel logged"):
            first = test.splats[0]
            why = f"the kernel logged {kind_words(first.get('kind', 'splat'))}: {first.get('title')}"
            test.message = why + ("\n" + test.message if test.message else "")
    # a splat the live view gave to a test (printed just before that test's begin marker
    # reached the console) stays with the test: never listed twice
    in_tests = attributed | {_key(sp) for t in run.tests for sp in t.splats}
    outside = [sp for sp in run.splats if _key(sp) not in in_tests]
    run.splats = _merge(outside, [sp for sp in evidence.outside
                                  if _key(sp.to_dict()) not in in_tests])
    return evidence


def splats_of_results_dir(results_dir: Path, recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every splat of a results dir: those results.json recorded, plus any its console.log
    holds that results.json lacks (a run that ended before it could write them)."""
    console = Path(results_dir) / CONSOLE_LOG
    if not console.is_file():
        return list(recorded)
    return _merge(list(recorded), read_console(console).all)


def missing_splats(data: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """results.json data with the splats its console.log holds and it lacks added (a copy).

    For readers (decode, report) of a results dir whose run ended before it could write
    every splat; data may come from someone else, so only well-formed entries are trusted.
    """
    console = Path(results_dir) / CONSOLE_LOG
    if not console.is_file() or not isinstance(data, dict):
        return data
    evidence = read_console(console)
    tests = [dict(t) for t in (data.get("tests") or []) if isinstance(t, dict)]
    run_splats = [s for s in (data.get("splats") or []) if isinstance(s, dict)]
    known = {_key(s) for t in tests for s in (t.get("splats") or []) if isinstance(s, dict)}
    known |= {_key(s) for s in run_splats}
    by_name = {str(t.get("name")): t for t in tests}
    for name, found in evidence.by_test.items():
        new = [s.to_dict() for s in found if _key(s.to_dict()) not in known]
        if not new:
            continue
        test = by_name.get(name)
        if test is None:
            test = {"name": name, "status": "error", "splats": []}
            tests.append(test)
            by_name[name] = test
        test["splats"] = [s for s in (test.get("splats") or []) if isinstance(s, dict)] + new
    run_splats += [s.to_dict() for s in evidence.outside if _key(s.to_dict()) not in known]
    return dict(data, tests=tests, splats=run_splats)
