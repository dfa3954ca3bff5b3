"""zstest's results as KCIDB JSON (KernelCI's common report schema), validated by kcidb-io.

`to_kcidb(sources)` reads results dirs, build dirs, or trees of them (a compare, bisect or matrix
output, a CI artifact download) through manifests.py and returns one KCIDB document:

- a checkout per tree + base commit + patchset: tree name, base commit, the patchset hash
  (patchset.py: sha256 over the patches' sha256s, recorded per patch in build.json), the
  series' message-id (the cover's; every patch's in misc.message_ids), valid = every patch
  applied;
- a build per build dir: config (profiles and fragments), arch, compiler, duration, status,
  the reproducer command, .config and build.log as URLs;
- per results dir, one test per guest test at `zstest.<suite>.<test>[.<param>]` (KCIDB's
  status: passed PASS, failed FAIL, error ERROR, skipped SKIP, interrupted or not run MISS),
  duration and log; a `zstest.<suite>.<test>.<metric>` test (DONE) per perf metric
  (metrics.perf) with its number and unit; `zstest.boot` with the boot-to-SSH time; under
  `zstest.<suite>.coverage` the executed share of each patch's and file's lines (--coverage
  runs); `zstest.<suite>.kernel_log` when the console had splats outside any test.

IDs are derived from what the files hold (the recorded paths, base, patchset), so the same
results exported twice give the same objects: KCIDB merges a resubmission, it does not
duplicate it. URLs are file:// URLs of this machine unless a base URL says where the tree is
published. Submitting needs credentials and the network; zstest only writes the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .errors import BadInput, ZstestError
from .manifests import (BUILD_JSON, BuildManifest, ResultsManifest, find_results, has_build,
                        load_build, load_results, save_kcidb)
from .patchset import recorded_patchset_hash

DEFAULT_ORIGIN = "zstest"
ORIGIN = re.compile(r"^[a-z0-9_]+$")
# KCIDB test status per zstest test status
TEST_STATUS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP",
               "interrupted": "MISS"}
BUILD_STATUS = {"ok": "PASS", "failed": "FAIL", "interrupted": "MISS"}
EXCERPT_MAX = 16384          # KCIDB's log_excerpt maxLength
_PATH_PART = re.compile(r"[^a-zA-Z0-9_-]+")


def _schema():
    from kcidb_io.schema import LATEST
    return LATEST


def _digest(*parts: Any, n: int = 16) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:n]


def path_part(text: str) -> str:
    """A KCIDB test path segment ([a-zA-Z0-9_-]+) from any name."""
    return _PATH_PART.sub("_", text).strip("_") or "_"


def test_path(suite: str, name: str) -> str:
    """zstest.<suite>.<test function>[.<param>] of a pytest node id (file.py::test[param])."""
    func = name.rsplit("::", 1)[-1]
    param = ""
    if "[" in func and func.endswith("]"):
        func, param = func[:-1].split("[", 1)
    parts = ["zstest", path_part(suite or "suite"), path_part(func)]
    return ".".join(parts + ([path_part(param)] if param else []))


@dataclass
class _Urls:
    """file:// URLs, or url_base + the path relative to the source root it was found under."""
    url_base: Optional[str] = None
    roots: List[Path] = field(default_factory=list)

    def of(self, path: Path) -> str:
        path = Path(path).resolve()
        if self.url_base:
            for root in self.roots:
                try:
                    rel = path.relative_to(root)
                except ValueError:
                    continue
                from urllib.parse import quote
                return self.url_base.rstrip("/") + "/" + quote(rel.as_posix())
        return path.as_uri()


@dataclass
class _Found:
    results: List[ResultsManifest]
    builds: Dict[Path, BuildManifest]       # resolved build dir -> manifest
    by_recorded: Dict[str, Path]            # build.json's own build_dir (as recorded) -> dir


