"""Every JSON artifact zstest writes and reads: build.json, results.json, bisect.json, cell.json,
apply.json, mutate.json, perf.json, b4check.json, coverage maps and KCIDB documents.

One module owns them: for each manifest one load (the file's shape checked: wrong shape, not
JSON or not UTF-8 is BadInput, exit 2, one sentence naming the file and the first bad field)
and one atomic save (tmp + os.replace, `schema` stamped). No other module opens these files.

Artifacts travel between CI runners and people, so they are untrusted input; and files from a
newer zstest may carry keys this one does not know. Hence each loaded manifest is a frozen
dataclass with typed fields for what zstest's readers use, plus `data`: the file as read, every
key kept. A reader that rewrites a manifest (decode adding `decoded` to splats) edits `data` and
saves it whole. Writers (build.py, results.py, bisect.py, matrix.py, tree.py, mutate/run.py,
perf/render.py, b4check, affected.py) hand their dict to save_*. A file without `schema` is
version 1.

build.json (a build directory; written by build.py from the first second):
  status (running / ok / failed / interrupted), duration_s, durations {stage: s}, error,
  kernel {tree, base, version, worktree, git_dir, keep_ref, notes[]},
  series {source, revision, kind, cover_subject, total, applied_prefix,
          patches [{index, subject, apply, build, new_warnings[], commit, errors[], ...}]} | null,
  config {profiles, fragments, start, missing_options, ignored_optional, requested},
  artifacts {bzImage, vmlinux, System.map, config, modules, kmod {source, modules[], warnings[]},
             selftests} (relative to the build dir), warnings, errors, ccache, toolchain,
  make_args, reproducer (the command that made it: `zstest build ...` or `zstest run ...`),
  bootable (a kernel was produced — also when `--each` found a middle patch that does not
  build; status is then `failed`), objdir, build_dir, each.
  kernel.git_dir + series.patches[].commit: the cached repo and the commit of each applied
  patch (a ref refs/zstest/builds/<name> keeps them alive); series.total +
  series.applied_prefix: --prefix; artifacts.selftests: the zram selftests as the series left
  them (the build dir travels to a CI runner without the tree).

results.json (a results directory; written by results.py through the runner):
  status (passed / failed / error / interrupted), exit_code, duration_s, suite, started,
  accel {name, reason}, boot_to_ssh_s, kernel {uname, version, build_dir, arch (the arch
  record's name), page_size (bytes)}, image,
  vm {ssh_port, timings, ssh_reconnects, boots [{n, reason, ended, boot_to_ssh_s}]},
  tests: [{name, status (passed / failed / skipped / error / interrupted), duration_s,
  metrics {before, after}, splats, message, log, runs, passes, details}], splats (not tied to
  any test), counts, message, cause (kernel / test / infrastructure / interrupted, "" when
  passed), kernel_crashed, not_run (tests left by --stop-on-oops or a fresh guest that did not
  boot), verdict_after_splat_s (first fatal report -> final results.json), repeat,
  console_log, command (the zstest command line that made it, as words: `zstest boot-and-run
  ...` or `zstest run ...` as typed, with the values a config file supplied made explicit; a
  run made by bisect, compare or mutate: the equivalent `zstest boot-and-run` line).
  A splat entry is {kind, title, text, line_no (a line of console.log), t, wall, fatal}; every
  one gains `decoded` once the run ended: {kind, title, build_dir, commit, notes[], frames[],
  patches[]}; a frame is {kind: bug|rip|trace, text, function, offset, size, module, reliable,
  address, file, line, source: bug-table|debuginfo|definition|null, inline_function,
  inlined[], note}; a patch is {index, subject, how: line|function, frame, function, location}.

bisect.json (zstest bisect's dir): series, revision, total, strategy, steps [{prefix, subject,
  verdict good/bad/skip, reason, build_dir, results_dir, failed_tests, splats, duration_s}],
  first_bad, candidates, message, exit_code; while running {series, total, finished: false,
  steps}.

perf.json (`zstest compare --perf`'s out dir; written by perf/render.py): summary, exit_code,
  accel, arch, thresholds {p, min_change_pct, exact_change_pct, min_runs}, setup (runs,
  warmup, order, host_cpus, suite), a/b {path, runs [{results_dir, status}]}, failed_runs,
  metrics [{name, unit, better, exact, test, verdict, values_a, values_b, n_a, n_b, mean_a,
  mean_b, sd_a, sd_b, change_pct, ci_pct [low, high], p, identical_a, identical_b, notes,
  plot}].

cell.json (build dir and results dir of a matrix cell): {name, series, config, tree, suite,
  arch}; `zstest compare --merge` labels its columns with name.

apply.json (`zstest series apply --out DIR`, and a build dir; written by tree.py at the start
  and after every patch): status (running / ok / failed / interrupted), duration_s,
  kernel {tree, kind, base}, worktree {path, purpose, git_dir, notes}, problems [],
  series {source, revision, kind, total, cover_subject, missing, ..., base_used, base_from,
  base_note}, patches [{index, subject, status applied / applied-3way / failed, commit,
  failed_files [], failed_hunks [], message (git's), duration_s}].

mutate.json (`zstest mutate`'s out dir; rewritten by mutate/run.py after every mutant, read
  back to resume): status (running / finished / partial / interrupted), duration_s (over every
  run of the dir), message, request {series, revision, kernel, file, functions, suite, keyword,
  operators, configs, budget_min, max, guided}, baseline {key, verdict, exit_code, build_s,
  run_s, build_dir, results_dir, map, tests []} | null, mutants [{id, file, line, end_line,
  function, operator, original, mutated, diff, patch, patch_subject, verdict killed / survived
  / timeout / build_failed / not_covered | null, test, why, build_s, run_s, duration_s,
  build_dir, results_dir, covered, tests_run [], runs [{kind, results_dir, run_s, exit_code,
  tests []}], guided {...} | null}], summary. A schema other than this zstest's is refused.
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import BadInput
from .fsutil import write_text_atomic

BUILD_JSON = "build.json"
RESULTS_JSON = "results.json"
BISECT_JSON = "bisect.json"
CELL_JSON = "cell.json"
PERF_JSON = "perf.json"
APPLY_JSON = "apply.json"
MUTATE_JSON = "mutate.json"
# No manifest is near this (the largest, a coverage map, ~2 MB): more is not zstest's to read.
MAX_MANIFEST_BYTES = 64 << 20
# The version each save writes; a file without one is version 1.
BUILD_SCHEMA = 1
RESULTS_SCHEMA = 1
BISECT_SCHEMA = 1
CELL_SCHEMA = 1
PERF_SCHEMA = 1
APPLY_SCHEMA = 1
MUTATE_SCHEMA = 1


# ---------------------------------------------------------------- reading and shape

class _WrongShape(Exception):
    def __init__(self, where: str, value: Any, expected: str):
        super().__init__(where)
        self.where, self.value, self.expected = where, value, expected


_JSON_KIND = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
              int: "a number", float: "a number", type(None): "null"}
_KINDS = {str: "a string", int: "a number", float: "a number", bool: "a boolean",
          dict: "an object", list: "an array"}


def _take(obj: dict, key: str, kinds: tuple, where: str = "", default: Any = None) -> Any:
    """obj[key] when it is one of kinds (or missing / null: default); _WrongShape otherwise."""
    value = obj.get(key)
    if value is None:
        return default
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
        return value
    expected = " or ".join(dict.fromkeys(_KINDS[k] for k in kinds))
    raise _WrongShape(f"{where}{key}", value, expected)


def _obj(obj: dict, key: str, where: str = "") -> dict:
    return _take(obj, key, (dict,), where, {})


def _objects(obj: dict, key: str, where: str = "") -> list:
    """A list of objects (tests, splats, patches): the first entry that is not one is named."""
    items = _take(obj, key, (list,), where, [])
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _WrongShape(f"{where}{key}[{i}]", item, "an object")
    return items


def now_iso() -> str:
    """The UTC time a manifest records (results.json's `started`, a coverage map's `created`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _read(path: Path, what: str) -> dict:
    """The JSON object in path; BadInput (one sentence naming the file) otherwise. A device or
    a FIFO is refused unread (never waited on), a file over MAX_MANIFEST_BYTES unparsed."""
    try:
        # O_NONBLOCK: a FIFO named on the command line must not wait for a writer
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise BadInput(f"{path} is not a regular file: it is not a zstest {what}.")
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}.") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BadInput(f"{path} holds more than {MAX_MANIFEST_BYTES >> 20} MiB: it is not a "
                       f"zstest {what}.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} is not UTF-8 text (byte {exc.start}): it is not a zstest "
                       f"{what}.") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:     # RecursionError: [[[[...]]]] nested deep
        raise BadInput(f"{path} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} is not a zstest {what} ({_JSON_KIND.get(type(data), 'a value')}, "
                       f"not an object).")
    return data


