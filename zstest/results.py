"""The results of one boot-and-run: results.json, junit.xml, summary.txt.

Pure data and writers; the runner fills a RunResults and calls write_results(). junit.py and
the summary's sections (affected.py's selection, coverage.py's per patch) render parts of it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from .affected import summary_lines as selection_lines
from .coverage import summary_lines as coverage_lines
from .errors import EXIT_BOOT, EXIT_INTERRUPTED, EXIT_OK, EXIT_TEST_FAILED
from .fsutil import write_text_atomic
from .junit import junit_xml_text
from .manifests import RESULTS_JSON, now_iso, save_results  # noqa: F401 (now_iso: the runner's)
from .manifests import load_results as _load_manifest

# Panics that blame what zstest booted (its image, its command line), not the kernel under test.
INFRA_PANIC = re.compile(r"No working init found|Unable to mount root fs|Requested init \S+ failed|"
                         r"Attempted to kill init")

JUNIT_XML = "junit.xml"
SUMMARY_TXT = "summary.txt"
CONSOLE_LOG = "console.log"

# A test's final status when it ran several times (--repeat): failed beats error beats passed.
_STATUS_RANK = {"failed": 5, "error": 4, "interrupted": 3, "passed": 2, "skipped": 1}


@dataclass
class TestResult:
    __test__ = False   # not a pytest test class
    name: str                      # pytest node id relative to the suite, e.g. test_boot.py::test_uname
    status: str                    # passed / failed / skipped / error / interrupted
    duration_s: float = 0.0
    message: str = ""              # why it failed or was skipped, one paragraph
    metrics: Dict[str, Any] = field(default_factory=dict)   # {"before": {...}, "after": {...}, ...}
    splats: List[Dict[str, Any]] = field(default_factory=list)
    log: str = ""                  # path of the per-test log, relative to the results dir
    runs: List[str] = field(default_factory=list)            # one status per repeat
    details: Dict[str, Any] = field(default_factory=dict)     # test-specific facts (bytes verified ...)
    coverage: Dict[str, Any] = field(default_factory=dict)    # --coverage: {"gcda": [dirs]}

    @property
    def passes(self) -> int:
        return sum(1 for r in self.runs if r == "passed")

    def merge_repeat(self, other: "TestResult") -> None:
        """Fold another run of the same test in: statuses listed, worst one wins."""
        self.runs.extend(other.runs)
        self.duration_s += other.duration_s
        self.splats.extend(other.splats)
        if _STATUS_RANK.get(other.status, 0) > _STATUS_RANK.get(self.status, 0):
            self.status, self.message = other.status, other.message
        if other.metrics:
            self.metrics = other.metrics
        self.details.update(other.details)
        if other.coverage.get("gcda"):
            self.coverage.setdefault("gcda", []).extend(other.coverage["gcda"])


@dataclass
class RunResults:
    status: str = "error"          # passed / failed / error / interrupted
    duration_s: float = 0.0
    suite: str = ""
    started: str = ""
    accel: Dict[str, str] = field(default_factory=dict)
    boot_to_ssh_s: Optional[float] = None
    kernel: Dict[str, Any] = field(default_factory=dict)
    image: Dict[str, Any] = field(default_factory=dict)
    vm: Dict[str, Any] = field(default_factory=dict)   # ssh_port, boot timings, SSH reconnects
    tests: List[TestResult] = field(default_factory=list)
    splats: List[Dict[str, Any]] = field(default_factory=list)   # not tied to any test
    message: str = ""              # why the run ended as it did
    repeat: int = 1
    console_log: str = CONSOLE_LOG
    command: List[str] = field(default_factory=list)
    cause: str = ""                # kernel / test / infrastructure / interrupted ("" when passed)
    kernel_crashed: bool = False   # a fatal report (oops, BUG, panic, lockup...) ended a guest
    not_run: List[str] = field(default_factory=list)   # selected tests that never ran
    verdict_after_splat_s: Optional[float] = None      # first fatal splat -> final results.json
    coverage: Dict[str, Any] = field(default_factory=dict)  # --coverage: per patch, file, test
    selection: Dict[str, Any] = field(default_factory=dict)  # --affected: run, skipped, why
    # results.json could not be written (ENOSPC...): said once the run ended; not in the JSON
    write_error: Optional[OSError] = field(default=None, repr=False, compare=False)

    def has_kernel_evidence(self) -> bool:
        """A splat of the kernel under test (not a panic over a missing init or root fs)."""
        return any(not INFRA_PANIC.search(s.get("title", ""))
                   for s in self.splats + [s for t in self.tests for s in t.splats])

    def finish(self) -> None:
        """Set the overall status: the kernel's evidence and failed tests first (exit 1, even
        when a guest then stopped answering), then a lost guest or run error with no kernel
        evidence (exit 5); an interrupted run stays interrupted (130)."""
        if self.status == "interrupted":
            return
        if self.has_kernel_evidence() or any(t.status == "failed" for t in self.tests):
            self.status = "failed"
        elif self.status == "error" and self.message:
            return
        elif any(t.status in ("error", "interrupted") for t in self.tests):
            self.status = "failed"
        elif not self.tests:
            self.status = "error"
            self.message = self.message or "no test ran"
        else:
            self.status = "passed"

    def blame(self) -> str:
        """Who the run's ending points at: kernel / test / infrastructure / interrupted / ''."""
        if self.status == "passed":
            return ""
        if self.status == "interrupted":
            return "interrupted"
        if self.has_kernel_evidence():
            return "kernel"
        if self.status == "failed":
            return "test"
        return "infrastructure"

    @property
    def exit_code(self) -> int:
        if self.status == "passed":
            return EXIT_OK
        if self.status == "failed":
            return EXIT_TEST_FAILED
        if self.status == "interrupted":
            return EXIT_INTERRUPTED
        return EXIT_BOOT

    def verdict(self) -> str:
        """Why the run did not pass, in one sentence ("" when it passed)."""
        if self.status == "passed":
            return ""
        if self.status == "failed" and self.has_kernel_evidence():
            return self._kernel_verdict()
        if self.message:
            return self.message.splitlines()[0].rstrip(".") + "."
        bad = [t for t in self.tests if t.status in ("failed", "error")]
        if bad:
            first = bad[0]
            lines = (first.message or "").splitlines()
            # the kernel's own reason (OOM killer, splat) before the command's exit status
            why = next((ln.strip() for ln in lines if "OOM killer" in ln), "") or \
                (_splat_brief(first.splats[0]) if first.splats else "") or \
                next((ln.strip() for ln in lines if ln.strip()), first.status)
            why = why.removeprefix("zstest: ")
            if "killed by the kernel's OOM killer" in why:   # not the exception's type name
                why = why[why.index("killed by the kernel's OOM killer"):]
            return (f"{len(bad)} of {len(self.tests)} tests failed, first {first.name}: "
                    f"{why[:300]}".rstrip(".") + ".")
        if self.splats:
            return (f"the kernel logged {len(self.splats)} splat(s) outside any test, first "
                    f"{_splat_brief(self.splats[0])}.")
        return f"the run ended {self.status}."

    def _kernel_verdict(self) -> str:
        """The kernel under test logged splats: the first fatal one (else the first) leads."""
        where = [(t.name, s) for t in self.tests for s in t.splats] + \
            [(None, s) for s in self.splats]
        fatal = [(n, s) for n, s in where if s.get("fatal")]
        name, first = min(fatal or where, key=lambda ns: ns[1].get("line_no") or 0)
        if first.get("kind") == "boot_hang":     # zstest's reading of the kernel's task dump
            text = f"the kernel under test hung while booting: {first.get('title', '')}"
        else:
            place = f"during {name}" if name else "outside any test"
            text = f"the kernel under test logged {_splat_brief(first)} {place}"
        others = len(where) - 1
        if others:
            text += f" (and {others} more splat{'s' if others > 1 else ''})"
        if self.not_run:
            text += f"; {len(self.not_run)} tests were not run"
        elif self.kernel_crashed and len(self.vm.get("boots") or []) > 1:
            text += "; the tests after it ran in a fresh guest"
        return text.rstrip(".") + "."

    def counts(self) -> Dict[str, int]:
        out = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
        for t in self.tests:
            out[t.status] = out.get(t.status, 0) + 1
        return out

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data.pop("write_error")
        for t, d in zip(self.tests, data["tests"]):
            d["passes"] = t.passes
        data["counts"] = self.counts()
        data["exit_code"] = self.exit_code
        data["cause"] = self.cause or self.blame()
        return data


