"""`zstest mutate`: plan mutants, then build, boot and judge them one by one.

A mutant is built as one extra patch after the series (a format-patch directory in the out
dir: the series' patches, then the mutant), in the same object dir as every other build of
the tree, so only the files the patches touch recompile. mutate.json is rewritten atomically
after every mutant; a second run with the same out dir skips the mutants already judged.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..build import BuildRequest
from ..errors import (EXIT_APPLY, EXIT_BUILD, EXIT_INTERRUPTED, EXIT_OK, EXIT_PREREQ,
                      EXIT_TEST_FAILED, ApplyFailed, BadInput, ZstestError)
from ..gitsafe import run_git
from ..manifests import (MUTATE_JSON, MUTATE_SCHEMA, CoverageMap, load_coverage_map, load_mutate,
                         save_mutate)
from ..options import BuildsAndBoots, boot_template, build_template, with_reproducer
from ..runner import BootRunRequest
from ..series.changed import series_changed_lines
from .generate import OPERATORS, Mutant, function_lines, generate_mutants
from .guided import Guidance, guide

if TYPE_CHECKING:
    from ..pipeline import PipelineOutcome

# The functions page migration runs through: mutated first when named with --function.
MIGRATION_FUNCTIONS = ("zs_page_migrate", "zs_page_isolate", "zs_page_putback",
                       "migrate_zspage", "replace_sub_page", "dec_zspage_isolation",
                       "inc_zspage_isolation", "migrate_write_lock", "migrate_write_unlock")
JUDGED = ("killed", "survived", "timeout", "build_failed", "not_covered")
# Artifacts a judged mutant's build dir no longer needs (build.json and build.log stay).
BULKY_ARTIFACTS = ("bzImage", "vmlinux", "System.map", "modules", "kmod-build", "selftests")


@dataclass
class MutateRequest(BuildsAndBoots):
    series: str | None = None           # series source; None: mutate the tree's own code
    file: str | None = None             # --file: a path inside the tree
    functions: list[str] = field(default_factory=list)
    operators: list[str] = field(default_factory=lambda: list(OPERATORS))
    budget_min: float | None = None     # stop starting new mutants after this many minutes
    max_mutants: int | None = None      # judge at most this many (new) mutants in this run
    out: Path | None = None
    run_timeout: float | None = None    # one mutant's run; None: from the baseline's run
    # how every mutant is built and booted (zstest.options' requests of the command's options:
    # the tree is build.kernel, None: settings.resolve_kernel()); the plan's tree, the mutant's
    # series and run_timeout are set into them per trial
    build: BuildRequest = field(default_factory=build_template)
    boot: BootRunRequest = field(default_factory=boot_template)
    on_progress: Callable[[str], None] = print
    # coverage-guided (guided.py): a --coverage baseline, then per mutant only the tests that ran
    # its line, stopping at the first kill (`zstest mutate`'s default; --no-guided: every test)
    guided: bool = False


@dataclass
class PlannedMutant:
    mutant: Mutant
    patch: int | None                   # the series patch that added the line
    patch_subject: str | None


@dataclass
class MutationPlan:
    kernel: Path
    series_name: str | None
    revision: int | None
    patches: list                       # the series' Patch objects ([] without a series)
    mutants: list[PlannedMutant]


@dataclass
class MutateResult:
    out: Path
    mutants: list[dict]                 # mutate.json's records, in plan order
    summary: str
    exit_code: int
    message: str = ""
    duration_s: float = 0.0


# ---------------------------------------------------------------- the plan (no build)

def _check_operators(operators: list[str]) -> None:
    unknown = [op for op in operators if op not in OPERATORS]
    if unknown:
        raise BadInput(f"unknown operator {unknown[0]!r}; known: {', '.join(OPERATORS)}.")


def _tree_file(tree: Path, path: str) -> str | None:
    """A file of the user's tree as the build's base sees it (HEAD for a git tree); never written."""
    if (tree / ".git").exists():
        from ..tree import git_failures_as
        with git_failures_as(2, f"git cannot read {path} in the kernel tree {tree}"):
            res = run_git(["--no-optional-locks", "show", "--no-textconv", "--no-ext-diff",
                           f"HEAD:{path}"], cwd=tree, timeout=120, check=False, trusted=tree)
        return res.stdout if res.ok else None
    full = tree / path
    return full.read_text(errors="surrogateescape") if full.is_file() else None


def files_after_series(tree: Path, patches: list, wanted: list[str]) -> dict[str, str]:
    """The text of `wanted` files after every patch, applied in a scratch dir (not the tree)."""
    from ..series.diff import analyze_diff
    touched = sorted({f for p in patches for f in analyze_diff(p.raw.decode("utf-8", "replace")).files}
                     | set(wanted))
    from ..tree import git_failures_as
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    with tempfile.TemporaryDirectory(prefix="zstest-mutate-") as tmp:
        work = Path(tmp)
        with git_failures_as(EXIT_PREREQ, "git cannot make a scratch repository on this host"):
            run_git(["init", "-q", str(work)], timeout=60, env=env)
        for path in touched:
            text = _tree_file(tree, path)
            if text is not None:
                (work / path).parent.mkdir(parents=True, exist_ok=True)
                (work / path).write_text(text, errors="surrogateescape")
        for p in patches:
            mail = work / f"patch-{p.index}.mbox"
            mail.write_bytes(p.raw)
            with git_failures_as(EXIT_APPLY, f"applying patch {p.index} {p.subject!r} failed"):
                res = run_git(["apply", "--whitespace=nowarn", str(mail)], cwd=work,
                              timeout=120, check=False, env=env)
            if not res.ok:
                said = (res.stderr or res.stdout).strip().splitlines()
                raise ApplyFailed(f"patch {p.index} {p.subject!r} does not apply to {tree}: "
                                  f"{said[-1] if said else 'git apply failed'}.")
        return {path: (work / path).read_text(errors="surrogateescape")
                for path in wanted if (work / path).is_file()}


def plan_mutants(req: MutateRequest, kernel: Path | None = None) -> MutationPlan:
    """Which mutants, in which order: the series' added C lines, or the named functions."""
    _check_operators(req.operators)
    from ..settings import resolve_kernel
    tree = kernel or resolve_kernel(req.build.kernel)
    if not Path(tree).is_dir():
        raise BadInput(f"kernel tree {tree} does not exist.")
    planned: list[PlannedMutant] = []
    patches, series_name, revision = [], None, None
    if req.series:
        from ..series import load_series
        series = load_series(req.series, git_tree=tree)
        patches, series_name, revision = series.patches, req.series, series.revision
        changed = series_changed_lines([p.raw.decode("utf-8", "replace") for p in patches])
        if req.file:
            changed = {f: v for f, v in changed.items() if f == req.file}
        if not changed:
            raise BadInput(f"{req.series} adds no C source lines"
                           + (f" to {req.file}" if req.file else "") + "; nothing to mutate.")
        texts = files_after_series(tree, patches, list(changed))
        subjects = {p.index: p.subject for p in patches}
        numbers = {k: p.index for k, p in enumerate(patches, 1)}
        for path, owned in changed.items():
            owner = {line: numbers[n] for line, n in owned}
            mutants = generate_mutants(texts.get(path, ""), path, set(owner), req.operators)
            if req.functions:
                mutants = [m for m in mutants if m.function in req.functions]
            for m in mutants:
                touched = range(m.line, max(m.end_line, m.line) + 1)
                patch = min((owner[n] for n in touched if n in owner), default=None)
                planned.append(PlannedMutant(m, patch, subjects.get(patch)))
        planned.sort(key=lambda p: (p.patch or 0, p.mutant.file, p.mutant.line))
    else:
        if not req.file:
            raise BadInput("give a series (--series SRC) or a file of the tree (--file PATH).")
        text = _tree_file(tree, req.file)
        if text is None:
            raise BadInput(f"{req.file} is not a file of the kernel tree {tree}.")
        names = req.functions
        if names:
            selected, missing = function_lines(text, names)
            if missing:
                raise BadInput(f"{req.file} defines no function {missing[0]!r}.")
            lines = set().union(*selected.values())
        else:
            lines = None
        mutants = generate_mutants(text, req.file, lines, req.operators)
        if names:
            mutants = [m for m in mutants if m.function in names]
            rank = {n: (n not in MIGRATION_FUNCTIONS, k) for k, n in enumerate(names)}
            mutants.sort(key=lambda m: (rank[m.function], m.line))
        planned = [PlannedMutant(m, None, None) for m in mutants]
    if not planned:
        raise BadInput("no mutant can be made from the selected lines with the operators "
                       f"{', '.join(req.operators)}.")
    return MutationPlan(Path(tree), series_name, revision, list(patches), planned)


