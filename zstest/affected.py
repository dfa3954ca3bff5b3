"""`zstest run --affected`: only the tests whose stored coverage executes the changed lines.

A `--coverage` run keeps a coverage map in the cache (cache/coverage-maps/<key>.json, see
manifests.CoverageMap): per test, the lines (file:line, with counts) and functions it executed,
keyed by the source the build came from (tree, the commit it built: base + series) and its
config/arch. A later `--affected` run finds the nearest map for its build (the same commit;
else its base without the series; else any map of the same tree and config; within each, the
map that records the most of the tests asked for, then the newest), asks git
which lines of the map's source changed up to the build's commit, and runs only the tests that
executed them, plus the boot checks (SMOKE), plus every test the map does not know. When the
answer cannot be known (no map, a changed header or a file gcov did not instrument, a commit
git no longer has) the whole selection runs, and results.json's `selection` says why.
Never silently narrower than asked: --affected is opt-in.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from .coverage import BOOT, analyze, collect
from .errors import BadInput
from .manifests import CoverageMap, load_build, load_coverage_map, now_iso, save_coverage_map

log = logging.getLogger("zstest.affected")

MAPS_AREA = "coverage-maps"
# Always run: the boot checks are seconds long and say whether there is a kernel to judge.
SMOKE = ("test_boot.py::",)
# Changes that cannot change what a guest test sees.
IGNORED_PREFIXES = ("Documentation/",)
IGNORED_SUFFIXES = (".rst", ".txt", ".md")


# ---------------------------------------------------------------- keeping a map

def source_of(build: dict) -> dict:
    """What the build was made from: tree, cached git dir, base and the commit it built."""
    kernel = build.get("kernel") or {}
    series = build.get("series") or None
    commit = kernel.get("base")
    if series:
        commits = [p.get("commit") for p in series.get("patches") or []]
        commit = commits[-1] if commits and all(commits) else None
    return {"tree": kernel.get("tree"), "git_dir": kernel.get("git_dir"),
            "base": kernel.get("base"), "commit": commit,
            "series": None if not series else {
                "source": series.get("source"), "revision": series.get("revision"),
                "sha256": [p.get("sha256") for p in series.get("patches") or []]}}


def config_of(build: dict) -> dict:
    """The config and arch a map is valid for (the coverage profile itself is not part of it)."""
    config = build.get("config") or {}
    arch = build.get("arch") or {}
    return {"profiles": [p for p in config.get("profiles") or [] if p != "coverage"],
            "fragments": list(config.get("fragments") or []),
            "arch": arch.get("name", "x86_64"), "page_size": arch.get("page_size", 4096)}


def map_key(source: dict, config: dict) -> str:
    text = json.dumps([source.get("tree"), source.get("commit"), config], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def maps_dir() -> Path:
    from .cache import cache_dir
    return cache_dir(MAPS_AREA)


def map_document(collected, tests: list, build: dict, suite: str, keyword: str,
                 results_dir: Path) -> dict:
    """The map of one --coverage run: per test its executed lines and functions; per file the
    lines gcov counts and the functions' line ranges (for a change on a line gcov does not count)."""
    files: dict[str, dict] = {}
    per_test: dict[str, dict] = {}
    by_name = {t.name: t for t in tests}
    for name, test_files in collected.per_test.items():
        entry: dict[str, Any] = {"status": getattr(by_name.get(name), "status", "passed"),
                                 "duration_s": getattr(by_name.get(name), "duration_s", 0.0),
                                 "files": {}}
        for path, fl in test_files.items():
            shape = files.setdefault(path, {"executable": set(), "functions": {}})
            shape["executable"].update(fl.counts)
            shape["functions"].update({n: list(r) for n, r in fl.function_lines.items()})
            ran = sorted((n, c) for n, c in fl.counts.items() if c > 0)
            functions = sorted({_enclosing(fl.function_lines, n) for n, _ in ran} - {""})
            entry["files"][path] = {"lines": [list(p) for p in ran], "functions": functions}
        per_test[name] = entry
    for shape in files.values():
        shape["executable"] = sorted(shape["executable"])
    source, config = source_of(build), config_of(build)
    return {"key": map_key(source, config), "created": now_iso(), "source": source,
            "config": config, "kernel_version": (build.get("kernel") or {}).get("version"),
            "suite": suite, "keyword": keyword, "results_dir": str(results_dir),
            "files": files, "tests": per_test}


