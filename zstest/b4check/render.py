"""b4's check entries from a finished (or failed, or running) zstest run: pure shaping.

b4 (review/checks.py) reads a JSON array of {tool, status: pass|warn|fail, summary, url,
details}; `details` may be a JSON list of findings {status, description, srcline, url}, which
its results view shows one per line with the status dot and `srcline` dimmed underneath. A
series check (the cover letter) gets the series' verdict; a per-patch check gets the same run
seen from that patch: fail when the failure is this patch's (it does not apply or build, or a
splat decodes to a line or function it changed), warn when the series fails elsewhere or the
patch was never tested, pass when the series passes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from ..decode import results_splats

TOOL = "zstest"
MAX_FINDINGS = 12


@dataclass
class Outcome:
    """What a run left: b4check.json's verdict fields and the dirs it wrote."""
    exit_code: Optional[int]                  # zstest's exit code; None while running
    error: str = ""                           # the one error sentence (apply, build, boot, ...)
    results: Optional[dict] = None            # results.json's data
    build: Optional[dict] = None              # build.json's data
    perf: Optional[dict] = None               # perf.json's data (compare --perf), if any
    coverage_asked: bool = False
    url: str = ""
    source: str = ""                          # where the series came from, for the reviewer
    notes: List[str] = field(default_factory=list)   # the ways that did not work, and why


def _entry(tool: str, status: str, summary: str, url: str, findings: List[dict]) -> dict:
    entry = {"tool": tool, "status": status, "summary": summary, "url": url}
    if findings:
        entry["details"] = json.dumps(findings[:MAX_FINDINGS])
    return entry


def _finding(status: str, description: str, srcline: str = "") -> dict:
    out = {"status": status, "description": description}
    if srcline:
        out["srcline"] = srcline
    return out


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")


def _patches(build: Optional[dict]) -> List[dict]:
    series = (build or {}).get("series") or {}
    return [p for p in series.get("patches") or [] if isinstance(p, dict)]


def _total(build: Optional[dict]) -> int:
    series = (build or {}).get("series") or {}
    return int(series.get("total") or len(_patches(build)) or 0)


# ---------------------------------------------------------------- functional

def splat_findings(results: dict, results_dir: Optional[Path] = None) -> List[dict]:
    """One finding per splat: its title, and (srcline) its decoded location and the patch it
    points at."""
    out = []
    for test, splat in results_splats(results, results_dir):
        decoded = splat.get("decoded") if isinstance(splat.get("decoded"), dict) else {}
        where = next((f for f in decoded.get("frames") or []
                      if isinstance(f, dict) and f.get("file") and f.get("line")), None)
        parts = []
        if where:
            parts.append(f"{where.get('function') or '?'} at {where['file']}:{where['line']}")
        refs = [r for r in decoded.get("patches") or [] if isinstance(r, dict)]
        by_line = {r.get("index") for r in refs if r.get("how") == "line"}
        for ref in refs:
            if ref.get("how") != "line" and ref.get("index") in by_line:
                continue        # its line is already named
            how = "changed this line" if ref.get("how") == "line" else "changed this function"
            parts.append(f"patch {ref.get('index')} {how}: \"{ref.get('subject', '')}\"")
        title = str(splat.get("title") or splat.get("kind") or "splat")
        during = f" (during {test.rsplit('::', 1)[-1]})" if test else ""
        out.append(_finding("fail", title + during, "; ".join(parts)))
    return out


def splat_patches(results: dict) -> tuple:
    """(the patches that changed a splat's own line, those that changed only its function),
    by index, in order: git blame's answer is the culprit, git log -L's a suspect."""
    lines: List[int] = []
    functions: List[int] = []
    for _, splat in results_splats(results):
        decoded = splat.get("decoded") if isinstance(splat.get("decoded"), dict) else {}
        for ref in decoded.get("patches") or []:
            index = ref.get("index")
            if isinstance(index, int):
                found = lines if ref.get("how") == "line" else functions
                if index not in found:
                    found.append(index)
    return lines, [i for i in functions if i not in lines]


