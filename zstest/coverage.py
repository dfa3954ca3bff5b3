"""Execution coverage (`--coverage`): which lines of each patch did the tests run?

Build: the `coverage` profile (CONFIG_GCOV_KERNEL) plus `GCOV_PROFILE_<obj>.o=y` on the make
command line for zsmalloc, zram and every C file the series touches — never the whole kernel.
Guest: before each test the kernel's counters are reset (debugfs gcov `reset`), after it the
.gcda files are copied back over SSH into the results dir (`coverage/<test>/...`).
Host: gcc's own gcov reads each .gcda with the objdir's .gcno (`gcov --json-format`); the
executed lines are mapped onto the lines the series adds (after the whole series), per patch,
per test. Nothing here parses .gcda by hand.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from . import proc
from .series.changed import series_changed_lines

log = logging.getLogger("zstest.coverage")

# What the suites exist for: always instrumented under --coverage.
DEFAULT_FILES = ("mm/zsmalloc.c", "drivers/block/zram/zram_drv.c", "drivers/block/zram/zcomp.c")
GCOV_DEBUGFS = "/sys/kernel/debug/gcov"
COVERAGE_DIR = "coverage"
# coverage/_boot<n>: what guest n ran while booting, before the first test reset the counters
BOOT_PREFIX = "_boot"
# The coverage map's name for those lines (not a test: every test runs after them).
BOOT = "(boot)"
GCOV_TIMEOUT_S = 120


def instrumented_files(patches: Iterable) -> list[str]:
    """The C files to instrument: zsmalloc, zram and every C file the series touches."""
    from .series_config import touched_files
    files = list(DEFAULT_FILES)
    for touched in touched_files(list(patches)):
        if touched.path.endswith(".c") and not touched.deleted and touched.path not in files:
            files.append(touched.path)
    return files


def gcov_make_vars(files: Iterable[str]) -> list[str]:
    """Kbuild's per-object switch (scripts/Makefile.lib reads GCOV_PROFILE_<basetarget>.o)."""
    names = sorted({PurePosixPath(f).stem for f in files})
    return [f"GCOV_PROFILE_{name}.o=y" for name in names]


# ---------------------------------------------------------------- in the guest

def reset_counters(guest) -> None:
    guest.run(f"echo 1 > {GCOV_DEBUGFS}/reset", timeout=30)


def collect_gcda(guest, objdir: str, dest: Path) -> list[str]:
    """Copy every .gcda the kernel offers into dest, named by its path in the objdir."""
    found = guest.run(f"find {GCOV_DEBUGFS} -name '*.gcda'", timeout=60).stdout.split()
    prefix = f"{GCOV_DEBUGFS}/{objdir.strip('/')}/"
    copied = []
    for remote in found:
        if not remote.startswith(prefix):
            continue
        rel = remote[len(prefix):]
        if ".." in PurePosixPath(rel).parts:
            continue
        local = dest / rel
        local.parent.mkdir(parents=True, exist_ok=True)
        guest.get(remote, local, timeout=60)
        copied.append(rel)
    return copied


# ---------------------------------------------------------------- on the host

@dataclass
class FileLines:
    """gcov's view of one source file: executable lines and their counts, functions."""
    path: str                                         # tree-relative
    counts: dict[int, int] = field(default_factory=dict)
    functions: dict[int, str] = field(default_factory=dict)   # line -> enclosing function
    function_lines: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> start,end


def _tree_relative(name: str, objdir: Path, srctree: Path | None) -> str:
    """A source path as gcov names it (absolute, or relative to the objdir) -> tree-relative."""
    path = name
    for base in filter(None, (str(srctree) if srctree else None, str(objdir))):
        if path.startswith(base.rstrip("/") + "/"):
            return path[len(base.rstrip("/")) + 1:]
    # ccache's CCACHE_BASEDIR hands gcc "../../worktrees/<tree>/<purpose>/mm/zsmalloc.c"
    m = re.search(r"(?:^|/)worktrees/[^/]+/[^/]+/(.+)$", path)
    if m:
        return m.group(1)
    return path.lstrip("./")