def analyze_and_keep(results_dir: Path, run, build: dict[str, Any],
                     build_dir: Path | None = None) -> dict[str, Any]:
    """coverage.analyze() for a run, and the run's per-test coverage map kept in the cache for
    `--affected` and guided mutate (results.json's coverage.map says where)."""
    collected = collect(results_dir, run.tests, build, build_dir)
    coverage = analyze(results_dir, run.tests, build, build_dir, collected)
    command = list(run.command or [])
    keyword = command[command.index("-k") + 1] if "-k" in command[:-1] else ""
    try:
        kept = keep_map(map_document(collected, run.tests, build, run.suite, keyword,
                                     results_dir))
    except OSError as exc:     # a full disk: the run's own coverage stands
        coverage["notes"].append(f"the coverage map could not be kept: {exc}")
        return coverage
    if kept is not None:
        coverage["map"] = str(kept)
    return coverage


def keep_map(document: dict) -> Optional[Path]:
    """Store a run's map; a map of the same source and config keeps the tests this run did not
    run (a -k run adds to it). None when the build has no commit to key it by."""
    if not document["source"].get("commit") or not document["tests"]:
        return None
    from .cache import cache_dir, file_lock
    path = maps_dir() / f"{document['key']}.json"
    # two runs of the same source (a mutate baseline, a test's) merge one after the other
    with file_lock(cache_dir("locks") / f"coverage-map-{document['key']}.lock"):
        if path.is_file():
            try:
                old = load_coverage_map(path)
                kept = {n: t for n, t in old.tests.items() if n not in document["tests"]}
                document["tests"] = {**kept, **document["tests"]}
                for f, shape in old.files.items():
                    document["files"].setdefault(f, shape)
            except BadInput as exc:      # a broken map is replaced, not trusted
                log.warning("replacing %s: %s", path, exc.message)
        return save_coverage_map(path, document)


# ---------------------------------------------------------------- finding the nearest map

def stored_maps() -> list[CoverageMap]:
    found = []
    for path in sorted(maps_dir().glob("*.json")):
        try:
            found.append(load_coverage_map(path))
        except BadInput as exc:
            log.warning("ignoring %s", exc.message)
    return found


def nearest_map(build: dict, maps: Iterable[CoverageMap],
                asked: Iterable[str] = ()) -> tuple[Optional[CoverageMap], str]:
    """The map to judge build's changes against, and how it was chosen ("" when none fits): the
    same commit, else the series' base, else any of the tree and config; within a rank the map
    that records the most of the asked-for tests (a map another suite or -k made knows few of
    them, and each test it does not know runs), then the newest."""
    source, config = source_of(build), config_of(build)
    fitting = [m for m in maps if m.config == config and m.tests and
               m.source.get("tree") == source["tree"] and m.source.get("commit")]
    wanted = set(asked)

    def preference(m: CoverageMap) -> tuple[int, str]:
        return covers(m, wanted)["recorded"], m.created

    def chosen(candidates: list[CoverageMap], how: str) -> tuple[CoverageMap, str]:
        best = max(candidates, key=preference)
        return best, how + _missing_text(len(wanted) - preference(best)[0], len(wanted))

    # a same-source map beats a wider map of the base: what it skips is exact, no diff judged
    same = [m for m in fitting if m.source["commit"] == source["commit"]]
    if same:
        return chosen(same, "the same source")
    base = [m for m in fitting if m.source["commit"] == source["base"]
            and not m.source.get("series")]
    if base:
        return chosen(base, "the series' base, without the series")
    if fitting:
        newest = max(fitting, key=preference).created == max(m.created for m in fitting)
        return chosen(fitting, "the newest map of this tree and config" if newest else
                      "the map of this tree and config that records the most tests asked for")
    return None, ""


def _missing_text(missing: int, asked: int) -> str:
    if not missing:
        return ""
    return (f"; {missing} of the {asked} tests asked for "
            + ("is not in it and runs" if missing == 1 else "are not in it and run"))


def covers(cmap: CoverageMap, asked: Iterable[str]) -> dict:
    """results.json's selection.map.covers: how many of the asked-for tests the map records."""
    wanted = set(asked)
    return {"recorded": len(wanted.intersection(cmap.tests)), "asked": len(wanted)}


# ---------------------------------------------------------------- what changed

def changed_old_lines(diff_text: str) -> tuple[dict[str, set[int]], list[str]]:
    """The lines of the old side a diff touches: removed lines, and both neighbours of a pure
    insertion; plus the files it adds, deletes or renames (judged whole)."""
    from .series.diff import parse_file_diffs
    lines: dict[str, set[int]] = {}
    whole: list[str] = []
    for diff in parse_file_diffs(diff_text):
        if diff.old_path is None or diff.new_path != diff.old_path:
            whole.append(diff.old_path or diff.new_path or "?")
            continue
        touched = lines.setdefault(diff.old_path, set())
        for hunk in diff.hunks:
            removes = any(b[0] == "-" for b in hunk.body)
            o = hunk.old_start
            for body in hunk.body:
                if body[0] == "-":
                    touched.add(o)
                elif body[0] == "+" and not removes:
                    touched.update(n for n in (o - 1, o) if n >= 1)
                if body[0] in " -":
                    o += 1
    return {f: v for f, v in lines.items() if v}, whole


