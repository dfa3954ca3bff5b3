"""The compare stage: two runs (or builds) side by side, and many CI cells in one table.

A side is a results directory (results.json, and the build.json its kernel.build_dir
names when that still exists), a build directory (build.json only) or one of those
JSON files. compare() is pure over the loaded manifests; `zstest compare SERIES_A SERIES_B`
builds and runs each revision through the pipeline (commands/compare_cmd.py) first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .errors import EXIT_OK, EXIT_TEST_FAILED, EXIT_USAGE, BadInput
from .manifests import (BUILD_JSON, RESULTS_JSON, BuildManifest, BuildSeries, ResultsManifest,
                        build_of_results, find_results, has_build, has_cell, has_results, load_build, load_cell,
                        load_results, read_object)
from .target import Target

PATCH_SUFFIXES = (".patch", ".diff", ".mbox", ".eml")
WIDTH = 100                 # the text table fits a 100-column terminal
TOP_METRICS = 4             # counters shown per test: the ones that changed most
SPLAT_LINES = 8             # lines of a new splat's text shown as evidence
MIN_RELATIVE_CHANGE = 0.10  # smaller changes between A and B are noise on TCG
# General memory counters move with whatever else the guest did; zsmalloc's story is elsewhere.
NOISE_COUNTER = re.compile(r"(^|\.)(nr_free_pages|free|managed|MemFree|MemAvailable|Cached|"
                           r"AnonPages|nr_anon_pages|nr_file_pages|pgfault|pgmajfault|"
                           r"nr_isolated_anon|nr_isolated_file|swap_ra|swap_ra_hit)$")

# Verdicts of a test, in the order the text table lists them (worst news first).
VERDICTS = ["regressed", "fixed", "still failing", "new", "gone", "skipped", "passing"]
_BAD = ("failed", "error", "interrupted")
# A test named twice in one results.json counts as its worst entry (failed, then passed, is failed).
_WORST_FIRST = ("failed", "error", "interrupted", "passed", "skipped")


# ------------------------------------------------------------------ sides

@dataclass
class Side:
    """One side of a comparison: a run's results.json and/or a build's build.json."""
    path: Path                                 # what the user named
    results: Optional[ResultsManifest] = None
    build: Optional[BuildManifest] = None

    @property
    def target(self) -> Target:
        """What the kernel was built for: results.json's kernel, else build.json's arch (files
        from before there were arches: the default target); BadInput for a target zstest lacks."""
        kernel = self.results.kernel if self.results is not None else None
        if kernel is not None and kernel.arch is not None:
            where, name, page_size = self.results.path, kernel.arch, kernel.page_size
        elif self.build is not None:
            where, name, page_size = self.build.path, self.build.arch, self.build.page_size
        else:
            return Target.default()
        try:
            return Target.from_options(name, page_size)
        except BadInput as exc:
            raise BadInput(f"{where} names a target this zstest cannot compare "
                           f"({exc.message.rstrip('.')}).") from None

    @property
    def results_path(self) -> Optional[Path]:  # the results.json read
        return self.results.path if self.results else None

    @property
    def build_path(self) -> Optional[Path]:    # the build.json read
        return self.build.path if self.build else None

    @property
    def kind(self) -> str:
        return "+".join(k for k, v in (("results", self.results), ("build", self.build)) if v)


def _is_build(data: Dict[str, Any]) -> bool:
    return "artifacts" in data or ("series" in data and "kernel" in data and "tests" not in data)


def _results_with_tests(path: Path) -> ResultsManifest:
    results = load_results(path)
    if not results.has_tests:
        raise BadInput(f"{results.path} has no tests list; it is not a zstest results.json.")
    return results


def load_side(path) -> Side:
    """A results dir, a build dir, or a results.json / build.json file; BadInput otherwise."""
    path = Path(path).expanduser()
    if not path.exists():
        raise BadInput(f"{path} does not exist.")
    side = Side(path=path)
    if path.is_dir():
        if has_results(path):
            side.results = _results_with_tests(path)
        elif has_build(path):
            side.build = load_build(path)
        else:
            raise BadInput(f"{path} is neither a results directory (no results.json) nor a "
                           f"build directory (no build.json).")
    else:
        data = read_object(path)
        if isinstance(data.get("tests"), list):
            side.results = load_results(path)
        elif _is_build(data):
            side.build = load_build(path)
        else:
            raise BadInput(f"{path} is neither a zstest results.json (no tests list) nor a "
                           f"build.json (no artifacts or series).")
    if side.results is not None:
        side.build = build_of_results(side.results)
    return side


def looks_like_series(src: str) -> bool:
    """True when src is a series source (mbox, patch dir, quilt dir, A..B, msgid) rather than a side."""
    from .series.lore import msgid_from_url
    from .series.sources import GIT_RANGE, MSGID
    path = Path(src).expanduser()
    if not path.exists():
        return bool(GIT_RANGE.match(src) or MSGID.match(src) or msgid_from_url(src))
    if path.is_dir():
        if has_results(path) or has_build(path):
            return False
        return (path / "series").is_file() or any(
            p.suffix in PATCH_SUFFIXES for p in path.iterdir() if p.is_file())
    if path.is_file():
        if path.suffix == ".json":
            return False
        try:
            with open(path, "rb") as fh:
                head = fh.read(4096)        # a glance, not the whole file
        except OSError:
            return False
        return not head.lstrip().startswith((b"{", b"["))
    return False


# ------------------------------------------------------------------ tests

@dataclass
class TestOutcome:
    """One side's record of a test."""
    __test__ = False
    status: str                  # passed / failed / error / skipped
    passes: int
    runs: int

    def label(self) -> str:
        if self.runs > 1:
            return f"{self.passes}/{self.runs}"
        return self.status


