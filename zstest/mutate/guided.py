"""Coverage-guided mutation: which tests can kill a mutant, in the order most likely to.

The baseline of a guided `zstest mutate` is a `--coverage` run; its coverage map (affected.py)
says which tests executed each line, how often, and how long each test took. A mutant on a line
no test executed cannot change what any test sees: `not_covered`, not built, not run. The others
run only the tests that executed their line, highest executions per second first (a test that
runs the line thousands of times in a few seconds is the likeliest quick killer), then, in the
same boot, the rest of the selection, stopping at the first kill (run.py): a killed mutant
rarely needs more than its first test, and a survivor has met the whole selection.
A line the kernel runs while booting, or a file the map has no coverage of, gets the whole
selection (no guidance). Pure: the map and the mutant in, the plan out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..affected import line_hits
from ..coverage import BOOT
from ..manifests import CoverageMap


@dataclass
class Guidance:
    tests: list[str] | None        # the tests to run in order; [] not covered; None the whole selection
    why: str
    hits: dict[str, int] = field(default_factory=dict)    # test -> executions of the mutant's lines

    def to_dict(self) -> dict:
        return {"candidates": self.tests, "why": self.why, "hits": self.hits}


def mutant_lines(line: int, end_line: int) -> range:
    """The lines of the baseline a mutant changes (a pure insertion: the line it precedes)."""
    return range(line, max(end_line, line) + 1)


def guide(cmap: CoverageMap, path: str, line: int, end_line: int,
          selection: list[str] | None = None) -> Guidance:
    """Which of the map's tests (of selection: the tests the baseline ran, when given) can kill
    a mutant of path:line..end_line, likeliest first."""
    if path not in cmap.files:
        return Guidance(None, f"the coverage map has no line coverage of {path}")
    hits: dict[str, int] = {}
    what = ""
    for n in mutant_lines(line, end_line):
        found, what = line_hits(cmap, path, n)
        for name, count in found.items():
            if name == BOOT or selection is None or name in selection:
                hits[name] = hits.get(name, 0) + count
    if BOOT in hits:
        return Guidance(None, f"{what} runs while the kernel boots, before every test")
    if not hits:
        return Guidance([], f"no test executed {what} in the baseline's coverage run")

    def duration(name: str) -> float:
        return float(cmap.tests[name].get("duration_s") or 0.0)

    order = sorted(hits, key=lambda n: (-hits[n] / max(duration(n), 1.0), duration(n), n))
    return Guidance(order, f"{len(order)} test(s) executed {what}", hits)