def diff_between(git_dir: str, old: str, new: str) -> str:
    """git's diff of two commits of a cached repository, no context lines."""
    from .gitsafe import run_git
    from .tree import inside_cache, is_object_id
    repo = inside_cache(git_dir)
    if repo is None or not (is_object_id(old) and is_object_id(new)):
        raise BadInput("the map's or the build's commit is not in zstest's cached repository")
    res = run_git(["diff", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames", "-U0",
                   old, new, "--"], git_dir=repo, timeout=120, check=False)
    if not res.ok:
        raise BadInput(f"git cannot diff {old[:12]}..{new[:12]}: "
                       f"{(res.stderr or '').strip().splitlines()[-1:] or ['no reason']}")
    return res.stdout


# ---------------------------------------------------------------- the selection

@dataclass
class Selection:
    """results.json's `selection`: which tests run, which were skipped, and why."""
    mode: str                                  # affected / full
    reason: str = ""                           # full: why the whole selection runs
    map: dict = field(default_factory=dict)    # path, key, how, commit, created, covers, ...
    changed: dict = field(default_factory=dict)  # file -> [old-side lines]
    selected: list = field(default_factory=list)   # [{name, why}] in run order
    skipped: list = field(default_factory=list)    # [{name, why}]

    @property
    def tests(self) -> Optional[list[str]]:
        """The node ids to run (None: the whole selection)."""
        return [t["name"] for t in self.selected] if self.mode == "affected" else None

    def to_dict(self) -> dict:
        return {"mode": self.mode, "reason": self.reason, "map": self.map,
                "changed_lines": {f: sorted(v) for f, v in self.changed.items()},
                "selected": self.selected, "skipped": self.skipped}


def _enclosing(functions: dict, line: int) -> str:
    inside = [(s, n) for n, (s, e) in functions.items() if s <= line <= e]
    return max(inside)[1] if inside else ""


def _executed(test: dict, path: str) -> dict[int, int]:
    return {n: c for n, c in ((test.get("files") or {}).get(path) or {}).get("lines") or []}


def line_hits(cmap: CoverageMap, path: str, line: int) -> tuple[dict[str, int], str]:
    """The map's tests that ran path:line, with how often (or, for a line gcov does not count,
    how often they ran its function, else anything of the file), and what was matched."""
    shape = cmap.files.get(path) or {}
    functions = shape.get("functions") or {}
    if line in set(shape.get("executable") or []):
        span, what = (line, line), f"{path}:{line}"
    elif _enclosing(functions, line):
        name = _enclosing(functions, line)
        span, what = tuple(functions[name]), f"{name}() (around {path}:{line})"
    else:
        span, what = (1, 1 << 30), f"{path} (line {line} is outside any function)"
    hits = {}
    for name, test in cmap.tests.items():
        count = sum(c for n, c in _executed(test, path).items() if span[0] <= n <= span[1])
        if count:
            hits[name] = count
    return hits, what


def _ignored(path: str) -> bool:
    return path.startswith(IGNORED_PREFIXES) or path.endswith(IGNORED_SUFFIXES)


def select(cmap: CoverageMap, changed: dict[str, set[int]], whole: list[str],
           suite_tests: list[str]) -> Selection:
    """Which of suite_tests to run for these changes (pure: the map and the diff in)."""
    sel = Selection("affected", changed=changed)
    blind = [f for f in sorted(set(changed) | set(whole))
             if not _ignored(f) and (f in whole or f not in cmap.files)]
    if blind:
        sel.mode = "full"
        sel.reason = (f"{blind[0]} changed and the map has no line coverage of it"
                      + (f" (nor of {len(blind) - 1} more file(s))" if len(blind) > 1 else ""))
        return sel
    why: dict[str, str] = {}
    for path, lines in sorted(changed.items()):
        if path not in cmap.files:
            continue
        for line in sorted(lines):
            hits, what = line_hits(cmap, path, line)
            if BOOT in hits:
                sel.mode = "full"
                sel.reason = f"{what} runs while the kernel boots, before every test"
                return sel
            for name, count in hits.items():
                why.setdefault(name, f"executed {what} ({count}x in the map's run)")
    for name in suite_tests:
        test = cmap.tests.get(name)
        if name.startswith(SMOKE):
            reason = "boot check (always run)"
        elif test is None:
            reason = "not in the map (no coverage recorded for it)"
        elif test.get("status") not in ("passed", "skipped"):
            reason = f"{test.get('status')} in the map's run (its coverage may be partial)"
        else:
            reason = why.get(name, "")
        if reason:
            sel.selected.append({"name": name, "why": reason})
        else:
            sel.skipped.append({"name": name, "why": "executed none of the changed lines in "
                                                     "the map's run"})
    return sel