def format_plan(plan: MutationPlan) -> str:
    """`zstest mutate --list`: one mutant a line, then the count per operator."""
    out = []
    where_w = max(len(f"{p.mutant.file}:{p.mutant.line}") for p in plan.mutants)
    function_w = max(len(p.mutant.function) for p in plan.mutants)
    for p in plan.mutants:
        m = p.mutant
        where = f"{m.file}:{m.line}"
        before = " ".join(m.original.split()) or "(nothing)"
        after = " ".join(m.mutated.split()) or "(deleted)"
        patch = f"patch {p.patch}  " if p.patch else ""
        out.append(f"{m.id}  {patch}{where:<{where_w}}  {m.function:<{function_w}}  "
                   f"{m.operator:<12} {_clip(before, 50)}  ->  {_clip(after, 50)}")
    counts: dict[str, int] = {}
    for p in plan.mutants:
        counts[p.mutant.operator] = counts.get(p.mutant.operator, 0) + 1
    out.append(f"{len(plan.mutants)} mutants: "
               + ", ".join(f"{op} {counts[op]}" for op in OPERATORS if op in counts))
    return "\n".join(out)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


# ---------------------------------------------------------------- the run

def _record(p: PlannedMutant) -> dict:
    rec = p.mutant.to_dict()
    rec.update({"patch": p.patch, "patch_subject": p.patch_subject, "verdict": None,
                "test": None, "why": "", "build_s": None, "run_s": None, "duration_s": None,
                "build_dir": None, "results_dir": None, "covered": None,
                "tests_run": None, "runs": [], "guided": None})
    return rec