def test_findings(results: dict) -> List[dict]:
    out = []
    for t in results.get("tests") or []:
        if not isinstance(t, dict) or t.get("status") not in ("failed", "error", "interrupted"):
            continue
        why = _first_line(str(t.get("message") or ""))
        out.append(_finding("fail", f"{str(t.get('status')).upper()} {t.get('name')}",
                            why[:300]))
    return out


def _build_findings(build: Optional[dict]) -> List[dict]:
    out = []
    total = _total(build)
    for p in _patches(build):
        label = f"patch {p.get('index')}/{total} \"{p.get('subject', '')}\""
        if p.get("apply") == "failed":
            out.append(_finding("fail", f"{label} does not apply",
                                _first_line(str(p.get("apply_message") or ""))))
        elif p.get("build") == "failed":
            errors = [str(e) for e in p.get("errors") or []]
            out.append(_finding("fail", f"{label} does not build", errors[0] if errors else ""))
        for warning in p.get("new_warnings") or []:
            out.append(_finding("warn", f"{label}: new warning", str(warning)))
    return out


def _series_words(build: Optional[dict], results: Optional[dict]) -> str:
    version = ((build or {}).get("kernel") or {}).get("version") or \
        ((results or {}).get("kernel") or {}).get("version")
    total = len(_patches(build))
    patches = f"{total} patch{'es' if total != 1 else ''}"
    return f"{version} + {patches}" if version else patches