def test_from_dict(d: Dict[str, Any]) -> TestResult:
    keys = TestResult.__dataclass_fields__.keys()
    return TestResult(**{k: v for k, v in d.items() if k in keys})


def load_results(results_dir: Path) -> RunResults:
    data = _load_manifest(results_dir).data
    keys = RunResults.__dataclass_fields__.keys()
    run = RunResults(**{k: v for k, v in data.items()
                        if k in keys and k not in ("tests", "write_error")})
    run.tests = [test_from_dict(t) for t in data.get("tests", [])]
    return run


def write_results(results_dir: Path, run: RunResults) -> None:
    """Write results.json, junit.xml and summary.txt; each write is atomic (tmp + rename)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    save_results(results_dir, run.to_dict())
    write_text_atomic(results_dir / JUNIT_XML, junit_xml(run))
    write_text_atomic(results_dir / SUMMARY_TXT, summary_text(run))


def _splat_brief(s: Dict[str, Any]) -> str:
    return f"[{s.get('kind', 'splat')}] {s.get('title', '')}".strip()


def junit_xml(run: RunResults) -> str:
    return junit_xml_text(run)


def summary_text(run: RunResults) -> str:
    lines = []
    c = run.counts()
    cause = run.cause or run.blame()
    blame = {"kernel": " (the kernel under test logged a splat)", "test": " (a test failed)",
             "infrastructure": " (no kernel evidence: boot, QEMU or host trouble)"}.get(cause, "")
    interrupted = f", {c['interrupted']} interrupted" if c.get("interrupted") else ""
    lines.append(f"zstest {run.suite or ''} suite: {run.status.upper()}{blame}  "
                 f"({c['passed']} passed, {c['failed']} failed, {c['error']} errors, "
                 f"{c['skipped']} skipped{interrupted}; {run.duration_s:.1f} s)")
    if run.status != "passed":
        lines.append(f"verdict: {run.verdict()}")
    if run.kernel:
        lines.append(f"kernel:  {run.kernel.get('uname', '?')}  (build {run.kernel.get('build_dir', '?')})")
    if run.accel:
        boot = f", boot to SSH {run.boot_to_ssh_s:.2f} s" if run.boot_to_ssh_s is not None else ""
        reason = run.accel.get("reason", "")
        reason = reason if len(reason) <= 90 else reason[:87] + "..."   # whole in results.json
        lines.append(f"accel:   {run.accel.get('name')} ({reason}){boot}")
    if run.message:
        lines.append(f"note:    {run.message}")
    if run.selection:
        lines += selection_lines(run.selection)
    boots = run.vm.get("boots") or []
    if len(boots) > 1:
        lines.append(f"guests:  {len(boots)} (each fresh one after: "
                     f"{'; '.join(str(b.get('reason')) for b in boots[1:])})")
    if run.not_run:
        lines.append(f"not run: {len(run.not_run)} tests ({', '.join(run.not_run[:5])}"
                     f"{', ...' if len(run.not_run) > 5 else ''})")
    if run.tests:
        width = max(len(t.name) for t in run.tests)
        lines.append("")
        lines.append(f"{'test':<{width}}  {'status':<8} {'time':>8}  {'runs':<7} note")
        for t in run.tests:
            runs = f"{t.passes}/{len(t.runs)}" if t.runs else ""
            note = t.message.splitlines()[0][:100] if t.message else _facts(t.details)
            if t.splats and t.splats[0].get("title", "") not in note:
                note = _splat_brief(t.splats[0]) + ("; " + note if note else "")
            lines.append(f"{t.name:<{width}}  {t.status:<8} {t.duration_s:>7.1f}s  {runs:<7} {note}")
    if run.coverage:
        lines.append("")
        lines += coverage_lines(run.coverage)
    if run.splats:
        lines.append("")
        lines.append(f"kernel splats outside any test ({len(run.splats)}):")
        for s in run.splats:
            lines.append(f"  {_splat_brief(s)}")
    lines.append("")
    lines.append(f"console log: {run.console_log}")
    return "\n".join(lines) + "\n"


def _facts(details: Dict[str, Any], width: int = 110) -> str:
    """A passed test's evidence in one line: its scalar facts, e.g. pgmigrate_success_delta=57284."""
    parts = [f"{k}={v}" for k, v in details.items()
             if isinstance(v, (int, float, str)) and not isinstance(v, bool) and len(str(v)) < 40]
    line = " ".join(parts)
    return line if len(line) <= width else line[:width - 3] + "..."