def _series_dir(dest: Path, patches: list, revision: int | None, mutant: Mutant | None) -> Path | None:
    """A format-patch directory: the series' patches, then the mutant as the last patch."""
    if not patches and mutant is None:
        return None
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for k, p in enumerate(patches, 1):
        (dest / f"{k:04d}-{_slug(p.subject)}.patch").write_bytes(p.raw)
    if mutant is not None:
        n = len(patches) + 1
        rev = f"v{revision} " if revision and revision > 1 else ""
        # the series' revision: build_series keeps only the newest revision's patches
        text = mutant.diff.replace("Subject: [PATCH] ", f"Subject: [PATCH {rev}{n}/{n}] ", 1)
        (dest / f"{n:04d}-zstest-mutant-{mutant.id}.patch").write_text(text)
    return dest


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:50] or "patch"


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


def kill_reason(results: dict) -> tuple[str | None, str]:
    """(the test that failed, why: the splat's title or the first line of its message)."""
    for t in results.get("tests", []):
        if t.get("status") in ("failed", "error"):
            splats = t.get("splats") or []
            why = splats[0].get("title") if splats else _first_line(t.get("message", ""))
            return t.get("name"), why or t.get("status", "")
    for s in results.get("splats", []):
        return None, s.get("title", "splat")
    return None, _first_line(results.get("message", "")) or "the run failed"


@dataclass
class Trial:
    """One build + boot of the series (and a mutant) through the pipeline, timed."""
    build_dir: Path
    results_dir: Path
    outcome: PipelineOutcome | None = None
    build_s: float | None = None        # until the kernel was ready to boot (or the build failed)
    run_s: float = 0.0

    @property
    def results(self) -> dict:
        """The run the pipeline returned, as results.json holds it (never read back from disk);
        a guest that did not boot: its error's code and sentence; {} when nothing was booted."""
        outcome = self.outcome
        if outcome is not None and outcome.run is not None:
            return outcome.run.to_dict()
        if outcome is not None and outcome.boot_error is not None:
            return {"exit_code": outcome.boot_error.exit_code,
                    "message": outcome.boot_error.message, "tests": []}
        return {}