def _collect(sources: Iterable[Path]) -> _Found:
    found = _Found([], {}, {})
    seen_results = set()
    for src in sources:
        src = Path(src)
        if not src.is_dir():
            raise BadInput(f"{src} is not a directory: give results dirs, build dirs or trees "
                           f"of them.")
        for rdir in find_results(src):
            if rdir.resolve() not in seen_results:
                seen_results.add(rdir.resolve())
                found.results.append(load_results(rdir))
        build_files = [src / BUILD_JSON] if has_build(src) else []
        build_files += sorted(p for p in src.rglob(BUILD_JSON)
                              if not any(part.startswith(".") for part in
                                         p.relative_to(src).parts[:-1]))
        for bfile in build_files:
            bdir = bfile.parent.resolve()
            if bdir in found.builds:
                continue
            found.builds[bdir] = load_build(bdir)
            recorded = found.builds[bdir].data.get("build_dir")
            if isinstance(recorded, str):
                found.by_recorded.setdefault(recorded, bdir)
    return found


def _build_of(results: ResultsManifest, found: _Found) -> Optional[BuildManifest]:
    """The build a results dir booted: its kernel.build_dir when that is a build dir here (or
    one of the sources' builds recorded at that path: a tree copied off a CI runner)."""
    recorded = results.kernel.build_dir
    if not recorded:
        return None
    path = Path(recorded)
    if path.is_dir() and has_build(path):
        resolved = path.resolve()
        if resolved not in found.builds:
            try:
                found.builds[resolved] = load_build(resolved)
            except BadInput:
                return None
        return found.builds[resolved]
    bdir = found.by_recorded.get(recorded)
    return found.builds.get(bdir) if bdir else None


# ---------------------------------------------------------------- checkout

def _patch_hash(build: BuildManifest) -> Tuple[Optional[str], str]:
    """(patchset hash or None when unknown, how it was found)."""
    series = build.data.get("series")
    if series is None:
        return "", "no series"
    recorded = recorded_patchset_hash(series)
    if recorded is not None:
        return recorded, "recorded at build time"
    return None, "unknown: build.json records no per-patch sha256 (made before zstest did)"


def _message_ids(build: BuildManifest) -> List[str]:
    series = build.data.get("series") or {}
    ids = [series.get("msgid")] + [p.get("msgid") for p in series.get("patches") or []
                                   if isinstance(p, dict)]
    return [m for m in dict.fromkeys(ids) if isinstance(m, str) and "@" in m]


def _checkout(build: Optional[BuildManifest], origin: str, results: Optional[ResultsManifest]
              ) -> Dict[str, Any]:
    if build is None:
        recorded = results.kernel.build_dir if results else None
        return {"id": f"{origin}:unknown-{_digest(recorded)}", "origin": origin,
                "comment": "the build of these results was not found",
                "misc": {"build_dir": recorded}}
    kernel = build.kernel
    phash, how = _patch_hash(build)
    tree = Path(kernel.tree).name if kernel.tree else "unknown"
    # without a patchset hash, the build (as recorded) stands for its patches
    patches = phash if phash is not None else str(build.data.get("build_dir") or build.path)
    checkout: Dict[str, Any] = {"id": f"{origin}:{_digest(tree, kernel.base, patches)}",
                                "origin": origin, "tree_name": tree}
    if kernel.base and re.fullmatch(r"[0-9a-f]{40}", kernel.base):
        checkout["git_commit_hash"] = kernel.base
    if kernel.version:
        checkout["git_commit_name"] = kernel.version
    if phash is not None:
        checkout["patchset_hash"] = phash
    ids = _message_ids(build)
    if ids:
        checkout["message_id"] = ids[0]
    series = build.series
    misc: Dict[str, Any] = {"patchset_hash": how, "tree": kernel.tree}
    if series is not None:
        applied = [p.apply for p in series.patches]
        checkout["valid"] = bool(applied) and all(a in ("applied", "applied-3way", "ok")
                                                  for a in applied)
        subject = series.cover_subject or (series.patches[0].subject if series.patches else "")
        checkout["comment"] = (f"{subject} (v{series.revision}, "
                               f"{len(series.patches)} patches)" if series.revision
                               else subject)
        failed = next((p for p in series.patches if p.apply == "failed"), None)
        if failed is not None and failed.apply_message:
            checkout["log_excerpt"] = failed.apply_message[:EXCERPT_MAX]
        misc.update(message_ids=ids, series_source=series.source, revision=series.revision,
                    patches=[{"index": p.index, "subject": p.subject, "apply": p.apply,
                              "build": p.build} for p in series.patches])
    else:
        checkout["valid"] = build.status != "interrupted"
    checkout["misc"] = misc
    return checkout


