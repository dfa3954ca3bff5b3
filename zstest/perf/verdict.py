"""Per metric: regressed / improved / no significant change / too few runs / not measured.

A timing metric is judged by Welch's test and its size together: regressed (or improved) when
p < `p` AND the change of the means is at least `min_change_pct` in the worse (better)
direction. Either alone is not enough: on a loaded TCG host a 1 % shift can be "significant",
and a 10 % shift over three noisy runs can be chance. An exact metric (memory used by
identical data: equal between runs of one kernel) needs no test: a change of `exact_change_pct`
or more is the verdict, from any number of runs. A metric one side never recorded is "not
measured on A|B", never compared as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from ..errors import EXIT_OK, EXIT_TEST_FAILED, BadInput
from .samples import SideRuns
from .stats import MetricStats, describe

REGRESSED, IMPROVED, SAME = "regressed", "improved", "no significant change"
TOO_FEW = "too few runs"
# The verdicts in the order the table lists them (worst news first).
ORDER = [REGRESSED, IMPROVED, TOO_FEW, "not measured on A", "not measured on B", SAME]


@dataclass(frozen=True)
class Thresholds:
    p: float = 0.05                  # Welch's p below this, and
    min_change_pct: float = 5.0      # a change of the means at least this: a timing verdict
    exact_change_pct: float = 1.0    # an exact metric's change at least this: a verdict
    min_runs: int = 3                # fewer runs a side: no p-value, "too few runs"

    def check(self) -> "Thresholds":
        if not 0 < self.p < 1:
            raise BadInput(f"--p-threshold must be between 0 and 1 (got {self.p:g}).")
        if self.min_change_pct < 0 or self.exact_change_pct < 0:
            raise BadInput("--min-change and --exact-change are percentages, 0 or more.")
        if self.min_runs < 2:
            raise BadInput(f"Welch's test needs at least 2 runs a side (got {self.min_runs}).")
        return self


@dataclass
class MetricVerdict:
    name: str
    unit: str
    better: str
    exact: bool
    test: str
    values_a: List[float]
    values_b: List[float]
    verdict: str
    stats: Optional[MetricStats] = None   # None when a side has no value
    notes: List[str] = field(default_factory=list)

    @property
    def worse(self) -> bool:
        return self.verdict == REGRESSED


def _direction(change_pct: float, better: str) -> str:
    """regressed or improved, for a change of the mean in % and the metric's good direction."""
    up_is_good = better == "higher"
    return IMPROVED if (change_pct > 0) == up_is_good else REGRESSED


def _exact_notes(v: MetricVerdict, s: MetricStats) -> List[str]:
    notes = []
    for tag, same, values in (("A", s.identical_a, v.values_a), ("B", s.identical_b, v.values_b)):
        if len(values) == 1:
            notes.append(f"{tag}: one run, equality between runs not seen")
        elif not same:
            notes.append(f"{tag}: runs differ ({min(values):g} .. {max(values):g}), expected "
                         f"identical")
    return notes


def judge(name: str, a: SideRuns, b: SideRuns, th: Thresholds) -> MetricVerdict:
    """The verdict on one metric between side A (old) and side B (new)."""
    ma, mb = a.measure(name), b.measure(name)
    info = mb or ma
    # exact only when every run of both sides said so: one that did not is judged as a timing
    exact = (ma is None or a.exact(name)) and (mb is None or b.exact(name))
    v = MetricVerdict(name=name, unit=info.unit, better=info.better, exact=exact,
                      test=info.test, values_a=a.values(name), values_b=b.values(name),
                      verdict=SAME)
    if ma is None or mb is None:
        v.verdict = "not measured on A" if ma is None else "not measured on B"
        return v
    if ma.better != mb.better:
        v.notes.append(f"A records it as {ma.better} is better, B as {mb.better}; B's kept")
    if info.exact and not exact:
        v.notes.append("not exact in every run (a run saw it differ): judged by Welch's test")
    s = v.stats = describe(v.values_a, v.values_b)
    if s.change_pct is None:
        v.notes.append("A's mean is 0: no relative change")
        v.verdict = SAME if s.mean_b == 0 else _direction(s.mean_b, v.better)
        return v
    if v.exact:
        v.notes += _exact_notes(v, s)
        if abs(s.change_pct) >= th.exact_change_pct:
            v.verdict = _direction(s.change_pct, v.better)
        return v
    if min(s.n_a, s.n_b) < th.min_runs:
        v.verdict = TOO_FEW
        v.notes.append(f"{s.n_a} run(s) on A, {s.n_b} on B; Welch's test needs {th.min_runs} a side")
        return v
    if s.p is None:
        v.notes.append("no variance on either side: judged on the change alone")
        significant = True
    else:
        significant = s.p < th.p
    if significant and abs(s.change_pct) >= th.min_change_pct:
        v.verdict = _direction(s.change_pct, v.better)
    return v


@dataclass
class PerfComparison:
    a: SideRuns
    b: SideRuns
    thresholds: Thresholds
    metrics: List[MetricVerdict]
    accel: str                         # kvm / tcg / mixed / unknown
    arch: str
    failed_runs: List[str] = field(default_factory=list)   # "B run-02: failed (why)"
    setup: dict = field(default_factory=dict)              # how the runs were made (run.py)

    @property
    def regressed(self) -> List[MetricVerdict]:
        return [m for m in self.metrics if m.worse]

    @property
    def exit_code(self) -> int:
        """1 when a metric regressed beyond the thresholds or a run of B failed: the kernel is
        to blame, as for a functional regression."""
        b_failed = any(f.startswith("B ") for f in self.failed_runs)
        return EXIT_TEST_FAILED if self.regressed or b_failed else EXIT_OK

    def counts(self) -> dict:
        out = {k: 0 for k in ORDER}
        for m in self.metrics:
            out[m.verdict] += 1
        return out


def _accel(a: SideRuns, b: SideRuns) -> str:
    names = {r.accel or "unknown" for r in a.runs + b.runs}
    return names.pop() if len(names) == 1 else "mixed (" + ", ".join(sorted(names)) + ")"


def _failed(side: SideRuns) -> List[str]:
    return [f"{side.label} {r.results_dir.name}: {r.status}" + (f" ({r.message})" if r.message else "")
            for r in side.runs if r.status != "passed"]


def check_same_arch(a: SideRuns, b: SideRuns) -> str:
    """The one arch both sides ran; BadInput when they differ (as `compare` refuses it)."""
    arches = set(a.arches) | set(b.arches)
    if len(arches) > 1:
        raise BadInput(f"A ({a.path}) ran {', '.join(a.arches)} and B ({b.path}) ran "
                       f"{', '.join(b.arches)}: that compares the architectures, not the "
                       f"revisions; pass --allow-arch-mismatch to compare them anyway.")
    return arches.pop()


def compare_runs(a: SideRuns, b: SideRuns, th: Thresholds = Thresholds(),
                 allow_arch_mismatch: bool = False) -> PerfComparison:
    """Every metric either side recorded, judged; worst news first, then by name order."""
    th.check()
    arch = " / ".join(sorted(set(a.arches) | set(b.arches))) if allow_arch_mismatch \
        else check_same_arch(a, b)
    names = b.names() + [n for n in a.names() if n not in b.names()]
    metrics = [judge(n, a, b, th) for n in names]
    metrics.sort(key=lambda m: ORDER.index(m.verdict))
    return PerfComparison(a=a, b=b, thresholds=th, metrics=metrics, accel=_accel(a, b),
                          arch=arch, failed_runs=_failed(a) + _failed(b))