class _Mutator:
    def __init__(self, req: MutateRequest, plan: MutationPlan, out: Path):
        self.req, self.plan, self.out = req, plan, out
        self.path = out / MUTATE_JSON
        self.started = time.monotonic()
        self.state = self._load()
        self.earlier_s = float(self.state.get("duration_s") or 0.0)
        self._cmap: CoverageMap | None = None

    def say(self, text: str) -> None:
        self.req.on_progress(f"zstest mutate: {text}")

    def _load(self) -> dict:
        state = {"schema": MUTATE_SCHEMA, "status": "running", "mutants": [], "baseline": None}
        if self.path.is_file():     # resumed: the manifest's shape is checked (exit 2)
            state = dict(load_mutate(self.path).data)
        known = {r["id"]: r for r in state.get("mutants", [])}
        records = [known.pop(p.mutant.id, None) or _record(p) for p in self.plan.mutants]
        # mutants of an earlier selection stay in the file, after this plan's
        state["mutants"] = records + list(known.values())
        req = self.req
        state["request"] = {
            "series": req.series, "revision": self.plan.revision, "kernel": str(self.plan.kernel),
            "file": req.file, "functions": req.functions, "suite": req.suite,
            "keyword": req.keyword, "operators": req.operators, "configs": req.configs,
            "budget_min": req.budget_min, "max": req.max_mutants, "guided": req.guided}
        return state

    def save(self) -> None:
        self.state["summary"] = summarize(self.state["mutants"], bool(self.plan.patches))
        # wall time over every run of this out dir (a resumed run adds to it)
        self.state["duration_s"] = round(self.earlier_s + time.monotonic() - self.started, 1)
        save_mutate(self.out, self.state)

    def baseline_key(self) -> str:
        req = self.req
        key = [req.series, str(self.plan.kernel), req.suite, req.keyword, req.configs]
        return json.dumps(key + ["guided"] * req.guided)   # a guided baseline also made a map

    def build_and_boot(self, name: str, mutant: Mutant | None, run_timeout: float,
                       booting: str = "", tests: list[str] | None = None,
                       first_kill: bool = False, coverage: bool = False) -> Trial:
        """The series (+ the mutant) built in the shared objdir, booted, the suite run, through
        the one pipeline; the suite's own pytest output goes to suite-output.log."""
        from ..pipeline import PipelineRequest, run_pipeline
        req = self.req
        where = self.out / name
        series = _series_dir(where / "series", self.plan.patches, self.plan.revision, mutant)
        where.mkdir(parents=True, exist_ok=True)
        trial = Trial(build_dir=where / "build", results_dir=where / "results")
        started = time.monotonic()

        @contextlib.contextmanager
        def around(run_req, outcome):
            trial.build_s = time.monotonic() - started
            if booting:
                self.say(booting)
            with open(where / "suite-output.log", "w") as sink, \
                    contextlib.redirect_stdout(sink):
                yield

        trial.outcome = run_pipeline(PipelineRequest(
            build=with_reproducer(replace(
                req.build, kernel=self.plan.kernel, series=str(series) if series else None,
                out=trial.build_dir, coverage=coverage or req.coverage, progress=False)),
            echo=lambda line: None, around_run=around,
            run=replace(
                req.boot, out=trial.results_dir, run_timeout=run_timeout, tests=tests,
                # the first failure (or crash) kills the mutant: the rest need not run
                pytest_args=["-x"] if first_kill else [], stop_on_oops=first_kill)))
        if trial.build_s is None:       # the build failed: nothing was booted
            trial.build_s = time.monotonic() - started
            return trial
        trial.run_s = time.monotonic() - started - trial.build_s
        return trial

    def run_baseline(self) -> None:
        """The series (or the tree) without a mutant must pass the selected tests."""
        base = self.state.get("baseline") or {}
        if base.get("key") == self.baseline_key() and base.get("verdict") == "passed":
            return
        self.say("baseline: building " + (f"{self.req.series}" if self.req.series else "the tree"))
        trial = self.build_and_boot("baseline", None, self.req.run_timeout or 3600.0,
                                    booting="baseline: booting, suite " + self.req.suite
                                    + (f" -k {self.req.keyword!r}" if self.req.keyword else "")
                                    + (" (with coverage)" if self.req.guided else ""),
                                    **({"coverage": True} if self.req.guided else {}))
        if trial.outcome.build_error is not None:
            raise trial.outcome.build_error
        if trial.outcome.boot_error is not None:     # no mutant yet: the machine is to blame
            raise trial.outcome.boot_error
        code, results = trial.outcome.run.exit_code, trial.results
        if code == EXIT_INTERRUPTED:
            raise KeyboardInterrupt
        self.state["baseline"] = {
            "key": self.baseline_key(), "verdict": "passed" if code == EXIT_OK else "failed",
            "exit_code": code, "build_s": round(trial.build_s, 1),
            "run_s": round(trial.run_s, 1), "build_dir": str(trial.build_dir),
            "results_dir": str(trial.results_dir),
            "map": (results.get("coverage") or {}).get("map"),
            "tests": [t.get("name") for t in results.get("tests") or []]}
        self.save()
        if code != EXIT_OK:
            test, why = kill_reason(results)
            raise ZstestError(
                f"the selected tests fail without any mutant ({test + ': ' if test else ''}{why}); "
                f"pick tests that pass (see {self.out / 'baseline' / 'results'}).",
                exit_code=EXIT_TEST_FAILED if code == EXIT_TEST_FAILED else code)

    def mutant_run_timeout(self) -> float:
        if self.req.run_timeout:
            return self.req.run_timeout
        base_run = (self.state.get("baseline") or {}).get("run_s") or 300.0
        # a mutant that hangs the guest is stopped after 3x the clean run, boot included
        return max(180.0, 3 * base_run + 60)

    def coverage_map(self) -> CoverageMap | None:
        """The guided baseline's coverage map (None: unguided, or the baseline left none)."""
        if self._cmap is None and self.req.guided:
            path = (self.state.get("baseline") or {}).get("map")
            if path:
                try:
                    self._cmap = load_coverage_map(path)
                except BadInput as exc:
                    self.say(f"guided: {exc.message} Every mutant runs the whole selection.")
        return self._cmap

    def guidance(self, mutant: Mutant) -> Guidance | None:
        cmap = self.coverage_map()
        if cmap is None:
            return None
        selection = (self.state.get("baseline") or {}).get("tests")
        return guide(cmap, mutant.file, mutant.line, mutant.end_line, selection)

    def judge(self, rec: dict, mutant: Mutant) -> None:
        name = f"mutants/{mutant.id}"
        guidance = self.guidance(mutant)
        if guidance is not None:
            rec["guided"] = guidance.to_dict()
            if guidance.tests == []:      # nothing a test does reaches it: nothing to build
                rec.update(verdict="not_covered", why=guidance.why, tests_run=[],
                           duration_s=0.0)
                return
        (self.out / name).mkdir(parents=True, exist_ok=True)
        (self.out / name / "mutant.patch").write_text(mutant.diff)
        rec["build_dir"] = str(self.out / name / "build")
        guided = bool(guidance is not None and guidance.tests)
        order = self.kill_order(guidance) if guided else None
        trial = self.build_and_boot(name, mutant, self.mutant_run_timeout(),
                                    **({"tests": order, "first_kill": True} if guided else {}))
        # no --each, so a failed build never leaves a kernel that the pipeline would boot
        if trial.outcome.build_error is not None:
            rec.update(verdict="build_failed", why=trial.outcome.build_error.message,
                       build_s=round(trial.build_s, 1), duration_s=round(trial.build_s, 1))
            return
        build_dir, results = trial.build_dir, trial.results
        rec["build_s"] = round(trial.build_s, 1)
        rec["run_s"] = round(trial.run_s, 1)
        rec["duration_s"] = round(trial.build_s + trial.run_s, 1)
        rec["results_dir"] = str(trial.results_dir)
        rec["runs"] = [_run_entry("guided" if guided else "whole", trial.results_dir,
                                  trial.run_s, results)]
        rec["tests_run"] = rec["runs"][0]["tests"]
        if trial.outcome.boot_error is not None:
            self._verdict(rec, mutant, None, results, trial.outcome.boot_error.message)
        else:
            self._verdict(rec, mutant, trial.outcome.run.exit_code, results, "")
        _drop_bulky(build_dir)

    def kill_order(self, guidance: Guidance) -> list[str]:
        """The likeliest killers first, then the rest of the selection in its own order: one
        boot, stopped at the first kill; a survivor has met the whole selection."""
        selection = (self.state.get("baseline") or {}).get("tests") or []
        return list(guidance.tests) + [t for t in selection if t not in guidance.tests]

    def _verdict(self, rec: dict, mutant: Mutant, code: int | None, results: dict,
                 why_not_booted: str) -> None:
        if code is None:
            # the baseline booted on this machine: a mutant whose kernel never comes up is
            # judged as one that stops answering (the score counts it against the suite)
            rec.update(verdict="timeout", why="the kernel did not boot: " + _first_line(
                why_not_booted).removeprefix("the guest did not boot: "))
        elif code == EXIT_INTERRUPTED:
            raise KeyboardInterrupt
        elif code == EXIT_OK:
            rec.update(verdict="survived", why="every selected test passed")
        elif code == EXIT_TEST_FAILED:
            test, why = kill_reason(results)
            rec.update(verdict="killed", test=test, why=why)
        elif code == 5:
            rec.update(verdict="timeout", why=_first_line(results.get("message", ""))
                       or "the guest did not boot or stopped answering")
        else:
            raise ZstestError(f"mutant {mutant.id}: the run could not be done "
                              f"({_first_line(results.get('message', '')) or f'exit {code}'}).",
                              exit_code=code)

    def run(self) -> MutateResult:
        self.out.mkdir(parents=True, exist_ok=True)
        self.save()
        by_id = {p.mutant.id: p for p in self.plan.mutants}
        todo = [r for r in self.state["mutants"] if r["id"] in by_id and r.get("verdict") not in JUDGED]
        done = len(by_id) - len(todo)
        if done:
            self.say(f"resuming: {done} of {len(by_id)} mutants already judged in {self.path}")
        message = ""
        try:
            if todo:
                self.run_baseline()
            judged = 0
            for rec in todo:
                if self.req.max_mutants is not None and judged >= self.req.max_mutants:
                    message = f"stopped after {judged} mutant(s) (--max)."
                    break
                spent = (time.monotonic() - self.started) / 60
                if self.req.budget_min is not None and spent >= self.req.budget_min:
                    message = f"the budget of {self.req.budget_min:g} min is spent; " \
                              f"run again with the same --out to go on."
                    break
                m = by_id[rec["id"]].mutant
                self.say(f"[{done + judged + 1}/{len(by_id)}] {m.id} {m.operator} "
                         f"{m.file}:{m.line} ({m.function})")
                self.judge(rec, m)
                judged += 1
                self.say(f"  {rec['verdict']}" + (f": {rec['test']}" if rec.get("test") else "")
                         + (f" ({rec['why']})" if rec.get("why") else "")
                         + f" in {rec['duration_s']:.0f} s")
                self.save()
            self.state["status"] = "finished" if not message else "partial"
        except KeyboardInterrupt:
            self.state["status"] = "interrupted"
            self.save()
            raise
        self.state["message"] = message
        self.save()
        records = [r for r in self.state["mutants"] if r["id"] in by_id]
        return MutateResult(self.out, records, render_summary(records, bool(self.plan.patches)),
                            exit_code_for(records), message,
                            round(time.monotonic() - self.started, 1))