# ---------------------------------------------------------------- build

def _build(build: BuildManifest, checkout_id: str, origin: str, urls: _Urls) -> Dict[str, Any]:
    data = build.data
    # the build dir as recorded: a tree copied off a CI runner keeps its builds' ids
    recorded = str(data.get("build_dir") or build.path)
    out: Dict[str, Any] = {"id": f"{origin}:{_digest(recorded, build.kernel.base, checkout_id)}",
                           "checkout_id": checkout_id, "origin": origin,
                           "architecture": build.arch}
    config = build.config
    names = list(config.profiles) + [Path(f).name for f in config.fragments]
    if names:
        out["config_name"] = "+".join(names)
    if build.duration_s is not None:
        out["duration"] = float(build.duration_s)
    if build.status in BUILD_STATUS:
        out["status"] = BUILD_STATUS[build.status]
    compiler = build.toolchain.version      # the compiler that built it (clang too)
    if isinstance(compiler, str) and compiler:
        out["compiler"] = compiler
    if build.reproducer:
        out["command"] = build.reproducer
    config_file = build.artifact(build.artifacts.config, ".config")
    if config_file is not None and config_file.is_file():
        out["config_url"] = urls.of(config_file)
    log = build.build_dir / "build.log"
    if log.is_file():
        out["log_url"] = urls.of(log)
    errors = [str(e) for e in data.get("errors") or []] + [
        str(e) for p in build.patches for e in p.errors]
    if build.error or errors:
        text = "\n".join(([build.error] if build.error else []) + errors)
        out["log_excerpt"] = text[:EXCERPT_MAX]
    out["misc"] = {"build_dir": str(build.build_dir), "page_size": build.page_size,
                   "kernel_version": build.kernel.version}
    return out


def _synthetic_build(results: ResultsManifest, checkout_id: str, origin: str) -> Dict[str, Any]:
    """A results dir whose build is not here: the build as the results name it."""
    return {"id": f"{origin}:{_digest(results.kernel.build_dir, checkout_id)}",
            "checkout_id": checkout_id, "origin": origin,
            "comment": f"build not found ({results.kernel.build_dir or 'unnamed'})",
            "misc": {"kernel_version": results.kernel.version}}


# ---------------------------------------------------------------- tests

def _test_id(build_id: str, results: ResultsManifest, path: str) -> str:
    origin = build_id.split(":", 1)[0]
    # what the file holds, not where it lies: a copied tree exports the same ids
    run = _digest(build_id, results.data.get("started"), results.suite, results.duration_s,
                  results.command)
    return f"{origin}:{run}:{path}"


def _base_test(build_id: str, results: ResultsManifest, path: str, status: str) -> Dict[str, Any]:
    test = {"id": _test_id(build_id, results, path), "build_id": build_id,
            "origin": build_id.split(":", 1)[0], "path": path, "status": status,
            "environment": {"comment": f"QEMU {results.accel.name or '?'} guest"}}
    started = results.data.get("started")
    if isinstance(started, str) and started:
        test["start_time"] = started
    return test