def _parse(path: Path, what: str, make) -> Any:
    data = _read(path, what)
    try:
        schema = _take(data, "schema", (int,), default=1)
        return make(path, data, schema)
    except _WrongShape as exc:
        got = _JSON_KIND.get(type(exc.value), "a value")
        raise BadInput(f"{path} is not in the shape zstest writes: {exc.where} is {got}, "
                       f"not {exc.expected}.") from None


def _save(path: Path, name: str, schema: int, data: dict, **dump: Any) -> Path:
    body = {"schema": data.get("schema", schema), **data}
    return write_text_atomic(path, json.dumps(body, indent=2, default=str, **dump) + "\n")


def _file(path: "str | Path", name: str) -> Path:
    """A manifest's path from its directory or from the file itself."""
    path = Path(path)
    return path if path.is_file() else path / name


def _load(path: "str | Path", name: str, make, missing: str) -> Any:
    """Manifest `name` of a directory (or the file itself named), made by make(path, data,
    schema); BadInput "<directory> <missing>" when there is none, or naming what is wrong."""
    path = _file(path, name)
    if not path.is_file():      # a FIFO or a device under the name is not the manifest either
        raise BadInput(f"{path.parent} {missing}")
    return _parse(path, name, make)


def read_object(path: "str | Path") -> dict:
    """Any zstest JSON artifact whose kind is not known yet (a file named on the command line):
    its object, for telling a results.json from a build.json; BadInput otherwise."""
    return _read(Path(path), "results.json or build.json")