def run_gcov(objdir: Path, rel_object: str, gcda: Path, srctree: Path | None = None,
             gcno_dir: Path | None = None) -> list[FileLines]:
    """gcov's JSON for one object's .gcda with its .gcno (the build's kept copy in gcno_dir,
    else the objdir's), as FileLines per source file."""
    obj = PurePosixPath(rel_object)
    gcno = (gcno_dir or objdir) / obj.with_suffix(".gcno")
    if not gcno.is_file():
        raise FileNotFoundError(f"{gcno} is missing (was {obj.with_suffix('.o')} built with gcov?)")
    with tempfile.TemporaryDirectory(prefix="zstest-gcov-") as tmp:
        work = Path(tmp)
        shutil.copyfile(gcda, work / gcda.name)
        (work / gno_name(gcda)).symlink_to(gcno)
        res = proc.run(["gcov", "--json-format", "--stdout", "--object-directory", str(work),
                        gcda.name], cwd=str(work), timeout=GCOV_TIMEOUT_S, check=True)
        text = res.stdout
    out: list[FileLines] = []
    for chunk in _json_documents(text):
        for f in chunk.get("files", []):
            lines = FileLines(_tree_relative(f.get("file", ""), objdir, srctree))
            for fn in f.get("functions", []):
                name = fn.get("demangled_name") or fn.get("name")
                if name and fn.get("start_line"):
                    lines.function_lines[name] = (fn["start_line"], fn.get("end_line") or
                                                  fn["start_line"])
            for ln in f.get("lines", []):
                number = ln.get("line_number")
                if number is None:
                    continue
                lines.counts[number] = lines.counts.get(number, 0) + int(ln.get("count", 0))
                if ln.get("function_name"):
                    lines.functions[number] = ln["function_name"]
            out.append(lines)
    return out


def gno_name(gcda: Path) -> str:
    return gcda.with_suffix(".gcno").name


def _json_documents(text: str) -> list[dict[str, Any]]:
    """gcov --stdout prints one JSON document per input file, one per line."""
    docs = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                docs.append(json.loads(line))
            except ValueError:
                continue
    return docs


def read_gcov_json_gz(path: Path) -> list[dict[str, Any]]:
    """A recorded `gcov --json-format` output (.gcov.json.gz), for tests and old gcovs."""
    with gzip.open(path, "rt") as fh:
        return _json_documents(fh.read())


# ---------------------------------------------------------------- mapping onto the series

def changed_lines(patches: Iterable) -> dict[str, list[list[int]]]:
    """C file -> [[line after the whole series, patch index]] of every line the series adds."""
    texts = []
    for patch in patches:
        raw = getattr(patch, "raw", b"") or b""
        texts.append(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw))
    found = series_changed_lines(texts)
    index_of = [p.index for p in patches]
    return {f: [[line, index_of[n - 1]] for line, n in pairs] for f, pairs in found.items()
            if f.endswith(".c")}