def _first_line(text: str) -> str:
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def _guest_tests(results: ResultsManifest, build_id: str, urls: _Urls) -> List[Dict[str, Any]]:
    suite = results.suite or "suite"
    out = []
    for t in results.tests:
        path = test_path(suite, str(t.get("name")))
        status = TEST_STATUS.get(str(t.get("status")), "ERROR")
        test = _base_test(build_id, results, path, status)
        if isinstance(t.get("duration_s"), (int, float)):
            test["duration"] = float(t["duration_s"])
        log = t.get("log")
        if isinstance(log, str) and (results.results_dir / log).is_file():
            test["log_url"] = urls.of(results.results_dir / log)
        excerpt = "\n".join([str(t.get("message") or "")] + [
            str(s.get("title", "")) for s in t.get("splats") or [] if isinstance(s, dict)]).strip()
        if excerpt and status != "PASS":
            test["log_excerpt"] = excerpt[:EXCERPT_MAX]
        comment = _first_line(str(t.get("message") or ""))
        if comment:
            test["comment"] = comment[:500]
        test["misc"] = {"name": t.get("name"), "runs": t.get("runs"), "passes": t.get("passes")}
        out.append(test)
        out += _perf_tests(results, build_id, path, t)
    for name in results.data.get("not_run") or []:
        path = test_path(suite, str(name))
        out.append({**_base_test(build_id, results, path, "MISS"),
                    "comment": "not run: the run stopped before it (a crashed kernel)"})
    return out


def _perf_tests(results, build_id: str, path: str, t: dict) -> List[Dict[str, Any]]:
    perf = (t.get("metrics") or {}).get("perf") if isinstance(t.get("metrics"), dict) else None
    out = []
    for name, m in sorted((perf or {}).items()):
        if not isinstance(m, dict) or not isinstance(m.get("value"), (int, float)) \
                or isinstance(m.get("value"), bool):
            continue
        number: Dict[str, Any] = {"value": float(m["value"])}
        if isinstance(m.get("unit"), str) and m["unit"]:
            number["unit"] = m["unit"]
        test = _base_test(build_id, results, f"{path}.{path_part(name)}", "DONE")
        test["number"] = number
        test["misc"] = {"metric": name, "better": m.get("better"), "exact": m.get("exact")}
        out.append(test)
    return out


def _run_tests(results: ResultsManifest, build_id: str, urls: _Urls) -> List[Dict[str, Any]]:
    """The boot, the console's splats outside tests, and coverage."""
    suite = path_part(results.suite or "suite")
    out = []
    console = results.results_dir / results.console_log
    # no SSH login: FAIL when the kernel left evidence (exit 1), ERROR when it left none (5)
    boot = _base_test(build_id, results, "zstest.boot",
                      "PASS" if results.boot_to_ssh_s is not None else
                      {1: "FAIL", 5: "ERROR"}.get(results.exit_code, "MISS"))
    if results.boot_to_ssh_s is not None:
        boot["number"] = {"value": float(results.boot_to_ssh_s), "unit": "s"}
        boot["comment"] = "boot to an SSH login"
    elif results.message:
        boot["comment"] = _first_line(results.message)[:500]
    if console.is_file():
        boot["log_url"] = urls.of(console)
    out.append(boot)
    if results.splats:
        titles = "\n".join(str(s.get("title", "")) for s in results.splats)
        test = _base_test(build_id, results, f"zstest.{suite}.kernel_log", "FAIL")
        test.update(comment=f"{len(results.splats)} splat(s) outside any test",
                    log_excerpt=titles[:EXCERPT_MAX])
        if console.is_file():
            test["log_url"] = urls.of(console)
        out.append(test)
    out += _coverage_tests(results, build_id, suite)
    return out


def _coverage_tests(results: ResultsManifest, build_id: str, suite: str) -> List[Dict[str, Any]]:
    coverage = results.data.get("coverage")
    if not isinstance(coverage, dict):
        return []
    out = []
    for p in coverage.get("patches") or []:
        if not isinstance(p, dict) or not p.get("executable"):
            continue
        test = _base_test(build_id, results, f"zstest.{suite}.coverage.patch{p.get('index')}",
                          "DONE")
        test["number"] = {"value": 100.0 * p.get("executed", 0) / p["executable"], "unit": "%"}
        test["comment"] = (f"patch {p.get('index')}: {p.get('executed')}/{p['executable']} "
                           f"changed lines executed")
        test["misc"] = {"subject": p.get("subject"), "not_executed": p.get("not_executed"),
                        "tests": p.get("tests")}
        out.append(test)
    for name, f in sorted((coverage.get("files") or {}).items()):
        if not isinstance(f, dict) or not f.get("lines"):
            continue
        test = _base_test(build_id, results, f"zstest.{suite}.coverage.{path_part(name)}", "DONE")
        test["number"] = {"value": 100.0 * f.get("executed", 0) / f["lines"], "unit": "%"}
        test["comment"] = f"{name}: {f.get('executed')}/{f['lines']} lines executed"
        out.append(test)
    return out