# ---------------------------------------------------------------- build.json

@dataclass(frozen=True)
class BuildKernel:
    tree: Optional[str] = None
    base: Optional[str] = None       # untrusted: check with tree.is_object_id before git sees it
    version: Optional[str] = None
    worktree: Optional[str] = None
    git_dir: Optional[str] = None    # untrusted: check with gitsafe.cache_git_dir
    keep_ref: Optional[str] = None


@dataclass(frozen=True)
class PatchRecord:
    index: int
    subject: str = ""
    apply: Optional[str] = None      # applied / applied-3way / failed / None (not reached)
    build: Optional[str] = None      # ok / failed / None (not built on its own)
    new_warnings: list = field(default_factory=list)
    commit: Optional[str] = None     # untrusted: check with tree.is_object_id
    errors: list = field(default_factory=list)
    apply_message: str = ""


@dataclass(frozen=True)
class BuildSeries:
    source: Optional[str] = None
    revision: Optional[str] = None
    cover_subject: Optional[str] = None
    total: Optional[int] = None
    applied_prefix: Optional[int] = None
    patches: list = field(default_factory=list)   # [PatchRecord]


@dataclass(frozen=True)
class BuildConfig:
    profiles: list = field(default_factory=list)
    fragments: list = field(default_factory=list)
    missing_options: list = field(default_factory=list)


@dataclass(frozen=True)
class BuildToolchain:
    """Which compiler built it: the record's name, its command and CONFIG_CC_VERSION_TEXT of the
    built .config (None in a build.json from before toolchains: the host's gcc line then)."""
    name: Optional[str] = None
    cc: Optional[str] = None
    version: Optional[str] = None


@dataclass(frozen=True)
class Artifacts:
    """File names relative to the build dir (None: not produced)."""
    bzimage: Optional[str] = None
    vmlinux: Optional[str] = None
    system_map: Optional[str] = None
    config: Optional[str] = None
    modules: Optional[str] = None
    selftests: Optional[str] = None
    objects: Optional[str] = None    # symbol -> object map of vmlinux, as built (objects.map.gz)
    kmod: dict = field(default_factory=dict)     # {source, modules[], warnings[]}; {} without one
    kmod_modules: list = field(default_factory=list)   # the .ko names (older files: a name or a list)


@dataclass(frozen=True)
class BuildManifest:
    path: Path                       # the build.json read
    data: dict                       # the file as read, every key kept
    schema: int = BUILD_SCHEMA
    status: Optional[str] = None
    bootable: bool = False
    duration_s: Optional[float] = None
    error: str = ""
    reproducer: str = ""
    objdir: Optional[str] = None
    kernel: BuildKernel = BuildKernel()
    series: Optional[BuildSeries] = None
    config: BuildConfig = BuildConfig()
    artifacts: Artifacts = Artifacts()
    arch: str = "x86_64"             # an arch record's name (checked: a known one)
    page_size: int = 4096            # bytes
    toolchain: BuildToolchain = BuildToolchain()

    @property
    def build_dir(self) -> Path:
        return self.path.parent

    def artifact(self, name: Optional[str], default: Optional[str] = None) -> Optional[Path]:
        """An artifact's path (relative names are inside the build dir); None when absent."""
        name = name or default
        if not name:
            return None
        path = Path(name)
        return path if path.is_absolute() else self.build_dir / path

    @property
    def patches(self) -> list:
        return self.series.patches if self.series is not None else []