def _run_entry(kind: str, results_dir: Path, run_s: float, results: dict) -> dict:
    """mutate.json's record of one boot of a mutant: which tests ran, in order, and how."""
    return {"kind": kind, "results_dir": str(results_dir), "run_s": round(run_s, 1),
            "exit_code": results.get("exit_code"),
            "tests": [t.get("name") for t in results.get("tests") or []]}


def _drop_bulky(build_dir: Path) -> None:
    for name in BULKY_ARTIFACTS:
        target = build_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists() or target.is_symlink():
            target.unlink(missing_ok=True)
    for ko in build_dir.glob("*.ko"):
        ko.unlink(missing_ok=True)


def exit_code_for(records: list[dict]) -> int:
    """0: every judged mutant was killed; 1: one survived, timed out or no test reached it;
    4: none built."""
    verdicts = [r.get("verdict") for r in records if r.get("verdict") in JUDGED]
    if any(v in ("survived", "timeout", "not_covered") for v in verdicts):
        return EXIT_TEST_FAILED
    if verdicts and all(v == "build_failed" for v in verdicts):
        return EXIT_BUILD
    return EXIT_OK


def summarize(records: list[dict], per_patch: bool) -> dict:
    groups: dict[str, dict[str, dict]] = {"function": {}}
    if per_patch:
        groups["patch"] = {}
    for r in records:
        keys = {"function": f"{r['file']}:{r['function']}"}
        if per_patch:
            keys["patch"] = str(r.get("patch"))
        for group, key in keys.items():
            row = groups[group].setdefault(key, {v: 0 for v in JUDGED + ("pending",)})
            row[r.get("verdict") if r.get("verdict") in JUDGED else "pending"] += 1
    for rows in groups.values():
        for row in rows.values():
            row["score"] = score(row)
    return groups