# ---------------------------------------------------------------- the document

def to_kcidb(sources: Iterable[Path], origin: str = DEFAULT_ORIGIN,
             url_base: Optional[str] = None) -> Dict[str, Any]:
    """One KCIDB document (the latest schema kcidb-io knows) of the results and builds found in
    sources (results dirs, build dirs, or trees of them); BadInput when none is found."""
    if not ORIGIN.match(origin or ""):
        raise BadInput(f"the KCIDB origin {origin!r} must be lower-case letters, digits and "
                       f"underscores (e.g. zstest or my_lab).")
    sources = [Path(s) for s in sources]
    found = _collect(sources)
    if not found.results and not found.builds:
        raise BadInput(f"{', '.join(map(str, sources))} holds no results.json or build.json.")
    urls = _Urls(url_base, [s.resolve() for s in sources])
    checkouts: Dict[str, dict] = {}
    builds: Dict[str, dict] = {}
    tests: List[dict] = []
    build_ids: Dict[Path, str] = {}

    def add_build(manifest: BuildManifest) -> str:
        key = manifest.build_dir.resolve()
        if key not in build_ids:
            checkout = _checkout(manifest, origin, None)
            checkouts.setdefault(checkout["id"], checkout)
            entry = _build(manifest, checkout["id"], origin, urls)
            builds.setdefault(entry["id"], entry)
            build_ids[key] = entry["id"]
        return build_ids[key]

    for results in found.results:
        manifest = _build_of(results, found)
        if manifest is not None:
            build_id = add_build(manifest)
        else:
            checkout = _checkout(None, origin, results)
            checkouts.setdefault(checkout["id"], checkout)
            entry = _synthetic_build(results, checkout["id"], origin)
            builds.setdefault(entry["id"], entry)
            build_id = entry["id"]
        tests += _guest_tests(results, build_id, urls) + _run_tests(results, build_id, urls)
    for manifest in found.builds.values():
        add_build(manifest)         # builds no results dir booted (a build that failed)
    schema = _schema()
    return {"version": {"major": schema.major, "minor": schema.minor},
            "checkouts": list(checkouts.values()), "builds": list(builds.values()),
            "tests": tests}


def validate(data: Dict[str, Any]) -> None:
    """kcidb-io's check of data against its latest schema; a failure is zstest's bug."""
    import jsonschema
    try:
        _schema().validate(data)
    except jsonschema.exceptions.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise ZstestError(f"zstest wrote KCIDB data its schema rejects at {where}: "
                          f"{exc.message[:300]} (a zstest bug: please report it).", 2) from None


def export_kcidb(sources: List[Path], out: Path, origin: str = DEFAULT_ORIGIN,
                 url_base: Optional[str] = None) -> Dict[str, Any]:
    """sources as a KCIDB JSON file at out (validated first); returns the document."""
    data = to_kcidb(sources, origin=origin, url_base=url_base)
    validate(data)
    try:
        save_kcidb(Path(out), data)
    except OSError as exc:
        raise BadInput(f"cannot write {out}: {exc.strerror or exc}.") from None
    return data


def write_kcidb(sources: List[Path], out: Path, origin: str = DEFAULT_ORIGIN,
                url_base: Optional[str] = None) -> Path:
    """sources as a KCIDB JSON file at out (validated first); returns out."""
    export_kcidb(sources, out, origin=origin, url_base=url_base)
    return Path(out)


def counts_line(data: Dict[str, Any]) -> str:
    return (f"{len(data['checkouts'])} checkouts, {len(data['builds'])} builds, "
            f"{len(data['tests'])} tests")