def suite_tests(suite: str, keyword: str = "") -> list[str]:
    """The node ids a boot-and-run of suite (-k keyword) would run, in its order (collected
    on the host: collection needs no guest)."""
    import pytest

    from .suites import SUITES_DIR, load_suite
    spec = load_suite(suite)

    class _Ids:
        ids: list[str] = []

        def pytest_collection_finish(self, session):
            self.ids = [item.nodeid for item in session.items]

    ids = _Ids()
    keyword = " and ".join(f"({k})" for k in (spec.keyword, keyword) if k)
    args = [str(p) for p in spec.paths] + ["-c", str(SUITES_DIR / "pytest.ini"), "--rootdir",
                                           str(SUITES_DIR), "--collect-only", "-q"]
    args += ["-k", keyword] if keyword else []
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main(args, plugins=[ids])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise BadInput(f"pytest cannot collect the {suite} suite (exit {int(code)}).")
    return ids.ids


def affected_selection(build_dir: Path, suite: str, keyword: str = "",
                       maps: Optional[list[CoverageMap]] = None) -> Selection:
    """The selection for a build: the nearest map, the lines changed since it, the tests."""
    build = load_build(build_dir).data
    maps = stored_maps() if maps is None else maps
    asked = suite_tests(suite, keyword) if maps else []
    cmap, how = nearest_map(build, maps, asked)
    if cmap is None:
        return Selection("full", reason="no coverage map of this tree and config: run once with "
                                        "--coverage (e.g. `zstest run --coverage` on the base) "
                                        "to make one")
    source = source_of(build)
    info = {"path": str(cmap.path), "key": cmap.key, "how": how,
            "commit": cmap.source.get("commit"), "created": cmap.created, "suite": cmap.suite,
            "keyword": cmap.keyword, "covers": covers(cmap, asked)}
    if cmap.source["commit"] == source["commit"]:
        changed, whole = {}, []
    else:
        try:
            changed, whole = changed_old_lines(diff_between(
                source.get("git_dir") or "", cmap.source["commit"], source["commit"] or ""))
        except BadInput as exc:
            sel = Selection("full", reason=f"{exc.message.rstrip('.')}; the whole suite runs")
            sel.map = info
            return sel
    sel = select(cmap, changed, whole, asked)
    sel.map = info
    if sel.mode == "affected" and not sel.selected:     # -k left out even the boot checks
        sel.mode, sel.reason = "full", ("nothing changed since the map's run and the selection "
                                        "has no boot check" if not changed else
                                        "none of the selected tests runs the changed lines")
    return sel


def summary_lines(selection: dict) -> list[str]:
    """summary.txt's lines for results.json's selection."""
    if not selection:
        return []
    if selection.get("mode") != "affected":
        return [f"selection: the whole suite (--affected: {selection.get('reason', '')})"]
    where = _changed_text(selection.get("changed_lines") or {})
    out = [f"selection: --affected, {len(selection.get('selected') or [])} tests run, "
           f"{len(selection.get('skipped') or [])} skipped; changed lines {where} "
           f"(map: {(selection.get('map') or {}).get('how', '?')}, "
           f"{str((selection.get('map') or {}).get('commit') or '')[:12]})"]
    for t in selection.get("skipped") or []:
        out.append(f"  skipped {t['name']}: {t['why']}")
    return out


def _ranges_text(lines: list[int]) -> str:
    parts: list[list[int]] = []
    for n in sorted(lines):
        if parts and n == parts[-1][1] + 1:
            parts[-1][1] = n
        else:
            parts.append([n, n])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def narrow(req):
    """A BootRunRequest narrowed to the affected tests (or whole, saying why): --affected."""
    from dataclasses import replace
    sel = affected_selection(Path(req.build_dir), req.suite, req.keyword)
    say = req.on_progress or (lambda msg: None)
    if sel.mode == "affected":
        say(f"affected: {len(sel.selected)} tests run, {len(sel.skipped)} skipped (map: "
            f"{sel.map.get('how')}; changed lines: {_changed_text(sel.changed)})")
    else:
        say(f"affected: the whole suite runs: {sel.reason}")
    return replace(req, tests=sel.tests, selection=sel.to_dict())


def _changed_text(changed: dict) -> str:
    return "; ".join(f"{f}:{_ranges_text(sorted(v))}" for f, v in sorted(changed.items())) or "none"