def _build_from(path: Path, d: dict, schema: int) -> BuildManifest:
    k = _obj(d, "kernel")
    kernel = BuildKernel(**{key: _take(k, key, (str,), "kernel.") for key in
                            ("tree", "base", "version", "worktree", "git_dir", "keep_ref")})
    series = None
    if _take(d, "series", (dict,)) is not None:
        s = d["series"]
        patches = []
        for i, p in enumerate(_objects(s, "patches", "series.")):
            at = f"series.patches[{i}]."
            patches.append(PatchRecord(
                index=_take(p, "index", (int,), at, i + 1),
                subject=_take(p, "subject", (str,), at, ""),
                apply=_take(p, "apply", (str,), at), build=_take(p, "build", (str,), at),
                new_warnings=_take(p, "new_warnings", (list,), at, []),
                commit=_take(p, "commit", (str,), at),
                errors=_take(p, "errors", (list,), at, []),
                apply_message=_take(p, "apply_message", (str,), at, "")))
        revision = _take(s, "revision", (str, int), "series.")
        series = BuildSeries(source=_take(s, "source", (str,), "series."),
                             revision=None if revision is None else str(revision),
                             cover_subject=_take(s, "cover_subject", (str,), "series."),
                             total=_take(s, "total", (int,), "series."),
                             applied_prefix=_take(s, "applied_prefix", (int,), "series."),
                             patches=patches)
    c = _obj(d, "config")
    config = BuildConfig(profiles=_take(c, "profiles", (list,), "config.", []),
                         fragments=_take(c, "fragments", (list,), "config.", []),
                         missing_options=_take(c, "missing_options", (list,), "config.", []))
    a = _obj(d, "artifacts")
    kmod = _take(a, "kmod", (dict, str, list), "artifacts.")
    kmod_modules = _take(kmod, "modules", (list,), "artifacts.kmod.", []) \
        if isinstance(kmod, dict) else [kmod] if isinstance(kmod, str) else kmod or []
    if not all(isinstance(name, str) for name in kmod_modules):
        raise _WrongShape("artifacts.kmod.modules", kmod_modules, "an array of names")
    artifacts = Artifacts(**{attr: _take(a, key, (str,), "artifacts.") for attr, key in
                             (("bzimage", "bzImage"), ("vmlinux", "vmlinux"),
                              ("system_map", "System.map"), ("config", "config"),
                              ("modules", "modules"), ("selftests", "selftests"),
                              ("objects", "objects"))},
                          kmod=kmod if isinstance(kmod, dict) else {},
                          kmod_modules=kmod_modules)
    ar = _obj(d, "arch")
    arch = _take(ar, "name", (str,), "arch.", "x86_64")
    from .arch import known_arches
    if arch not in known_arches():
        raise _WrongShape("arch.name", arch, f"one of {', '.join(known_arches())}")
    page_size = _take(ar, "page_size", (int,), "arch.", 4096)
    if page_size <= 0 or page_size & (page_size - 1):
        raise _WrongShape("arch.page_size", page_size, "a power of two")
    t = _obj(d, "toolchain")
    toolchain = BuildToolchain(name=_take(t, "name", (str,), "toolchain."),
                               cc=_take(t, "cc", (str,), "toolchain."),
                               version=_take(t, "version", (str,), "toolchain.",
                                             _take(t, "gcc", (str,), "toolchain.")))
    return BuildManifest(path=path, data=d, schema=schema, arch=arch, page_size=page_size,
                         toolchain=toolchain,
                         status=_take(d, "status", (str,)),
                         bootable=_take(d, "bootable", (bool,), default=False),
                         duration_s=_take(d, "duration_s", (float,)),
                         error=_take(d, "error", (str,), default=""),
                         reproducer=_take(d, "reproducer", (str,), default=""),
                         objdir=_take(d, "objdir", (str,)),
                         kernel=kernel, series=series, config=config, artifacts=artifacts)


def has_build(build_dir: "str | Path") -> bool:
    return (Path(build_dir) / BUILD_JSON).is_file()


def load_build(path: "str | Path") -> BuildManifest:
    """build.json of a build dir (or the file itself); BadInput when missing or misshapen."""
    return _load(path, BUILD_JSON, _build_from,
                 f"is not a zstest build directory (no {BUILD_JSON}).")


def save_build(build_dir: "str | Path", data: dict) -> Path:
    return _save(Path(build_dir) / BUILD_JSON, BUILD_JSON, BUILD_SCHEMA, data)


