"""First bad patch: build prefixes of a series, boot each, run the chosen tests.

A prefix k is the base tree plus patches 1..k. Each tested prefix gets its own build dir
and results dir under the bisect dir, so the evidence of every step is kept. A prefix that
does not apply or build is skipped, as `git bisect skip` does: it can make the answer a range.
Short series are walked in order (every prefix is seen: a build-broken prefix is named even
when it is not on the way); long ones are searched by halving.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, List, Optional

from .errors import EXIT_BUILD, EXIT_OK, EXIT_TEST_FAILED, BadInput
from .build import BuildRequest
from .manifests import save_bisect
from .options import BuildsAndBoots, boot_template, build_template
from .runner import BootRunRequest

# Up to this many patches every prefix is built and tested in order.
LINEAR_MAX = 6


@dataclass
class BisectRequest(BuildsAndBoots):
    series: str
    out: Path
    # how every prefix is built (series, prefix and out set per prefix) and booted (build_dir
    # and out set per prefix): zstest.options' requests of the command's options
    build: BuildRequest = field(default_factory=build_template)
    boot: BootRunRequest = field(default_factory=boot_template)
    strategy: str = "auto"            # auto / linear / binary
    test_base: bool = False           # also run the base tree (else it is assumed good)
    on_progress: Callable[[str], None] = print
    # --perf METRIC: a prefix is bad when METRIC moved beyond the thresholds against the base,
    # measured by booting base and prefix alternately (perf/run.py), perf_runs each
    perf_metric: Optional[str] = None
    perf_runs: int = 5
    perf_warmup: int = 1
    perf_thresholds: Any = None       # perf.verdict.Thresholds; None: its defaults
    host_cpus: Optional[set] = None


NO_BOOT = "did not boot: "      # a Step.reason that starts so: the prefix's kernel never came up


@dataclass
class Step:
    prefix: int                        # patches applied; 0 is the base tree
    subject: str                       # the last patch applied ("base" for 0)
    verdict: str                       # good / bad / skip
    reason: str = ""
    build_dir: Optional[str] = None
    results_dir: Optional[str] = None
    failed_tests: List[dict] = field(default_factory=list)
    splats: List[dict] = field(default_factory=list)
    duration_s: float = 0.0


@dataclass
class BisectResult:
    series: str
    revision: Optional[str]
    total: int
    strategy: str
    steps: List[Step]
    first_bad: Optional[int] = None     # the patch index, when the answer is one patch
    candidates: List[int] = field(default_factory=list)   # when skips leave a range
    message: str = ""
    exit_code: int = EXIT_OK

    def to_json(self) -> dict:
        return asdict(self)


def _failed_tests(results: dict) -> List[dict]:
    out = []
    for t in results.get("tests", []):
        if t.get("status") in ("failed", "error"):
            out.append({"name": t.get("name"), "status": t.get("status"),
                        "message": (t.get("message") or "").strip().splitlines()[:1],
                        "splats": [s.get("title") for s in t.get("splats", [])]})
    return out


def _splat_brief(results: dict) -> List[dict]:
    found = []
    for t in results.get("tests", []):
        for s in t.get("splats", []):
            found.append({"test": t.get("name"), "title": s.get("title"), "kind": s.get("kind"),
                          "decoded": s.get("decoded")})
    for s in results.get("splats", []):
        found.append({"test": None, "title": s.get("title"), "kind": s.get("kind"),
                      "decoded": s.get("decoded")})
    return found


class _Bisector:
    def __init__(self, req: BisectRequest):
        self.req = req
        self.out = Path(req.out).expanduser().resolve()
        self.steps: dict = {}

    def say(self, text: str) -> None:
        self.req.on_progress(f"zstest bisect: {text}")

    def load(self):
        from .series import load_series
        kernel = Path(self.req.build.kernel).expanduser() if self.req.build.kernel else None
        series = load_series(self.req.series, git_tree=kernel)
        if not series.patches:
            raise BadInput(f"{self.req.series} holds no patches.")
        self.series = series
        self.subjects = {p.index: p.subject for p in series.patches}
        self.n = len(series.patches)

    def test(self, k: int) -> Step:
        """Build prefix k, boot it and run the tests; the verdict good / bad / skip."""
        if k in self.steps:
            return self.steps[k]
        from .pipeline import PipelineRequest, run_pipeline
        req = self.req
        started = time.monotonic()
        step, breq = self._prefix_build(k)
        results_dir = self.out / f"prefix-{k:02d}" / "results"

        @contextlib.contextmanager
        def around(run_req, outcome):
            step.results_dir = str(results_dir)
            self.say(f"prefix {k}: booting and running suite {req.suite}"
                     + (f" -k {req.keyword!r}" if req.keyword else ""))
            # The suite's own pytest output goes to a file: the bisect log stays one line per step.
            with open(self.out / f"prefix-{k:02d}" / "suite-output.log", "w") as sink, \
                    contextlib.redirect_stdout(sink):
                yield

        outcome = run_pipeline(PipelineRequest(
            build=breq, echo=lambda line: None, around_run=around,
            run=replace(req.boot, out=results_dir)))
        if outcome.results_dir is None:
            step.reason = outcome.build_error.message
            step.duration_s = round(time.monotonic() - started, 1)
            self.say(f"prefix {k}: skip ({outcome.build_error.message})")
            return self._keep(step)
        if outcome.boot_error is not None:
            # A prefix that does not come up is a bad kernel, once the machine has shown it
            # can boot one (the base, booted now if nothing has come up yet); otherwise the
            # machine is to blame and the bisect stops with the boot's exit code.
            if k == 0 or not self._machine_boots(k):
                raise outcome.boot_error
            step.verdict = "bad"
            step.reason = NO_BOOT + outcome.boot_error.message.splitlines()[0].removeprefix(
                "the guest did not boot: ")
            step.duration_s = round(time.monotonic() - started, 1)
            self.say(f"prefix {k}: bad ({step.reason})")
            return self._keep(step)
        run = outcome.run
        results = run.to_dict()     # as results.json holds it, splats decoded by the runner
        code = run.exit_code
        if code == 130:
            raise KeyboardInterrupt
        step.failed_tests = _failed_tests(results)
        step.splats = _splat_brief(results)
        if code == EXIT_OK:
            step.verdict = "good"
        else:
            # A kernel that fails a test, splats, or does not come up is a bad kernel.
            step.verdict = "bad"
            step.reason = results.get("message") or (
                f"{len(step.failed_tests)} test(s) failed" if step.failed_tests else f"exit {code}")
        step.duration_s = round(time.monotonic() - started, 1)
        self.say(f"prefix {k}: {step.verdict}" + (f" ({step.reason})" if step.reason else ""))
        return self._keep(step)

    def _prefix_build(self, k: int):
        """(the Step of prefix k, not yet judged; the BuildRequest of the first k patches)."""
        from .options import with_reproducer
        req = self.req
        subject = self.series.patches[k - 1].subject if k else "base"
        out = self.out / f"prefix-{k:02d}" / "build"
        step = Step(prefix=k, subject=subject, verdict="skip", build_dir=str(out))
        self.say(f"prefix {k}/{self.n} ({subject}): building")
        breq = with_reproducer(replace(req.build, series=req.series if k else None, out=out,
                                       series_limit=k if k else None))
        return step, breq

    def _machine_boots(self, k: int) -> bool:
        """Has a kernel come up in this bisect? If none has, the base is booted to tell a
        prefix that breaks the boot from a machine that boots nothing (that raises)."""
        if any(p != k and s.verdict in ("good", "bad") and not s.reason.startswith(NO_BOOT)
               for p, s in self.steps.items()):
            return True
        if 0 in self.steps:
            return False
        self.say(f"prefix {k} did not boot; booting the base to tell the kernel from the machine")
        return self.test(0).verdict in ("good", "bad")

    def _keep(self, step: Step) -> Step:
        self.steps[step.prefix] = step
        self.write()
        return step

    def write(self, result: Optional[BisectResult] = None) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        data = result.to_json() if result else {
            "series": self.req.series, "total": getattr(self, "n", None), "finished": False,
            "steps": [asdict(s) for _, s in sorted(self.steps.items())]}
        save_bisect(self.out, data)
        if result:
            (self.out / "bisect.txt").write_text(render_text(result) + "\n")

    def run(self) -> BisectResult:
        self.load()
        strategy = self.req.strategy
        if strategy == "auto":
            strategy = "linear" if self.n <= LINEAR_MAX else "binary"
        self.strategy = strategy
        self.say(f"{self.n} patches, {strategy} search, results under {self.out}")
        good = 0
        if self.req.test_base:
            base = self.test(0)
            if base.verdict != "good":
                return self.finish(message=(
                    "the base tree already fails the selected tests: the series is not to "
                    "blame; pick tests that pass on the base." if base.verdict == "bad" else
                    f"the base tree does not build: {base.reason}"),
                    exit_code=EXIT_TEST_FAILED if base.verdict == "bad" else EXIT_BUILD)
        if strategy == "linear":
            for k in range(1, self.n + 1):
                step = self.test(k)
                if step.verdict == "good":
                    good = k
                elif step.verdict == "bad":
                    return self.answer(good, k)
            return self.no_failure()
        full = self.test(self.n)
        if full.verdict == "good":
            return self.no_failure()
        if full.verdict == "skip":
            return self.finish(message=f"the whole series does not build ({full.reason}): "
                                       f"run `zstest build --each` to find the patch.",
                               exit_code=EXIT_BUILD)
        bad = self.n
        while True:
            inside = [k for k in range(good + 1, bad) if self.steps.get(k) is None]
            if not inside:
                return self.answer(good, bad)
            k = inside[len(inside) // 2]
            step = self.test(k)
            if step.verdict == "good":
                good = k
            elif step.verdict == "bad":
                bad = k

    def no_failure(self) -> BisectResult:
        skipped = [k for k, s in sorted(self.steps.items()) if s.verdict == "skip"]
        message = "every tested prefix passes: no patch makes the selected tests fail"
        if skipped:
            message += f" (prefixes {', '.join(map(str, skipped))} did not build)"
        return self.finish(message=message + ".", exit_code=EXIT_OK)

    def answer(self, good: int, bad: int) -> BisectResult:
        between = [k for k in range(good + 1, bad)]
        if not between:
            return self.finish(first_bad=bad, candidates=[bad], exit_code=EXIT_TEST_FAILED,
                               message=f"the first bad patch is {bad}/{self.n} "
                                       f"{self.subjects[bad]!r}.")
        cands = between + [bad]
        return self.finish(candidates=cands, exit_code=EXIT_TEST_FAILED,
                           message=f"the first bad patch is one of {', '.join(map(str, cands))}: "
                                   f"prefixes {', '.join(map(str, between))} could not be tested "
                                   f"(skipped).")

    def finish(self, message: str, exit_code: int, first_bad: Optional[int] = None,
               candidates: Optional[List[int]] = None) -> BisectResult:
        result = BisectResult(series=self.req.series, revision=self.series.revision,
                              total=self.n, strategy=self.strategy,
                              steps=[s for _, s in sorted(self.steps.items())],
                              first_bad=first_bad, candidates=candidates or [],
                              message=message, exit_code=exit_code)
        self.write(result)
        return result


class _PerfBisector(_Bisector):
    """--perf METRIC: the same search; a step builds prefix k and boots it alternately with the
    base (built once, as prefix 0), and is bad when METRIC moved beyond the thresholds."""

    def run(self) -> BisectResult:
        self.req.test_base = False      # the base is the reference, measured at every step
        self.load()
        base = self.test(0)
        if base.verdict != "good":
            self.strategy = self.req.strategy
            return self.finish(message=f"the base tree does not build: {base.reason}",
                               exit_code=EXIT_BUILD)
        return super().run()

    def test(self, k: int) -> Step:
        if k in self.steps:
            return self.steps[k]
        from .errors import ApplyFailed, BuildFailed
        from .pipeline import run_build
        started = time.monotonic()
        step, breq = self._prefix_build(k)
        try:
            step.build_dir = str(run_build(breq, echo=lambda line: None).build_dir)
        except (ApplyFailed, BuildFailed) as exc:
            step.reason = exc.message
        else:
            if k == 0:
                step.verdict, step.reason = "good", "the reference every prefix is measured against"
            else:
                self._measure(step, self.out / f"prefix-{k:02d}" / "perf")
        step.duration_s = round(time.monotonic() - started, 1)
        self.say(f"prefix {k}: {step.verdict}" + (f" ({step.reason})" if step.reason else ""))
        return self._keep(step)

    def _measure(self, step: Step, out: Path) -> None:
        """Base and prefix booted alternately; step.verdict from METRIC's verdict."""
        from .perf.render import write_outputs
        from .perf.run import PerfRequest, measure
        from .perf.verdict import IMPROVED, REGRESSED, Thresholds
        req = self.req
        self.say(f"prefix {step.prefix}: measuring {req.perf_metric} against the base "
                 f"({req.perf_runs} run{'s' * (req.perf_runs != 1)} each, alternately)")
        preq = PerfRequest(a="base", b=f"prefix {step.prefix}", out=out, runs=req.perf_runs,
                           warmup=req.perf_warmup, build=req.build, boot=req.boot,
                           host_cpus=req.host_cpus,
                           thresholds=req.perf_thresholds or Thresholds(),
                           echo=lambda line: None)
        cmp = measure(preq, Path(self.steps[0].build_dir), Path(step.build_dir))
        write_outputs(cmp, out)
        step.results_dir = str(out)
        metric = next((m for m in cmp.metrics if m.name == req.perf_metric), None)
        if metric is None:
            known = ", ".join(m.name for m in cmp.metrics)
            raise BadInput(f"suite {req.suite} records no metric {req.perf_metric!r}; it "
                           f"records: {known}.")
        change = f"{metric.stats.change_pct:+.1f}%" if metric.stats and \
            metric.stats.change_pct is not None else "no change figure"
        step.reason = f"{metric.name} {change}: {metric.verdict}"
        if metric.verdict in (REGRESSED, IMPROVED):
            step.verdict = "bad"
        elif metric.verdict.startswith("not measured") or metric.verdict == "too few runs":
            raise BadInput(f"{metric.name} cannot be judged at prefix {step.prefix}: "
                           f"{metric.verdict}.")
        else:
            step.verdict = "good"

    def answer(self, good: int, bad: int) -> BisectResult:
        metric, cands = self.req.perf_metric, list(range(good + 1, bad + 1))
        if len(cands) == 1:
            return self.finish(first_bad=bad, candidates=cands, exit_code=EXIT_TEST_FAILED,
                               message=f"the first patch that moves {metric} is {bad}/{self.n} "
                                       f"{self.subjects[bad]!r} ({self.steps[bad].reason}).")
        return self.finish(candidates=cands, exit_code=EXIT_TEST_FAILED,
                           message=f"the first patch that moves {metric} is one of "
                                   f"{', '.join(map(str, cands))}: prefixes "
                                   f"{', '.join(map(str, cands[:-1]))} could not be built "
                                   f"(skipped).")

    def no_failure(self) -> BisectResult:
        return self.finish(message=f"no prefix moves {self.req.perf_metric} beyond the "
                                   f"thresholds against the base.", exit_code=EXIT_OK)


