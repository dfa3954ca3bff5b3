"""The perf metrics of many runs per side, read from results dirs.

A guest test records `record.perf(name, value, unit, better, exact)`; results.json then holds
tests[].metrics.perf = {name: {value, unit, better: higher|lower, exact}}. A side is a list of
runs (one results dir each) of one kernel: a results dir, or a directory holding several (e.g.
`a/` of an earlier `compare --perf` out dir). Metrics are keyed by name; a name two tests of
one run record is qualified with the test's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import BadInput
from ..manifests import PERF_JSON, find_results, has_results
from ..target import Target

BETTER = ("higher", "lower")


@dataclass(frozen=True)
class Measure:
    value: float
    unit: str
    better: str          # higher / lower
    exact: bool          # from identical data: equal between runs of one kernel
    test: str            # the guest test that recorded it


@dataclass
class Run:
    """One boot-and-run of a kernel: its results dir and the perf metrics it recorded."""
    results_dir: Path
    status: str
    metrics: Dict[str, Measure]
    accel: str           # kvm / tcg / "" (unknown)
    target: Target       # what the kernel was built for: compare.Side.target
    message: str = ""


@dataclass
class SideRuns:
    label: str
    path: Path
    runs: List[Run] = field(default_factory=list)

    def values(self, name: str) -> List[float]:
        return [r.metrics[name].value for r in self.runs if name in r.metrics]

    def measure(self, name: str) -> Optional[Measure]:
        return next((r.metrics[name] for r in self.runs if name in r.metrics), None)

    def exact(self, name: str) -> bool:
        """Every run recorded name as exact (a run that saw it differ within itself did not)."""
        return all(r.metrics[name].exact for r in self.runs if name in r.metrics)

    def names(self) -> List[str]:
        seen: Dict[str, None] = {}
        for r in self.runs:
            seen.update(dict.fromkeys(r.metrics))
        return list(seen)

    @property
    def arches(self) -> List[str]:
        """"x86_64", "arm64 64K": the labels of the targets the runs booted."""
        return sorted({r.target.label for r in self.runs})


def _measure(entry, where: str, test: str) -> Measure:
    if not isinstance(entry, dict):
        raise BadInput(f"{where} is not an object {{value, unit, better, exact}}.")
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{where}.value is {value!r}, not a finite number.")
    better = entry.get("better")
    if better not in BETTER:
        raise BadInput(f"{where}.better is {better!r}; it must be 'higher' or 'lower'.")
    unit = entry.get("unit")
    if not isinstance(unit, str):
        raise BadInput(f"{where}.unit is {unit!r}, not a string.")
    return Measure(float(value), unit, better, bool(entry.get("exact", False)), test)


def run_metrics(results_path: Path, tests: list) -> Dict[str, Measure]:
    """{metric name: Measure} from a results.json's tests list (shape checked: exit 2)."""
    found: Dict[str, List[Measure]] = {}
    for i, t in enumerate(tests):
        perf = (t.get("metrics") or {}).get("perf")
        if perf is None:
            continue
        where = f"{results_path}: tests[{i}].metrics.perf"
        if not isinstance(perf, dict):
            raise BadInput(f"{where} is not an object of metrics.")
        for name, entry in perf.items():
            found.setdefault(name, []).append(_measure(entry, f"{where}.{name}", t.get("name", "")))
    out: Dict[str, Measure] = {}
    for name, measures in found.items():
        if len(measures) == 1:
            out[name] = measures[0]
        else:
            for m in measures:
                out[f"{m.test.split('::')[-1]}:{name}"] = m
    return out


def load_run(results_dir: Path) -> Run:
    from ..compare import load_side
    side = load_side(results_dir)
    results = side.results
    return Run(results_dir=results.results_dir, status=results.status or "error",
               metrics=run_metrics(results.path, results.tests), accel=results.accel.name or "",
               target=side.target, message=(results.message or "").splitlines()[0]
               if results.message else "")


def results_dirs(path: Path) -> List[Path]:
    """The results dirs a side names: itself, or every one found under it (sorted)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise BadInput(f"{path} is not a directory; a side of `compare --perf` is a build dir, a "
                       f"series, a results dir or a directory holding results dirs.")
    if has_results(path):
        return [path]
    if (path / PERF_JSON).is_file():
        # a compare --perf out dir holds both sides (and the warm-ups): never one side's runs
        raise BadInput(f"{path} is a `compare --perf` directory holding both sides; name "
                       f"{path / 'a'} or {path / 'b'}.")
    return sorted(find_results(path))


def load_side_runs(label: str, path: Path) -> SideRuns:
    """Every run under path; BadInput when none holds a perf metric."""
    dirs = results_dirs(path)
    if not dirs:
        raise BadInput(f"{path} holds no results.json at any depth.")
    side = SideRuns(label=label, path=Path(path), runs=[load_run(d) for d in dirs])
    if not any(r.metrics for r in side.runs):
        raise BadInput(f"no run under {path} recorded a perf metric; run the perf suite "
                       f"(--suite perf or perf-small).")
    return side