# ---------------------------------------------------------------- results.json

@dataclass(frozen=True)
class RunKernel:
    uname: Optional[str] = None
    version: Optional[str] = None
    build_dir: Optional[str] = None      # where the build was when it ran
    arch: Optional[str] = None           # the arch record's name (None: an older file)
    page_size: Optional[int] = None      # bytes


@dataclass(frozen=True)
class Accel:
    name: Optional[str] = None
    reason: str = ""


@dataclass(frozen=True)
class ResultsManifest:
    path: Path                           # the results.json read
    data: dict                           # the file as read, every key kept
    schema: int = RESULTS_SCHEMA
    status: Optional[str] = None
    exit_code: Optional[int] = None
    duration_s: Optional[float] = None
    boot_to_ssh_s: Optional[float] = None
    suite: Optional[str] = None
    message: str = ""
    console_log: str = "console.log"
    kernel: RunKernel = RunKernel()
    accel: Accel = Accel()
    image: dict = field(default_factory=dict)
    tests: list = field(default_factory=list)    # test objects; every one has a text name
    splats: list = field(default_factory=list)   # splat objects not tied to a test
    command: list = field(default_factory=list)  # the zstest command line (words), or []

    @property
    def results_dir(self) -> Path:
        return self.path.parent

    @property
    def has_tests(self) -> bool:
        """The file holds a tests list (a results.json, not some other JSON object)."""
        return isinstance(self.data.get("tests"), list)

    @property
    def build_dir(self) -> Optional[Path]:
        return Path(self.kernel.build_dir) if self.kernel.build_dir else None


def _results_from(path: Path, d: dict, schema: int) -> ResultsManifest:
    tests = _objects(d, "tests")
    for i, t in enumerate(tests):
        at = f"tests[{i}]."
        _take(t, "name", (str,), at)
        _take(t, "status", (str,), at)
        _take(t, "message", (str,), at)
        _splat_shapes(t, at)
        _obj(t, "metrics", at)
        _obj(t, "details", at)
        _words(t, "runs", at)
        if _take(t, "passes", (int,), at, 0) < 0:
            raise _WrongShape(f"{at}passes", t["passes"], "a count of runs")
    _splat_shapes(d, "")
    for key in ("vm", "counts"):
        _obj(d, key)
    k, a = _obj(d, "kernel"), _obj(d, "accel")
    return ResultsManifest(
        path=path, data=d, schema=schema,
        status=_take(d, "status", (str,)),
        exit_code=_take(d, "exit_code", (int,)),
        duration_s=_take(d, "duration_s", (float,)),
        boot_to_ssh_s=_take(d, "boot_to_ssh_s", (float,)),
        suite=_take(d, "suite", (str,)),
        message=_take(d, "message", (str,), default=""),
        console_log=_take(d, "console_log", (str,), default="console.log"),
        kernel=RunKernel(uname=_take(k, "uname", (str,), "kernel."),
                         version=_take(k, "version", (str,), "kernel."),
                         build_dir=_take(k, "build_dir", (str,), "kernel."),
                         arch=_take(k, "arch", (str,), "kernel."),
                         page_size=_take(k, "page_size", (int,), "kernel.")),
        accel=Accel(name=_take(a, "name", (str,), "accel."),
                    reason=_take(a, "reason", (str,), "accel.", "")),
        image=_obj(d, "image"), tests=tests, splats=_objects(d, "splats"),
        command=_words(d, "command"))


def _words(obj: dict, key: str, where: str = "") -> list:
    """A list of strings (a command line's words): the first entry that is not one is named."""
    items = _take(obj, key, (list,), where, default=[])
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise _WrongShape(f"{where}{key}[{i}]", item, "a string")
    return items


def _splat_shapes(obj: dict, where: str) -> list:
    """obj's splats: objects whose kind, title and text are strings (readers print them)."""
    splats = _objects(obj, "splats", where)
    for i, splat in enumerate(splats):
        for key in ("kind", "title", "text"):
            _take(splat, key, (str,), f"{where}splats[{i}].")
    return splats


def has_results(results_dir: "str | Path") -> bool:
    return (Path(results_dir) / RESULTS_JSON).is_file()


def load_results(path: "str | Path") -> ResultsManifest:
    """results.json of a results dir (or the file itself); BadInput when missing or misshapen."""
    return _load(path, RESULTS_JSON, _results_from,
                 f"holds no {RESULTS_JSON}: give a results directory.")