def _ranges(lines: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for n in sorted(lines):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def _function_at(file_lines: "FileLines | None", line: int) -> str:
    if file_lines is None:
        return ""
    if line in file_lines.functions:
        return file_lines.functions[line]
    for name, (start, end) in file_lines.function_lines.items():
        if start <= line <= end:
            return name
    return ""


@dataclass
class Collected:
    """gcov's reading of a run: per test, per instrumented file, that test's own counts."""
    per_test: dict[str, dict[str, FileLines]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def collect(results_dir: Path, tests: list, build: dict[str, Any],
            build_dir: Path | None = None) -> Collected:
    """Every test's .gcda read by gcov (a --repeat's runs summed), for the files instrumented."""
    objdir = Path(build.get("objdir") or "")
    kept = (build.get("coverage") or {}).get("gcno_dir")
    gcno_dir = Path(build_dir) / kept if build_dir and kept else None
    worktree = (build.get("kernel") or {}).get("worktree")
    srctree = Path(worktree) if worktree else None
    wanted = set((build.get("coverage") or {}).get("files") or DEFAULT_FILES)
    out = Collected()
    boot_dirs = sorted(p.relative_to(results_dir) for p in
                       (Path(results_dir) / COVERAGE_DIR).glob(BOOT_PREFIX + "*") if p.is_dir())
    sources = [(t.name, (t.coverage or {}).get("gcda") or []) for t in tests]
    for name, dirs in sources + [(BOOT, [str(d) for d in boot_dirs])] * bool(boot_dirs):
        for rel_dir in dirs:
            base = Path(results_dir) / rel_dir
            for gcda in sorted(base.rglob("*.gcda")):
                rel_obj = str(gcda.relative_to(base).with_suffix(".o"))
                try:
                    files = run_gcov(objdir, rel_obj, gcda, srctree, gcno_dir)
                except (FileNotFoundError, proc.CommandError, OSError) as exc:
                    out.notes.append(f"{name}: {rel_obj}: {exc}")
                    continue
                for fl in files:
                    if fl.path not in wanted:
                        continue      # inlined headers: counted where they are defined
                    mine = out.per_test.setdefault(name, {})
                    if fl.path not in mine:
                        mine[fl.path] = fl
                        continue
                    for n, c in fl.counts.items():
                        mine[fl.path].counts[n] = mine[fl.path].counts.get(n, 0) + c
    return out


def analyze(results_dir: Path, tests: list, build: dict[str, Any],
            build_dir: Path | None = None, collected: Collected | None = None) -> dict[str, Any]:
    """Per test and per file: executable and executed lines (gcov); per patch: the changed
    lines executed, by which tests, and the ones no test reached (file:line in function)."""
    if collected is None:
        collected = collect(results_dir, tests, build, build_dir)
    # file -> line -> the tests that ran it; the union of executable lines; function names
    executable: dict[str, set[int]] = {}
    executed_by: dict[str, dict[int, list[str]]] = {}
    shape: dict[str, FileLines] = {}
    notes = collected.notes
    per_test: dict[str, dict[str, int]] = {}
    for name, files in collected.per_test.items():
        if name == BOOT:
            continue      # per test and per patch: what the tests ran, as before the map
        for fl in files.values():
            shape.setdefault(fl.path, fl)
            executable.setdefault(fl.path, set()).update(fl.counts)
            ran = [n for n, c in fl.counts.items() if c > 0]
            per_test.setdefault(name, {})[fl.path] = len(ran)
            for n in ran:
                by = executed_by.setdefault(fl.path, {}).setdefault(n, [])
                if name not in by:
                    by.append(name)
    files_out = {}
    for path in sorted(executable):
        ran = executed_by.get(path, {})
        functions: dict[str, list[int]] = {}
        for n in executable[path]:
            name = _function_at(shape.get(path), n) or "?"
            entry = functions.setdefault(name, [0, 0])
            entry[1] += 1
            entry[0] += 1 if n in ran else 0
        files_out[path] = {"lines": len(executable[path]), "executed": len(ran),
                           "functions": {k: {"executed": v[0], "lines": v[1]}
                                         for k, v in sorted(functions.items())}}
    patches_out = []
    subjects = {p.get("index"): p.get("subject", "")
                for p in ((build.get("series") or {}).get("patches") or [])}
    changed = (build.get("coverage") or {}).get("changed_lines") or {}
    by_patch: dict[int, list[tuple[str, int]]] = {}
    for path, pairs in changed.items():
        for line, index in pairs:
            by_patch.setdefault(index, []).append((path, line))
    for index in sorted(by_patch):
        lines = by_patch[index]
        measurable = [(f, n) for f, n in lines if n in executable.get(f, set())]
        ran = [(f, n) for f, n in measurable if n in executed_by.get(f, {})]
        tests_for = sorted({t for f, n in ran for t in executed_by[f][n]})
        missed: dict[str, list[int]] = {}
        for f, n in measurable:
            if (f, n) not in ran:
                missed.setdefault(f, []).append(n)
        not_executed = []
        for f, nums in missed.items():
            for a, b in _ranges(nums):
                where = f"{f}:{a}" + (f"-{b}" if b != a else "")
                fn = _function_at(shape.get(f), a)
                not_executed.append(where + (f" in {fn}" if fn else ""))
        uninstrumented = sorted({f for f, _ in lines if f not in executable})
        patches_out.append({"index": index, "subject": subjects.get(index, ""),
                            "changed": len(lines), "executable": len(measurable),
                            "executed": len(ran), "tests": tests_for,
                            "not_executed": not_executed,
                            "not_measured": uninstrumented})
    return {"files": files_out, "patches": patches_out, "tests": per_test, "notes": notes[:20]}


def summary_lines(coverage: dict[str, Any]) -> list[str]:
    """summary.txt's coverage section: per patch, then per file."""
    out = ["coverage (gcov):"]
    total = len((coverage.get("patches") or []))
    for p in coverage.get("patches") or []:
        if not p["executable"]:
            out.append(f"  patch {p['index']}: none of its {p['changed']} added lines is one "
                       f"gcov counts (declarations, comments, continuation lines)" +
                       (f"; not instrumented: {', '.join(p['not_measured'])}"
                        if p.get("not_measured") else ""))
            continue
        line = (f"  patch {p['index']}: {p['executed']}/{p['executable']} changed lines "
                f"executed")
        if p.get("tests"):
            line += f" (by {', '.join(t.split('::')[-1] for t in p['tests'][:3])}"
            line += ", ...)" if len(p["tests"]) > 3 else ")"
        if p.get("not_executed"):
            line += f"; not executed: {', '.join(p['not_executed'][:4])}"
            line += " ..." if len(p["not_executed"]) > 4 else ""
        if p.get("not_measured"):
            line += f"; not instrumented: {', '.join(p['not_measured'])}"
        out.append(line)
    if not total:
        out.append("  (no series: whole-file coverage only)")
    for path, f in (coverage.get("files") or {}).items():
        pct = 100.0 * f["executed"] / f["lines"] if f["lines"] else 0.0
        out.append(f"  {path}: {f['executed']}/{f['lines']} lines ({pct:.0f}%)")
    if coverage.get("map"):
        out.append(f"  per-test map kept for --affected and mutate: {coverage['map']}")
    return out