def _counts(results: dict) -> str:
    counts: Dict[str, int] = {}
    for t in results.get("tests") or []:
        if isinstance(t, dict):
            counts[str(t.get("status"))] = counts.get(str(t.get("status")), 0) + 1
    shown = [f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped") if counts.get(k)]
    return ", ".join(shown) or "no test ran"


def _first_problem(results: dict) -> str:
    """The first splat's title, else the first test that did not pass: the summary's why."""
    for _, splat in results_splats(results):
        return str(splat.get("title") or splat.get("kind") or "")
    bad = [t for t in results.get("tests") or [] if isinstance(t, dict)
           and t.get("status") in ("failed", "error", "interrupted")]
    return f"{bad[0].get('status')} {bad[0].get('name')}" if bad else ""


def _patch_verdict(target: int, outcome: Outcome, failing: tuple) -> tuple:
    """(status, why) of one patch in a series that did not pass; failing: splat_patches."""
    lines, functions = failing
    patches = {p.get("index"): p for p in _patches(outcome.build)}
    mine = patches.get(target, {})
    first_bad = next((i for i in sorted(patches) if patches[i].get("apply") == "failed"), None)
    if mine.get("apply") == "failed":
        return "fail", "does not apply"
    if first_bad is not None and target > first_bad:
        return "warn", f"not tested: patch {first_bad} does not apply"
    if mine.get("build") == "failed":
        return "fail", "does not build"
    if target in lines:
        return "fail", "the failure decodes to a line this patch changed"
    if target in functions and not lines:
        return "fail", "the failure is in a function this patch changed"
    if lines or functions:
        culprits = ", ".join(map(str, lines or functions))
        also = " (it changed the same function)" if target in functions else ""
        return "warn", (f"the series fails; the failure points at patch {culprits}, not this "
                        f"one{also}")
    return "warn", "the series fails; nothing ties the failure to one patch"


def functional_check(outcome: Outcome, target: Optional[int] = None,
                     results_dir: Optional[Path] = None) -> dict:
    """The functional verdict; target: the patch index of a per-patch check (None: series)."""
    results, build = outcome.results, outcome.build
    if outcome.exit_code is None:
        return _entry(TOOL, "warn", f"running, see {outcome.url}", outcome.url,
                      [_finding("warn", note) for note in outcome.notes])
    findings = [_finding("pass", f"series: {outcome.source}")] if outcome.source else []
    findings += _build_findings(build)
    if results is not None:
        findings += test_findings(results) + splat_findings(results, results_dir)
    findings += [_finding("warn", note) for note in outcome.notes]
    suite = (results or {}).get("suite") or "suite"
    passed = outcome.exit_code == 0
    where = _series_words(build, results)
    if passed:
        summary = f"{suite}: {_counts(results or {})} on {where}"
        return _entry(TOOL, "pass", summary, outcome.url, findings)
    # exit 2 / 6: zstest could not test it; not the series' fault
    blame = outcome.exit_code in (1, 3, 4, 5)
    reason = outcome.error or _first_line((results or {}).get("message") or "") or \
        _first_problem(results or {})
    if not blame:
        return _entry(TOOL, "warn", f"not tested: {reason}", outcome.url, findings)
    summary = f"{reason} ({where})" if results is None else \
        f"{suite}: {_counts(results)} on {where}" + (f": {reason}" if reason else "")
    if target is None:
        return _entry(TOOL, "fail", summary[:300], outcome.url, findings)
    status, why = _patch_verdict(target, outcome, splat_patches(results or {}))
    return _entry(TOOL, status, f"patch {target}: {why}; series: {summary}"[:300], outcome.url,
                  findings)


# ---------------------------------------------------------------- coverage and perf

def coverage_check(outcome: Outcome, target: Optional[int] = None) -> Optional[dict]:
    """The series' changed lines the tests executed (gcov), when the run had --coverage."""
    coverage = (outcome.results or {}).get("coverage")
    if not isinstance(coverage, dict) or not (coverage.get("patches") or coverage.get("files")):
        if outcome.coverage_asked and outcome.exit_code is not None:
            return _entry(f"{TOOL}-coverage", "warn", "no coverage: the run measured none",
                          outcome.url, [])
        return None
    patches = [p for p in coverage.get("patches") or [] if isinstance(p, dict)]
    if target is not None:
        patches = [p for p in patches if p.get("index") == target]
    executable = sum(int(p.get("executable") or 0) for p in patches)
    executed = sum(int(p.get("executed") or 0) for p in patches)
    findings = []
    for p in patches:
        if p.get("executable") and p.get("executed", 0) < p["executable"]:
            findings.append(_finding(
                "warn", f"patch {p.get('index')}: {p.get('executed')}/{p['executable']} "
                        f"changed lines executed",
                "not executed: " + ", ".join((p.get("not_executed") or [])[:4])))
    if not executable:
        return _entry(f"{TOOL}-coverage", "pass",
                      "no changed line gcov counts (declarations, comments)", outcome.url, [])
    status = "pass" if executed == executable else "warn"
    return _entry(f"{TOOL}-coverage", status,
                  f"{executed}/{executable} changed lines executed by the tests", outcome.url,
                  findings)


def perf_check(outcome: Outcome) -> Optional[dict]:
    """`zstest compare --perf`'s verdict (perf.json), when one was made for this series."""
    perf = outcome.perf
    if not isinstance(perf, dict):
        return None
    code = perf.get("exit_code")
    status = "pass" if code == 0 else "fail" if code == 1 else "warn"
    findings = [_finding("fail" if m.get("verdict") == "regressed" else "pass",
                         f"{m.get('name')}: {m.get('verdict')}"
                         + (f" ({m['change_pct']:+.1f} %)"
                            if isinstance(m.get("change_pct"), (int, float)) else ""))
                for m in perf.get("metrics") or []
                if isinstance(m, dict) and m.get("verdict") in ("regressed", "improved")]
    return _entry(f"{TOOL}-perf", status, str(perf.get("summary") or "perf comparison"),
                  outcome.url, findings)


def checks(outcome: Outcome, target: Optional[int] = None,
           results_dir: Optional[Path] = None) -> List[dict]:
    """Every entry b4 shows for this run: functional, then coverage and perf when present."""
    out = [functional_check(outcome, target, results_dir)]
    if outcome.exit_code is not None:
        out += [e for e in (coverage_check(outcome, target), perf_check(outcome)) if e]
    return out


def error_check(message: str, status: str = "warn", url: str = "",
                notes: Optional[List[str]] = None) -> List[dict]:
    """zstest could not check this message at all: one entry with the sentence (and why each
    way of finding the series did not work)."""
    return [_entry(TOOL, status, message[:300], url,
                   [_finding("warn", note) for note in notes or []])]