def build_of_results(results: ResultsManifest) -> Optional[BuildManifest]:
    """The build a run booted, while its build.json is still there and readable; else None
    (a build dir removed or rewritten since the run: readers go on without it)."""
    build_dir = results.build_dir
    if build_dir is None or not has_build(build_dir):
        return None
    try:
        return load_build(build_dir)
    except BadInput:
        return None


def save_results(results_dir: "str | Path", data: dict) -> Path:
    return _save(Path(results_dir) / RESULTS_JSON, RESULTS_JSON, RESULTS_SCHEMA, data)


def find_results(root: Path) -> list:
    """Results dirs at root or any depth below (a CI artifact download tree); hidden dirs
    (.vm) are QEMU's."""
    if has_results(root):
        return [root]
    return sorted(p.parent for p in root.rglob(RESULTS_JSON)
                  if not any(part.startswith(".") for part in p.relative_to(root).parts[:-1]))


# ---------------------------------------------------------------- bisect.json

@dataclass(frozen=True)
class BisectManifest:
    path: Path
    data: dict
    schema: int = BISECT_SCHEMA
    finished: bool = True
    steps: list = field(default_factory=list)


def _bisect_from(path: Path, d: dict, schema: int) -> BisectManifest:
    return BisectManifest(path=path, data=d, schema=schema,
                          finished=_take(d, "finished", (bool,), default=True),
                          steps=_objects(d, "steps"))


def load_bisect(path: "str | Path") -> BisectManifest:
    return _load(path, BISECT_JSON, _bisect_from,
                 f"is not a zstest bisect directory (no {BISECT_JSON}).")


def save_bisect(out: "str | Path", data: dict) -> Path:
    return _save(Path(out) / BISECT_JSON, BISECT_JSON, BISECT_SCHEMA, data)


# ---------------------------------------------------------------- cell.json

CELL_KEYS = ("name", "series", "config", "tree", "suite", "arch")


@dataclass(frozen=True)
class CellManifest:
    path: Path
    data: dict
    schema: int = CELL_SCHEMA
    name: Optional[str] = None
    series: str = ""
    config: str = ""
    tree: str = ""
    suite: str = ""
    arch: str = ""                   # "" (x86_64), "arm64", "arm64:64k"


def _cell_from(path: Path, d: dict, schema: int) -> CellManifest:
    return CellManifest(path=path, data=d, schema=schema,
                        **{k: _take(d, k, (str,), default=None if k == "name" else "")
                           for k in CELL_KEYS})


def cell_entry(text_or_file: str) -> "tuple[dict, str]":
    """`--cell`'s job entry as written (JSON text, or a file holding one: a cell.json, or a
    one-entry job list as `zstest matrix --format json` prints) and where it came from;
    matrix.load_cell checks its keys and fills the defaults. BadInput naming where otherwise."""
    text = text_or_file.strip()
    where = "--cell"
    if not text.startswith(("{", "[")):
        path = Path(text_or_file)
        if not path.is_file():
            raise BadInput(f"--cell {text_or_file!r} is neither a JSON object nor a file.")
        where = str(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(f"--cell {path} is not a readable UTF-8 JSON file "
                           f"({exc.__class__.__name__}).") from None
    try:
        entry = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"{where} is not valid JSON ({exc}).") from None
    if isinstance(entry, list) and len(entry) == 1:
        entry = entry[0]
    if not isinstance(entry, dict):
        raise BadInput(f"{where} must be one JSON object (a job entry), not "
                       f"{_JSON_KIND.get(type(entry), 'a value')}.")
    return entry, where


def has_cell(directory: "str | Path") -> bool:
    return (Path(directory) / CELL_JSON).is_file()


def load_cell(path: "str | Path") -> CellManifest:
    return _load(path, CELL_JSON, _cell_from, f"holds no {CELL_JSON}.")


def save_cell(directory: "str | Path", cell: dict) -> Path:
    return _save(Path(directory) / CELL_JSON, CELL_JSON, CELL_SCHEMA, cell, sort_keys=True)


# ---------------------------------------------------------------- apply.json

@dataclass(frozen=True)
class AppliedPatch:
    index: int
    subject: str = ""
    status: str = ""                 # applied / applied-3way / failed
    commit: Optional[str] = None     # untrusted: check with tree.is_object_id
    failed_files: list = field(default_factory=list)
    failed_hunks: list = field(default_factory=list)
    message: str = ""
    duration_s: Optional[float] = None