@dataclass
class MetricChange:
    """A counter's change during the test in A and in B (kind "delta"), or a fact's value (kind "detail")."""
    key: str
    a: float
    b: float
    kind: str = "delta"

    @property
    def relative(self) -> float:
        return abs(self.b - self.a) / max(abs(self.a), abs(self.b), 1)

    def text(self) -> str:
        if self.kind == "delta":
            return f"{self.key} {_num(self.a, sign=True)} -> {_num(self.b, sign=True)}"
        return f"{self.key} {_num(self.a)} -> {_num(self.b)}"


@dataclass
class TestDelta:
    __test__ = False
    name: str
    verdict: str
    a: Optional[TestOutcome]
    b: Optional[TestOutcome]
    metrics: List[MetricChange] = field(default_factory=list)
    message: str = ""            # why B failed (why A failed, for a fixed test): one line


def _why(t: Dict[str, Any]) -> str:
    """One line saying why a test failed: its first splat, else its message's first sentence."""
    splats = t.get("splats") or []
    if splats:
        title = re.sub(r"(\.\./)*\S*worktrees/[^/\s]+/[^/\s]+/", "", splats[0].get("title") or "")
        return f"{splats[0].get('kind', 'splat')}: {title}"
    lines = [line.strip() for line in (t.get("message") or "").splitlines() if line.strip()]
    if not lines:
        return ""
    # "the kernel logged during boot:" says little alone; its next line is the evidence.
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def _outcome(t: Dict[str, Any]) -> TestOutcome:
    status = t.get("status") or "error"
    runs = t.get("runs") or [status]
    passes = t.get("passes")
    if passes is None:
        passes = sum(1 for r in runs if r == "passed")
    return TestOutcome(status=status, passes=int(passes), runs=len(runs))


def _rank(status: str) -> int:
    """Lower is worse; a status zstest does not know is as bad as an error."""
    return _WORST_FIRST.index(status) if status in _WORST_FIRST else 1