def bisect(req: BisectRequest) -> BisectResult:
    """Find the first patch of req.series whose kernel fails the selected tests (with
    req.perf_metric: the first that moves that metric against the base)."""
    if req.strategy not in ("auto", "linear", "binary"):
        raise BadInput(f"unknown search strategy {req.strategy!r} (auto, linear, binary).")
    return (_PerfBisector(req) if req.perf_metric else _Bisector(req)).run()


def render_text(result: BisectResult) -> str:
    lines = [f"series {result.series} (v{result.revision or '?'}, {result.total} patches), "
             f"{result.strategy} search", ""]
    width = max((len(s.subject) for s in result.steps), default=10)
    for s in result.steps:
        label = "base" if s.prefix == 0 else f"{s.prefix}/{result.total}"
        mark = {"good": "good", "bad": "BAD", "skip": "skip"}[s.verdict]
        lines.append(f"  {label:>5}  {mark:<4}  {s.subject:<{min(width, 60)}}  {s.duration_s:6.0f} s")
        if s.verdict == "skip" and s.reason:
            lines.append(f"{'':15}{s.reason}")
        for t in s.failed_tests:
            msg = t["message"][0] if t["message"] else ""
            lines.append(f"{'':15}{t['status']}: {t['name']}" + (f": {msg}" if msg else ""))
        for sp in s.splats[:3]:
            lines.append(f"{'':15}splat: {sp['title']}")
            for p in ((sp.get("decoded") or {}).get("patches") or [])[:2]:
                lines.append(f"{'':17}points at patch {p.get('index')} {p.get('subject')!r} "
                             f"({p.get('how')})")
    lines += ["", result.message]
    bad = next((s for s in result.steps if s.prefix == result.first_bad), None)
    if bad and bad.results_dir:
        perf = (Path(bad.results_dir) / "perf.json").is_file()
        lines.append(f"evidence: {bad.results_dir} " + ("(perf.txt, plots/, a/ and b/: the runs)"
                                                         if perf else "(console.log, results.json, tests/)"))
    return "\n".join(lines)