@dataclass(frozen=True)
class ApplyManifest:
    path: Path
    data: dict
    schema: int = APPLY_SCHEMA
    status: Optional[str] = None
    duration_s: Optional[float] = None
    tree: Optional[str] = None
    base: Optional[str] = None       # untrusted: check with tree.is_object_id
    worktree: Optional[str] = None   # the scratch worktree the patches were applied in
    problems: list = field(default_factory=list)
    patches: list = field(default_factory=list)   # [AppliedPatch]


def _apply_from(path: Path, d: dict, schema: int) -> ApplyManifest:
    patches = []
    for i, p in enumerate(_objects(d, "patches")):
        at = f"patches[{i}]."
        patches.append(AppliedPatch(
            index=_take(p, "index", (int,), at, i + 1), subject=_take(p, "subject", (str,), at, ""),
            status=_take(p, "status", (str,), at, ""), commit=_take(p, "commit", (str,), at),
            failed_files=_words(p, "failed_files", at), failed_hunks=_words(p, "failed_hunks", at),
            message=_take(p, "message", (str,), at, ""),
            duration_s=_take(p, "duration_s", (float,), at)))
    k, w = _obj(d, "kernel"), _obj(d, "worktree")
    _obj(d, "series")
    return ApplyManifest(path=path, data=d, schema=schema, status=_take(d, "status", (str,)),
                         duration_s=_take(d, "duration_s", (float,)),
                         tree=_take(k, "tree", (str,), "kernel."),
                         base=_take(k, "base", (str,), "kernel."),
                         worktree=_take(w, "path", (str,), "worktree."),
                         problems=_words(d, "problems"), patches=patches)


def load_apply(path: "str | Path") -> ApplyManifest:
    """apply.json of a `series apply --out` dir or a build dir (or the file itself)."""
    return _load(path, APPLY_JSON, _apply_from, f"holds no {APPLY_JSON}.")


def save_apply(out: "str | Path", data: dict) -> Path:
    return _save(Path(out) / APPLY_JSON, APPLY_JSON, APPLY_SCHEMA, data)


# ---------------------------------------------------------------- mutate.json

@dataclass(frozen=True)
class MutateManifest:
    path: Path
    data: dict                       # the file as read; the mutator updates and saves it whole
    schema: int = MUTATE_SCHEMA
    status: Optional[str] = None
    duration_s: float = 0.0
    mutants: list = field(default_factory=list)   # records, each with a text id
    baseline: Optional[dict] = None


def _mutate_from(path: Path, d: dict, schema: int) -> MutateManifest:
    if schema != MUTATE_SCHEMA:     # a resumed run reuses every record: only its own format
        raise BadInput(f"{path} is a mutate.json of schema {schema}; this zstest reads and "
                       f"writes {MUTATE_SCHEMA}: remove it or pick another --out.")
    mutants = _objects(d, "mutants")
    for i, m in enumerate(mutants):
        at = f"mutants[{i}]."
        if _take(m, "id", (str,), at) is None:
            raise _WrongShape(f"{at}id", None, "a string")
        for key in ("verdict", "file", "function", "operator", "why", "test"):
            _take(m, key, (str,), at)
        _objects(m, "runs", at)
        _take(m, "tests_run", (list,), at)
    baseline = _take(d, "baseline", (dict,))
    if baseline is not None:
        for key in ("key", "verdict", "map", "results_dir", "build_dir"):
            _take(baseline, key, (str,), "baseline.")
        _take(baseline, "run_s", (float,), "baseline.")
        _words(baseline, "tests", "baseline.")
    return MutateManifest(path=path, data=d, schema=schema, status=_take(d, "status", (str,)),
                          duration_s=_take(d, "duration_s", (float,), default=0.0),
                          mutants=mutants, baseline=baseline)


def load_mutate(path: "str | Path") -> MutateManifest:
    """mutate.json of a `zstest mutate` out dir (or the file itself)."""
    return _load(path, MUTATE_JSON, _mutate_from,
                 f"is not a zstest mutate directory (no {MUTATE_JSON}).")


def save_mutate(out: "str | Path", data: dict) -> Path:
    return _save(Path(out) / MUTATE_JSON, MUTATE_JSON, MUTATE_SCHEMA, data)


# ---------------------------------------------------------------- perf.json

def save_perf(out: "str | Path", data: dict) -> Path:
    return _save(Path(out) / PERF_JSON, PERF_JSON, PERF_SCHEMA, data)


def manifest_name(area: str) -> str:
    """The manifest a cache area's entries hold (builds, results, bisect)."""
    return {"builds": BUILD_JSON, "results": RESULTS_JSON, "bisect": BISECT_JSON}[area]


# ---------------------------------------------------------------- KCIDB, b4-check state