def _worst(tests: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One entry for a test named more than once: the worst status, every run counted."""
    if len(tests) == 1:
        return tests[0]
    outcomes = [_outcome(t) for t in tests]
    worst = dict(min(tests, key=lambda t: _rank(t.get("status") or "error")))
    worst["runs"] = [r for o, t in zip(outcomes, tests) for r in (t.get("runs") or [o.status])]
    worst["passes"] = sum(o.passes for o in outcomes)
    return worst


def verdict_for(a: Optional[TestOutcome], b: Optional[TestOutcome]) -> str:
    """fixed / regressed / still failing / passing / new / gone / skipped."""
    a_ran = a is not None and a.status != "skipped"
    b_ran = b is not None and b.status != "skipped"
    if not a_ran and b_ran:
        return "new"
    if a_ran and not b_ran:
        return "gone"
    if not a_ran and not b_ran:
        return "skipped"
    # passed (or skipped, above) is the only good news: interrupted or unknown is not passing
    a_bad, b_bad = a.status != "passed", b.status != "passed"
    if a_bad and b_bad:
        return "still failing"
    if a_bad:
        return "fixed"
    if b_bad:
        return "regressed"
    return "passing"


def _flatten(d: Any, prefix: str = "") -> Dict[str, float]:
    """Numeric leaves of nested dicts as {"mm_stat.pages_compacted": 12}; bools and text left out."""
    out: Dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix.rstrip(".")] = d
    return out


def _metric_pairs(metrics: Dict[str, Any]) -> Dict[str, Tuple[Dict[str, float], Dict[str, float]]]:
    """{"": (before, after), "round1.": (round1_before, round1_after)} from a test's metrics."""
    pairs = {}
    for key, before in metrics.items():
        if not key.endswith("before") or not isinstance(before, dict):
            continue
        stem = key[: -len("before")]
        after = metrics.get(stem + "after")
        if isinstance(after, dict):
            pairs[stem.rstrip("_") + "." if stem else ""] = (_flatten(before), _flatten(after))
    return pairs


def _counter_deltas(metrics: Dict[str, Any]) -> Dict[str, float]:
    """What each counter did during the test: after - before."""
    out: Dict[str, float] = {}
    for prefix, (before, after) in _metric_pairs(metrics or {}).items():
        for key, value in after.items():
            if key in before:
                out[prefix + key] = value - before[key]
    return out


def metric_changes(a: Dict[str, Any], b: Dict[str, Any], top: int = TOP_METRICS) -> List[MetricChange]:
    """The counters (after - before) and numeric details whose value moved most from A to B."""
    changes: List[MetricChange] = []
    da, db = _counter_deltas(a.get("metrics") or {}), _counter_deltas(b.get("metrics") or {})
    for key in da.keys() & db.keys():
        changes.append(MetricChange(key, da[key], db[key], "delta"))
    fa, fb = _flatten(a.get("details") or {}), _flatten(b.get("details") or {})
    for key in fa.keys() & fb.keys():
        changes.append(MetricChange(key, fa[key], fb[key], "detail"))
    changes = [c for c in changes if c.a != c.b and c.relative >= MIN_RELATIVE_CHANGE
               and not (c.kind == "delta" and NOISE_COUNTER.search(c.key))]
    changes.sort(key=lambda c: (-c.relative, -abs(c.b - c.a), c.key))
    # A round's counter that moved exactly as the whole test's did says nothing new.
    whole = {(c.key, c.a, c.b) for c in changes}
    changes = [c for c in changes
               if not ("." in c.key and (c.key.split(".", 1)[1], c.a, c.b) in whole)]
    # A test's own fact (pgmigrate_success_delta) that repeats a counter's delta: keep the counter.
    moved = {(c.a, c.b) for c in changes if c.kind == "delta"}
    changes = [c for c in changes if c.kind == "delta" or (c.a, c.b) not in moved]
    return changes[:top]


# ------------------------------------------------------------------ patches

@dataclass
class PatchState:
    apply: Optional[str]         # applied / applied-3way / failed / None (not reached)
    build: Optional[str]         # ok / failed / None (not built on its own)
    new_warnings: int

    def label(self) -> str:
        apply = {"applied": "applied", "applied-3way": "applied-3way", "failed": "FAILED"}.get(
            self.apply or "", "-")
        build = {"ok": "ok", "failed": "FAILED"}.get(self.build or "", "-")
        return f"{apply}/{build}" + (f" +{self.new_warnings}w" if self.new_warnings else "")


@dataclass
class PatchDelta:
    index: int
    subject: str
    a: Optional[PatchState]
    b: Optional[PatchState]
    verdict: str                 # same / build fixed / build broke / apply fixed / apply broke / new / dropped / warnings
    subject_a: str = ""          # A's subject when it differs from B's
    index_a: Optional[int] = None  # A's index when patches were matched by subject and moved

    @property
    def regressed(self) -> bool:
        return self.verdict in ("apply broke", "build broke")


def _applied(state: Optional[PatchState]) -> Optional[bool]:
    if state is None or state.apply is None:
        return None
    return state.apply != "failed"


def patch_verdict(a: Optional[PatchState], b: Optional[PatchState]) -> str:
    if a is None:
        return "new"
    if b is None:
        return "dropped"
    applied_a, applied_b = _applied(a), _applied(b)
    if applied_a is False and applied_b:
        return "apply fixed"
    if applied_a and applied_b is False:
        return "apply broke"
    if a.build == "failed" and b.build == "ok":
        return "build fixed"
    if a.build == "ok" and b.build == "failed":
        return "build broke"
    if a.new_warnings != b.new_warnings and a.build == b.build:
        return f"warnings {a.new_warnings} -> {b.new_warnings}"
    return "same"


def _patches(build: Optional[BuildManifest]) -> Dict[int, Tuple[str, PatchState]]:
    return {p.index: (p.subject, PatchState(p.apply, p.build, len(p.new_warnings)))
            for p in (build.patches if build else [])}


def _norm_subject(subject: str) -> str:
    return " ".join(subject.lower().split())


def _match_by_subject(pa, pb) -> Optional[List[PatchDelta]]:
    """Revisions reorder patches: pair them by subject when subjects are unique and mostly shared."""
    subj_a = {_norm_subject(v[0]): k for k, v in pa.items()}
    subj_b = {_norm_subject(v[0]): k for k, v in pb.items()}
    if len(subj_a) != len(pa) or len(subj_b) != len(pb) or not pb:
        return None
    shared = subj_a.keys() & subj_b.keys()
    moved = any(subj_a[x] != subj_b[x] for x in shared)
    if not moved or len(shared) * 2 < len(pb):
        return None
    rows = []
    for index in sorted(pb):
        subject, sb = pb[index]
        ia = subj_a.get(_norm_subject(subject))
        sa = pa[ia][1] if ia is not None else None
        rows.append(PatchDelta(index, subject, sa, sb, patch_verdict(sa, sb),
                               index_a=ia if ia != index else None))
    for ia in sorted(pa):
        if _norm_subject(pa[ia][0]) not in subj_b:
            rows.append(PatchDelta(ia, pa[ia][0], pa[ia][1], None, patch_verdict(pa[ia][1], None),
                                   index_a=ia))
    return rows


def compare_patches(a: Optional[BuildManifest], b: Optional[BuildManifest]) -> List[PatchDelta]:
    pa, pb = _patches(a), _patches(b)
    by_subject = _match_by_subject(pa, pb)
    if by_subject is not None:
        return by_subject
    rows = []
    for index in sorted(pa.keys() | pb.keys()):
        sa, sb = pa.get(index), pb.get(index)
        subject = (sb or sa)[0]
        subject_a = sa[0] if sa and sb and sa[0] != sb[0] else ""
        rows.append(PatchDelta(index, subject, sa and sa[1], sb and sb[1],
                               patch_verdict(sa and sa[1], sb and sb[1]), subject_a))
    return rows


# ------------------------------------------------------------------ top level

def _num(v: Any, sign: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not v.is_integer():
        text = f"{v:.2f}"
    else:
        text = str(int(v))
    return ("+" + text) if sign and v >= 0 else text


def _splat_key(splat: Dict[str, Any]) -> str:
    """A splat's identity across runs: its kind and title without CPU, PID, addresses or numbers."""
    title = splat.get("title") or ""
    title = re.sub(r"CPU: ?\d+|PID: ?\d+|\[\s*\d+\.\d+\]", "", title)
    title = re.sub(r"\+0x[0-9a-f]+/0x[0-9a-f]+|0x[0-9a-f]+|\b[0-9a-f]{8,}\b", "", title)
    return f"{splat.get('kind', '')}: {' '.join(title.split())}"


def _run_exit_code(side: Side) -> Optional[int]:
    """The exit code `zstest run` gave (or would give): a failed build is 3 or 4 even if tests passed."""
    build_code = None
    if side.build is not None and side.build.status != "ok":
        build_code = 3 if any(p.apply == "failed" for p in side.build.patches) else 4
    if side.results is not None:
        code = side.results.exit_code
        return build_code if code == 0 and build_code is not None else code
    if side.build is not None:
        return build_code if build_code is not None else 0
    return None


def top_fields(side: Side) -> Dict[str, Any]:
    """The run-level facts shown first: status, exit code, kernel, series, config, timings, splats."""
    r, b = side.results, side.build
    series = b.series if b and b.series else BuildSeries()
    revision = series.revision
    return {
        "status": r.status if r else None,
        "build status": b.status if b else None,
        "exit code": _run_exit_code(side),
        "kernel": (r and (r.kernel.uname or r.kernel.version)) or (b and b.kernel.version) or None,
        "series": series.source,
        "series revision": f"v{revision}" if revision is not None else None,
        "config profiles": ",".join(b.config.profiles) if b and b.config.profiles else None,
        "toolchain": b.toolchain.name if b else None,     # None: a build.json before toolchains
        "compiler": (b.toolchain.version or b.toolchain.cc) if b else None,
        "suite": r.suite if r else None,
        "accel": r.accel.name if r else None,
        "boot_to_ssh_s": r.boot_to_ssh_s if r else None,
        "duration_s": r.duration_s if r else None,
        "build duration_s": b.duration_s if b else None,
        "splats outside tests": len(r.splats) if r else None,
        "splats in tests": sum(len(t.get("splats") or []) for t in r.tests) if r else None,
    }


# ------------------------------------------------------------------ comparison

@dataclass
class Comparison:
    a: Side
    b: Side
    top: Dict[str, Tuple[Any, Any]]
    tests: List[TestDelta]
    patches: List[PatchDelta]
    new_splats: List[Dict[str, Any]]       # B's splats outside tests that A did not have
    regressions: List[str]                 # one line each; any makes the exit code 1

    @property
    def exit_code(self) -> int:
        return EXIT_TEST_FAILED if self.regressions else EXIT_OK

    def counts(self) -> Dict[str, int]:
        out = {v: 0 for v in VERDICTS}
        for t in self.tests:
            out[t.verdict] += 1
        return out

    def patch_counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for p in self.patches:
            key = "warnings" if p.verdict.startswith("warnings") else p.verdict
            out[key] = out.get(key, 0) + 1
        return out


def _by_name(results: Optional[ResultsManifest]) -> Dict[str, Dict[str, Any]]:
    named: Dict[str, List[Dict[str, Any]]] = {}
    for t in (results.tests if results else []):
        named.setdefault(t.get("name", ""), []).append(t)
    return {name: _worst(tests) for name, tests in named.items()}


def check_same_arch(a: Side, b: Side) -> None:
    """Two sides of different arches (or page sizes) compare the arches, not the revisions:
    BadInput, unless the caller allows it."""
    ta, tb = a.target, b.target
    if ta != tb:
        raise BadInput(f"A ({a.path}) is {ta.label} and B ({b.path}) is {tb.label}: that compares "
                       f"the architectures, not the revisions; pass --allow-arch-mismatch to "
                       f"compare them anyway.")


def compare(a: Side, b: Side) -> Comparison:
    """A (the old revision or baseline) against B (the new one)."""
    ta, tb = _by_name(a.results), _by_name(b.results)
    order = list(tb) + [n for n in ta if n not in tb]
    tests = []
    for name in order:
        oa = _outcome(ta[name]) if name in ta else None
        ob = _outcome(tb[name]) if name in tb else None
        verdict = verdict_for(oa, ob)
        metrics = metric_changes(ta[name], tb[name]) if name in ta and name in tb else []
        message = _why(ta[name] if verdict == "fixed" else tb.get(name) or {})
        tests.append(TestDelta(name, verdict, oa, ob, metrics, message))
    tests.sort(key=lambda t: VERDICTS.index(t.verdict))

    patches = compare_patches(a.build, b.build)
    fa, fb = top_fields(a), top_fields(b)
    top = {k: (fa[k], fb[k]) for k in fa if fa[k] is not None or fb[k] is not None}

    old = {_splat_key(s) for s in (a.results.splats if a.results else [])}
    new_splats = [s for s in (b.results.splats if b.results else []) if _splat_key(s) not in old]

    regressions = []
    for t in tests:
        if t.verdict == "regressed":
            regressions.append(f"test {t.name}: {t.a.label()} -> {t.b.label()}")
    for p in patches:
        if p.regressed:
            regressions.append(f"patch {p.index} {p.subject!r}: {p.verdict} "
                               f"({p.a.label()} -> {p.b.label()})")
    if not patches and fa["build status"] == "ok" and fb["build status"] == "failed":
        regressions.append("build: ok -> failed")
    for s in new_splats:
        regressions.append(f"new splat outside tests: {s.get('kind')}: {s.get('title')}")
    if fa["status"] in ("passed", "failed") and fb["status"] == "error":
        why = ((b.results.message if b.results else "") or "no message").splitlines()[0]
        regressions.append(f"run: {fa['status']} -> error ({why})")
    return Comparison(a, b, top, tests, patches, new_splats, regressions)


def summary_line(cmp: Comparison) -> str:
    """"2 fixed, 0 regressed, 17 passing, 1 new", then the patch verdicts when there are patches."""
    parts = []
    if cmp.tests or (cmp.a.results is not None or cmp.b.results is not None):
        c = cmp.counts()
        parts.append(f"{c['fixed']} fixed, {c['regressed']} regressed")
        if c["still failing"]:
            parts.append(f"{c['still failing']} still failing")
        parts.append(f"{c['passing']} passing")
        for key in ("new", "gone", "skipped"):
            if c[key]:
                parts.append(f"{c[key]} {key}")
    text = ", ".join(parts)
    if cmp.patches:
        pc = cmp.patch_counts()
        order = ["build fixed", "apply fixed", "build broke", "apply broke", "warnings",
                 "new", "dropped", "same"]
        ptext = ", ".join(f"{pc[k]} {k}" for k in order if pc.get(k))
        text = f"{text}; patches: {ptext}" if text else f"patches: {ptext}"
    if cmp.new_splats:
        n = len(cmp.new_splats)
        text += f"; {n} new splat{'s' if n > 1 else ''} outside tests"
    for r in cmp.regressions:
        if r.startswith(("run: ", "build: ")):
            text += f"; {r.split(' (')[0]}"
    return text


# ------------------------------------------------------------------ text

def _cut(text: str, width: int) -> str:
    """Shorten from the middle, so a test's file and its parameters both stay visible."""
    if len(text) <= width:
        return text
    keep = width - 3
    return text[: keep // 2] + "..." + text[len(text) - (keep - keep // 2):]


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return _num(v)
    return str(v)


def _side_line(tag: str, side: Side) -> str:
    path = side.results_path or side.build_path
    where = path.parent if path.name in (RESULTS_JSON, BUILD_JSON) else path
    extra = f" (build {side.build_path.parent})" if side.results and side.build_path else ""
    return f"{tag}: {where}{extra}"


def render_text(cmp: Comparison) -> str:
    lines = [f"zstest compare: {summary_line(cmp)}",
             _side_line("A", cmp.a), _side_line("B", cmp.b), ""]
    toolchains = cmp.top.get("toolchain", (None, None))
    if None not in toolchains and toolchains[0] != toolchains[1]:
        lines.append(f"note: A and B differ in toolchain ({toolchains[0]} -> {toolchains[1]}): "
                     f"a difference may be the compiler's")
    for tag, side in (("A", cmp.a), ("B", cmp.b)):
        if side.results is not None and side.results.status == "interrupted":
            lines.append(f"note: {tag} was interrupted; its results are partial")
    for r in cmp.regressions:
        line = f"REGRESSED {r}"
        lines.append(line if len(line) <= WIDTH else line[: WIDTH - 3] + "...")
    if cmp.regressions:
        lines.append("")

    key_w = max(len(k) for k in cmp.top) if cmp.top else 10
    val_w = (WIDTH - key_w - 4) // 2
    lines.append(f"{'':<{key_w}}  {'A':<{val_w}}  B")
    for key, (va, vb) in cmp.top.items():
        lines.append(f"{key:<{key_w}}  {_cut(_cell(va), val_w):<{val_w}}  {_cut(_cell(vb), val_w)}")

    if cmp.patches:
        lines.append("")
        states = [p.a.label() if p.a else "-" for p in cmp.patches] + \
                 [p.b.label() if p.b else "-" for p in cmp.patches]
        st_w = max(8, max(len(s) for s in states))
        verdict_w = max(7, max(len(p.verdict) for p in cmp.patches))
        subj_w = WIDTH - 4 - 2 * (st_w + 2) - verdict_w - 2
        lines.append(f"{'#':>2}  {'patch':<{subj_w}}  {'A':<{st_w}}  {'B':<{st_w}}  verdict")
        for p in cmp.patches:
            sa = p.a.label() if p.a else "-"
            sb = p.b.label() if p.b else "-"
            lines.append(f"{p.index:>2}  {_cut(p.subject, subj_w):<{subj_w}}  {sa:<{st_w}}  "
                         f"{sb:<{st_w}}  {p.verdict}")
            if p.subject_a:
                lines.append(f"{'':>2}  {_cut('(A: ' + p.subject_a + ')', subj_w)}")
            if p.index_a is not None and p.b is not None:
                lines.append(f"{'':>2}  (was patch {p.index_a} in A)")

    if cmp.tests:
        lines.append("")
        st_w = max(7, max(len(t.a.label() if t.a else "-") for t in cmp.tests),
                   max(len(t.b.label() if t.b else "-") for t in cmp.tests))
        verdict_w = max(len(t.verdict) for t in cmp.tests)
        name_w = min(max(len(t.name) for t in cmp.tests), WIDTH - 2 * (st_w + 2) - verdict_w - 2)
        lines.append(f"{'test':<{name_w}}  {'A':<{st_w}}  {'B':<{st_w}}  verdict")
        for t in cmp.tests:
            sa = t.a.label() if t.a else "-"
            sb = t.b.label() if t.b else "-"
            lines.append(f"{_cut(t.name, name_w):<{name_w}}  {sa:<{st_w}}  {sb:<{st_w}}  {t.verdict}")
            if t.message and t.verdict in ("regressed", "fixed", "still failing", "new") and \
                    (t.verdict == "fixed" or (t.b and t.b.status in _BAD)):
                why = t.message
                why = why if len(why) <= WIDTH - 9 else why[: WIDTH - 12] + "..."
                lines.append(f"    {'was' if t.verdict == 'fixed' else 'why'}: {why}")
            for m in t.metrics:
                lines.append(f"    {_cut(m.text(), WIDTH - 4)}")
    for s in cmp.new_splats:
        # The evidence: the splat's first lines as the console had them.
        lines.append("")
        lines.append(f"new splat outside tests in B ({s.get('kind')}), console line {s.get('line_no')}:")
        for line in (s.get("text") or s.get("title") or "").splitlines()[:SPLAT_LINES]:
            text = ("  " + line).expandtabs()
            lines.append(text if len(text) <= WIDTH else text[: WIDTH - 3] + "...")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ json

def _outcome_json(o: Optional[TestOutcome]) -> Optional[Dict[str, Any]]:
    return None if o is None else {"status": o.status, "passes": o.passes, "runs": o.runs}


def _patch_json(s: Optional[PatchState]) -> Optional[Dict[str, Any]]:
    return None if s is None else {"apply": s.apply, "build": s.build, "new_warnings": s.new_warnings}


def _side_json(side: Side) -> Dict[str, Any]:
    return {"path": str(side.path), "kind": side.kind,
            "results": str(side.results_path) if side.results_path else None,
            "build": str(side.build_path) if side.build_path else None}


def comparison_json(cmp: Comparison) -> Dict[str, Any]:
    return {
        "summary": summary_line(cmp),
        "exit_code": cmp.exit_code,
        "regressions": list(cmp.regressions),
        "a": _side_json(cmp.a),
        "b": _side_json(cmp.b),
        "counts": cmp.counts(),
        "patch_counts": cmp.patch_counts(),
        "top": {k: {"a": va, "b": vb} for k, (va, vb) in cmp.top.items()},
        "tests": [{"name": t.name, "verdict": t.verdict, "a": _outcome_json(t.a),
                   "b": _outcome_json(t.b), "message": t.message,
                   "metrics": [{"key": m.key, "kind": m.kind, "a": m.a, "b": m.b}
                               for m in t.metrics]} for t in cmp.tests],
        "patches": [{"index": p.index, "index_a": p.index_a, "subject": p.subject,
                     "subject_a": p.subject_a or None,
                     "verdict": p.verdict, "a": _patch_json(p.a), "b": _patch_json(p.b)}
                    for p in cmp.patches],
        "new_splats": [{"kind": s.get("kind"), "title": s.get("title")} for s in cmp.new_splats],
    }


# ------------------------------------------------------------------ merge (CI matrix)

@dataclass
class MergeCell:
    name: str                    # cell.json "name", else the directory name
    path: Path
    status: str                  # the run's status
    exit_code: Optional[int]
    meta: Dict[str, Any]         # cell.json as written by the matrix helper ({} without one)
    outcomes: Dict[str, TestOutcome]
    where: str = ""              # the path relative to the directory named on the command line

    @property
    def failed(self) -> bool:
        return self.status != "passed"


@dataclass
class MergeTable:
    cells: List[MergeCell]
    tests: List[str]             # row order: first appearance across cells
    skipped: List[str] = field(default_factory=list)   # one sentence per results.json not read

    @property
    def exit_code(self) -> int:
        """1 when a cell failed; else 2 when a results.json could not be read; else 0."""
        if any(c.failed for c in self.cells):
            return EXIT_TEST_FAILED
        return EXIT_USAGE if self.skipped else EXIT_OK


def merge(paths: Iterable) -> MergeTable:
    """Every results dir under the given paths as one column each; a results.json that cannot
    be read is left out and named in the table's skipped sentences."""
    paths = list(paths)
    dirs: List[Tuple[Path, Path]] = []
    for raw in paths:
        root = Path(raw).expanduser()
        if not root.is_dir():
            raise BadInput(f"{root} is not a directory; --merge takes results directories "
                           f"or directories holding them.")
        found = find_results(root)
        if not found:
            raise BadInput(f"{root} holds no results.json at any depth.")
        dirs.extend((root, d) for d in found)
    cells: List[MergeCell] = []
    tests: List[str] = []
    skipped: List[str] = []
    for root, d in dirs:
        try:
            results = _results_with_tests(d)
            cell = load_cell(d) if has_cell(d) else None
        except BadInput as exc:
            # one broken artifact of a CI matrix must not hide every other cell's results
            skipped.append(exc.message)
            continue
        name = (cell.name if cell else None) or d.name
        outcomes = {name_: _outcome(t) for name_, t in _by_name(results).items()}
        for t in outcomes:
            if t not in tests:
                tests.append(t)
        where = str(d.relative_to(root)) if d != root else d.name
        cells.append(MergeCell(name, d, results.status or "error", results.exit_code,
                               cell.data if cell else {}, outcomes, where))
    if not cells:
        raise BadInput(f"no results.json under {', '.join(str(r) for r in paths)} could be read: "
                       f"{skipped[0]}")
    _unique_names(cells)
    return MergeTable(cells, tests, skipped)


def _unique_names(cells: List[MergeCell]) -> None:
    """Two cells with one name (e.g. every CI job's dir is "results"): add the parent dir."""
    seen: Dict[str, int] = {}
    for c in cells:
        seen[c.name] = seen.get(c.name, 0) + 1
    for c in cells:
        if seen[c.name] > 1:
            c.name = f"{c.path.parent.name}/{c.name}"
    names: Dict[str, int] = {}
    for c in cells:
        names[c.name] = names.get(c.name, 0) + 1
        if names[c.name] > 1:
            c.name = f"{c.name}#{names[c.name]}"


_LETTER = {"passed": "P", "failed": "F", "error": "E", "skipped": "S", "interrupted": "I"}


def _merge_cell(o: Optional[TestOutcome]) -> str:
    if o is None:
        return "-"
    if o.runs > 1:
        return f"{o.passes}/{o.runs}"
    return _LETTER.get(o.status, "?")


def render_merge(table: MergeTable) -> str:
    failed = [c.name for c in table.cells if c.failed]
    n = len(table.cells)
    head = f"zstest compare --merge: {n} cell{'s' if n != 1 else ''}, {len(table.tests)} tests; "
    named = ", ".join(failed[:5]) + (f", ... ({len(failed) - 5} more)" if len(failed) > 5 else "")
    head += f"{len(failed)} failed ({named})" if failed else "all passed"
    lines = [head, ""]
    name_w = max(len(c.name) for c in table.cells)
    for i, c in enumerate(table.cells, 1):
        lines.append(f"{i:>3}  {c.name:<{name_w}}  {c.status:<11} {c.where}")
    lines.append("")
    col_w = max(3, max(len(_merge_cell(o)) for c in table.cells for o in c.outcomes.values())
                if any(c.outcomes for c in table.cells) else 3, len(str(len(table.cells))))
    cols_w = len(table.cells) * (col_w + 1)
    test_w = max([4] + [len(t) for t in table.tests])
    test_w = min(test_w, max(30, WIDTH - cols_w - 1))
    lines.append(f"{'test':<{test_w}} " + " ".join(f"{i:>{col_w}}" for i in
                                                  range(1, len(table.cells) + 1)))
    lines.append(f"{'(run status)':<{test_w}} " + " ".join(
        f"{_LETTER.get(c.status, c.status[:1].upper() or '?'):>{col_w}}" for c in table.cells))
    for t in table.tests:
        lines.append(f"{_cut(t, test_w):<{test_w}} " + " ".join(
            f"{_merge_cell(c.outcomes.get(t)):>{col_w}}" for c in table.cells))
    lines.append("")
    lines.append("P passed, F failed, E error, I interrupted, S skipped, - not run, n/m passes/runs (--repeat)")
    for sentence in table.skipped:
        lines.append(f"not merged: {sentence}")
    return "\n".join(lines) + "\n"


def merge_json(table: MergeTable) -> Dict[str, Any]:
    return {
        "exit_code": table.exit_code,
        "not_merged": table.skipped,
        "cells": [{"name": c.name, "path": str(c.path), "status": c.status,
                   "exit_code": c.exit_code, "cell": c.meta} for c in table.cells],
        "tests": [{"name": t, "results": {c.name: _outcome_json(c.outcomes.get(t))
                                          for c in table.cells}} for t in table.tests],
    }