def score(row: dict) -> float | None:
    """killed / (killed + survived + timeout + not covered); None when none was judged. A
    mutant no test reached is one the suite does not catch: counted apart, scored as a miss."""
    judged = row["killed"] + row["survived"] + row["timeout"] + row.get("not_covered", 0)
    return round(row["killed"] / judged, 3) if judged else None


def render_summary(records: list[dict], per_patch: bool) -> str:
    groups = summarize(records, per_patch)
    subjects = {str(r.get("patch")): r.get("patch_subject") or "" for r in records}
    lines = []
    total = {v: 0 for v in JUDGED + ("pending",)}
    for r in records:
        total[r.get("verdict") if r.get("verdict") in JUDGED else "pending"] += 1
    # guided runs: the mutants no test reached, in a column of their own
    uncovered = total["not_covered"] > 0
    head = (f"{'':44} {'killed':>6} {'survived':>8} {'timeout':>7} {'build failed':>12} "
            + (f"{'not covered':>11} " if uncovered else "") + f"{'pending':>7} {'score':>6}")

    def row_text(label: str, row: dict) -> str:
        s = score(row)
        return (f"{_clip(label, 44):<44} {row['killed']:>6} {row['survived']:>8} {row['timeout']:>7} "
                f"{row['build_failed']:>12} "
                + (f"{row['not_covered']:>11} " if uncovered else "") + f"{row['pending']:>7} "
                f"{'-' if s is None else f'{s:.0%}':>6}")

    for group, title in (("patch", "per patch"), ("function", "per function")):
        if group not in groups:
            continue
        lines += [title + ":", head]
        for key, row in groups[group].items():
            label = f"{key} {subjects.get(key, '')}" if group == "patch" else key
            lines.append(row_text(label, row))
        lines.append("")
    lines.append(row_text("all mutants", total))
    survivors = [r for r in records if r.get("verdict") == "survived"]
    if survivors:
        lines += ["", "survived:"]
        for r in survivors:
            lines.append(f"  {r['id']} {r['operator']:<12} {r['file']}:{r['line']} ({r['function']}): "
                         f"{_clip(' '.join(r['original'].split()) or '(insert)', 40)} -> "
                         f"{_clip(' '.join(r['mutated'].split()) or '(deleted)', 40)}")
    missed = [r for r in records if r.get("verdict") == "not_covered"]
    if missed:
        lines += ["", "not covered (no test executed the line; not built, not run):"]
        for r in missed:
            lines.append(f"  {r['id']} {r['operator']:<12} {r['file']}:{r['line']} ({r['function']})")
    return "\n".join(lines)


def run_mutate(req: MutateRequest) -> MutateResult:
    """Plan the mutants, then build, boot and judge each one until done, --max or the budget."""
    plan = plan_mutants(req)
    if req.out:
        out = Path(req.out).expanduser().resolve()
    else:
        from ..cache import cache_dir
        out = cache_dir("mutate") / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    result = _Mutator(req, plan, out).run()
    (out / "summary.txt").write_text(result.summary + "\n")
    return result