def save_kcidb(path: "str | Path", data: dict) -> Path:
    """A KCIDB document (`zstest report --kcidb`): KCIDB's own schema, versioned by its
    `version` object, so no zstest `schema` key is stamped (KCIDB allows no extra keys)."""
    return write_text_atomic(Path(path), json.dumps(data, indent=2, ensure_ascii=False) + "\n")


B4CHECK_JSON = "b4check.json"
B4CHECK_SCHEMA = 1


def load_b4check(state_dir: "str | Path") -> Optional[dict]:
    """b4-check's state for one patchset (cache/b4check/<key>/b4check.json): {status (running /
    done / interrupted / error), pid, started, finished, key, patchset_hash, series, results_dir,
    build_dir, exit_code, error, checks [b4's entries]}; None when there is none yet."""
    path = Path(state_dir) / B4CHECK_JSON
    if not path.is_file():
        return None
    return _parse(path, B4CHECK_JSON, _b4check_from)


def _b4check_from(path: Path, d: dict, schema: int) -> dict:
    """The state as read, its fields' shapes checked (b4check's readers take it as a dict)."""
    for key in ("status", "key", "patchset_hash", "source", "results_dir", "build_dir", "error"):
        _take(d, key, (str,))
    for key in ("exit_code", "pid"):
        _take(d, key, (int,))
    for key in ("started", "finished"):
        _take(d, key, (float,))
    _words(d, "notes")
    _obj(d, "series")
    return d


def save_b4check(state_dir: "str | Path", data: dict) -> Path:
    return _save(Path(state_dir) / B4CHECK_JSON, B4CHECK_JSON, B4CHECK_SCHEMA, data)


# ---------------------------------------------------------------- coverage maps (affected.py)

COVERAGE_MAP_SCHEMA = 1


@dataclass(frozen=True)
class CoverageMap:
    """cache/coverage-maps/<key>.json, written after a --coverage run (zstest/affected.py):
    {key, created, source {tree, git_dir, base, commit, series {source, revision, sha256[]}},
    config {profiles, fragments, arch, page_size}, kernel_version, suite, keyword, results_dir,
    files {path: {executable [line], functions {name: [start, end]}}},
    tests {name: {status, duration_s, files {path: {lines [[line, count]], functions [name]}}}}}.
    Only the lines a test executed are listed (count > 0)."""
    path: Path
    data: dict
    schema: int = COVERAGE_MAP_SCHEMA
    key: str = ""
    source: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    suite: str = ""
    keyword: str = ""
    created: str = ""
    files: dict = field(default_factory=dict)
    tests: dict = field(default_factory=dict)


def _line_counts(d: dict, where: str) -> None:
    for i, pair in enumerate(_take(d, "lines", (list,), where, [])):
        if not (isinstance(pair, list) and len(pair) == 2 and
                all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
            raise _WrongShape(f"{where}lines[{i}]", pair, "a [line, count] pair")


def _coverage_map_from(path: Path, d: dict, schema: int) -> CoverageMap:
    files = _obj(d, "files")
    for name, f in files.items():
        if not isinstance(f, dict):
            raise _WrongShape(f"files.{name}", f, "an object")
        _take(f, "executable", (list,), f"files.{name}.")
        _obj(f, "functions", f"files.{name}.")
    tests = _obj(d, "tests")
    for name, t in tests.items():
        if not isinstance(t, dict):
            raise _WrongShape(f"tests.{name}", t, "an object")
        _take(t, "status", (str,), f"tests.{name}.")
        _take(t, "duration_s", (float,), f"tests.{name}.")
        for path_, f in _obj(t, "files", f"tests.{name}.").items():
            if not isinstance(f, dict):
                raise _WrongShape(f"tests.{name}.files.{path_}", f, "an object")
            _line_counts(f, f"tests.{name}.files.{path_}.")
    return CoverageMap(path=path, data=d, schema=schema, key=_take(d, "key", (str,), default=""),
                       source=_obj(d, "source"), config=_obj(d, "config"),
                       suite=_take(d, "suite", (str,), default=""),
                       keyword=_take(d, "keyword", (str,), default=""),
                       created=_take(d, "created", (str,), default=""), files=files, tests=tests)


def load_coverage_map(path: "str | Path") -> CoverageMap:
    """One stored coverage map; BadInput when missing or misshapen."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path} is not a zstest coverage map (no such file).")
    return _parse(path, "coverage map", _coverage_map_from)


def save_coverage_map(path: "str | Path", data: dict) -> Path:
    return _save(Path(path), "coverage map", COVERAGE_MAP_SCHEMA, data)
