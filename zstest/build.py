"""The build stage: BuildRequest -> BuildResult, a build directory with build.json.

Source: the series stage's persistent worktree of the tree (zstest.tree), so the
user's tree is never written and unchanged files keep their mtimes. Objects: one
persistent O= dir per (tree, profiles) under cache/objs, so a one-file patch
rebuilds incrementally. Compiler: ccache with its own cache dir.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, TextIO


from . import buildlog, kconfig, proc
from .arch import DEFAULT_ARCH, ArchSpec
from .progress import Progress
from .cache import cache_dir, cache_root, file_lock
from .objdir import clean_after_killed_make, run_make_marked
from .errors import ApplyFailed, BadInput, BuildFailed, ZstestError
from .decode.symbols import object_map_text
from .buildrecord import BuildRecord
from .manifests import has_build
from .target import Target
from .toolchain import DEFAULT_TOOLCHAIN, Toolchain, cc_version_text, resolve as resolve_toolchain

log = logging.getLogger("zstest.build")

# Bump when the build's outputs change shape: test fixtures key their reuse on it.
BUILD_FORMAT_VERSION = "2"
MAKE_TIMEOUT_S = 4 * 3600
# Fixed build identity: reproducible version strings and ccache hits on init/version.c.
REPRODUCIBLE_ENV = {
    "KBUILD_BUILD_TIMESTAMP": "Sat Jan  1 00:00:00 UTC 2000",
    "KBUILD_BUILD_USER": "zstest",
    "KBUILD_BUILD_HOST": "zstest",
    "KBUILD_BUILD_VERSION": "1",
    # Set but empty: no "+" suffix for a git worktree, so `uname -r` is the tree's release.
    "LOCALVERSION": "",
}


@dataclass
class BuildRequest:
    kernel: Optional[Path] = None               # default: settings.resolve_kernel()
    series: Optional[str] = None
    base: Optional[str] = None
    configs: List[str] = field(default_factory=lambda: ["base"])
    each: bool = False
    out: Optional[Path] = None
    allow_config_drift: bool = False
    jobs: Optional[int] = None
    kmod_dir: Optional[Path] = None
    series_limit: Optional[int] = None          # apply only the first N patches (bisect)
    argv: List[str] = field(default_factory=list)   # the command line, for the reproducer
    command: str = "build"                          # the zstest command argv belongs to
    progress: Optional[bool] = None              # None: a live line when stderr is a tty
    quiet: bool = False                          # no progress lines, only the verdict
    make_args: List[str] = field(default_factory=list)   # VAR=VALUE for every make call
    series_config: bool = True                   # turn on what the series' code needs
    coverage: bool = False                       # gcov for zsmalloc, zram and the series' files
    require_built: bool = False                  # a touched C file not compiled is exit 4
    arch: str = DEFAULT_ARCH                     # an arch record's name (zstest/arches/)
    page_size: Optional[str] = None              # --page-size, e.g. "64k"; None: the arch's
    toolchain: str = DEFAULT_TOOLCHAIN           # a toolchain record's name (toolchains.toml)

    @property
    def target(self) -> Target:
        """arch and page_size resolved (BadInput naming the choices for a wrong one)."""
        return Target.from_options(self.arch, self.page_size)

    def set_target(self, target: Target) -> "BuildRequest":
        """Build for target: the request's arch and page size become its."""
        self.arch, self.page_size = target.name, target.page_size_name
        return self


@dataclass
class BuildResult:
    status: str                   # ok / failed / interrupted
    build_dir: Path
    duration_s: float
    manifest: dict
    error: Optional[ZstestError] = None


def last_build_dir() -> Optional[Path]:
    """The last successful build dir of `zstest build` without --out (cache/builds/last), or None."""
    link = cache_root() / "builds" / "last"
    if link.exists() and has_build(link):
        return link.resolve()
    return None


def default_kmod_dir() -> Path:
    from .resources import kmod_dir
    return kmod_dir()


# ---------------------------------------------------------------- helpers

_MAKE_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# zstest's own: where the objects go, the architecture, the tree.
_RESERVED_MAKE_VARS = {"O", "ARCH", "M", "KBUILD_OUTPUT", "INSTALL_MOD_PATH"}


def make_variables(make_args: List[str], target: Target, toolchain: Toolchain) -> tuple:
    """--make-arg VAR=VALUE list -> (compiler args, other variables) for every make call.

    The toolchain record's CC and variables (LLVM=-16) first. ccache stays in front of the
    compiler: with the default toolchain CC=clang becomes CC="ccache clang", and LLVM=1
    (or LLVM=-15, LLVM=/opt/llvm/bin/) gets CC="ccache clang..." as kbuild would pick.
    """
    cc, llvm, rest = None, None, []
    for arg in make_args or []:
        if not _MAKE_VAR_RE.match(arg):
            raise BadInput(f"--make-arg takes VAR=VALUE, e.g. LLVM=1 or CC=clang (got {arg!r}).")
        name, value = arg.split("=", 1)
        if name in _RESERVED_MAKE_VARS:
            raise BadInput(f"--make-arg {arg}: zstest sets {name}= itself.")
        if name in ("CC", "LLVM") and not toolchain.is_default:
            raise BadInput(f"--make-arg {arg} and --toolchain {toolchain.name} both choose the "
                           f"compiler; give one of them.")
        if name == "CC":
            cc = value
            continue
        if name == "LLVM":
            llvm = value
        rest.append(arg)
    if cc is None and llvm:
        cc = (f"{llvm}clang" if llvm.endswith("/") else
              f"clang{llvm}" if llvm.startswith("-") else "clang")
    if cc is None:
        cc_arg, *own = toolchain.make_args(target)
        return [cc_arg], own + rest
    return [f"CC=ccache {cc}" if not cc.startswith("ccache ") else f"CC={cc}"], rest


def ccache_env(srcdir: Path) -> Dict[str, str]:
    return {"CCACHE_DIR": str(cache_dir("ccache")), "CCACHE_BASEDIR": str(srcdir),
            "CCACHE_MAXSIZE": os.environ.get("CCACHE_MAXSIZE", "10G"),
            # The O= dir differs per profile: do not let it into the hash.
            "CCACHE_NOHASHDIR": "1"}


def ccache_stats(env: Dict[str, str]) -> Dict[str, int]:
    """`ccache --print-stats` as {counter: value}; {} when ccache is missing."""
    try:
        res = proc.run(["ccache", "--print-stats"], env=env, timeout=60, check=False)
    except proc.CommandError:
        return {}
    stats = {}
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[1].strip().lstrip("-").isdigit():
            stats[parts[0]] = int(parts[1])
    return stats


def ccache_summary(before: Dict[str, int], after: Dict[str, int]) -> dict:
    keys = ("direct_cache_hit", "preprocessed_cache_hit", "cache_miss", "uncacheable")
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    hits = delta["direct_cache_hit"] + delta["preprocessed_cache_hit"]
    total = hits + delta["cache_miss"]
    return {"dir": str(cache_dir("ccache")), "hits": hits, "misses": delta["cache_miss"],
            "hit_rate": round(hits / total, 3) if total else None, "delta": delta,
            "before": {k: before.get(k, 0) for k in keys},
            "after": {k: after.get(k, 0) for k in keys}}


def check_kernel_tree(path: Path, arch: ArchSpec) -> Path:
    srcarch = arch.kernel_srcarch
    if not path.exists():
        raise BadInput(f"kernel tree {path} does not exist.")
    if not path.is_dir() or not (path / "Makefile").is_file() or not (path / "Kconfig").is_file() \
            or not (path / "arch" / srcarch).is_dir():
        raise BadInput(f"{path} is not a Linux kernel tree (no Makefile, Kconfig or "
                       f"arch/{srcarch}).")
    return path.resolve()


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)[:60]


def objdir_for(tree_key: str, fragments: List[kconfig.Fragment], target: Target,
               toolchain: Toolchain) -> Path:
    """One persistent O= dir per (tree, configs, arch and page size, toolchain): incremental
    across series and revisions. The default target and toolchain keep their pre-arch names."""
    names = [f.profile or f.path.stem for f in fragments]
    # Profiles by name (any checkout or install of zstest shares the objects), fragments by path.
    ids = [f"profile:{f.profile}" if f.profile else str(f.path.resolve()) for f in fragments]
    if target.cache_suffix:
        names.insert(0, target.cache_suffix)
        ids.append(f"arch:{target.cache_suffix}")
    if toolchain.cache_suffix:
        names.insert(0, toolchain.cache_suffix)
        ids.append(f"toolchain:{toolchain.cache_suffix}")
    digest = hashlib.sha1("\0".join(ids).encode()).hexdigest()[:8]
    return cache_dir("objs", f"{tree_key}-{_slug('+'.join(names))}-{digest}")


def _is_enospc(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


# ---------------------------------------------------------------- the stage

class _Builder:
    """One `zstest build` run: owns the build dir, the log and the record (build.json).
    _WholeSeries and _PatchByPatch say how the series' patches are applied and built."""

    PATCH_BY_PATCH = False

    def __init__(self, req: BuildRequest, echo: Callable[[str], None]):
        self.req = req
        self.echo = echo
        self.record = BuildRecord(BUILD_FORMAT_VERSION)
        self.build_dir: Optional[Path] = None
        self.log: Optional[TextIO] = None
        self.progress = Progress(live=req.progress, quiet=req.quiet)
        self.target = req.target                   # BadInput for a bad --arch or --page-size
        self.arch = self.target.arch
        self.toolchain = resolve_toolchain(req.toolchain)      # BadInput for an unknown name
        self.toolchain.apt_packages(self.target)                # BadInput for an arch it lacks
        self.cc_args, self.make_vars = make_variables(req.make_args, self.target, self.toolchain)
        self.warn_state: Dict[str, List[dict]] = {}
        # set once the worktree and the object dir are known (_build_in)
        self.srcdir: Optional[Path] = None
        self.objdir: Optional[Path] = None
        self.env: Dict[str, str] = {}
        self.make_base: List[str] = []
        self.final_config: Dict[str, str] = {}
        self.last_parsed: Optional[buildlog.BuildLog] = None

    @property
    def manifest(self) -> dict:
        return self.record.data

    # -- bookkeeping

    def _toolchain_record(self) -> dict:
        record = self.toolchain.record(self.target)
        # the compiler make really runs: --make-arg CC=/LLVM= may choose another one
        record["cc"] = self.cc_args[0].split("=", 1)[1].removeprefix("ccache ")
        return record

    def step(self, name: str, fn, *args, **kwargs):
        self.progress.set_stage(name)
        start = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            self.record.step_took(name, time.monotonic() - start)

    def write_manifest(self) -> None:
        self.record.save(self.build_dir)

    def make(self, args: List[str], env: Dict[str, str], stage: str) -> buildlog.BuildLog:
        """Run make with output streamed to build.log and parsed as it comes."""
        parsed = buildlog.BuildLog()
        srctree, objdir = str(self.srcdir), str(self.objdir)

        def on_line(line: str) -> None:
            buildlog.parse_line(line, parsed, srctree, objdir)
            self.progress.on_line(line)

        self.log.write(f"\n### {stage}: {shlex.join(args)}\n")
        self.log.flush()
        try:
            # marked in the objdir while it runs: a killed make's half-written objects are removed
            run_make_marked(args, self.objdir, env=env, timeout=MAKE_TIMEOUT_S, log_file=self.log,
                            on_line=on_line)
        except proc.CommandError as exc:
            parsed.returncode = exc.returncode if exc.returncode is not None else -1
            parsed.tail = exc.tail
            parsed.timed_out = exc.timed_out
            return parsed
        parsed.returncode = 0
        return parsed

    # -- main flow

    def run(self) -> BuildResult:
        req = self.req
        from .settings import resolve_kernel
        tree = check_kernel_tree(resolve_kernel(req.kernel), self.arch)
        self.toolchain.check_installed(self.target)            # PrereqMissing: the apt line
        fragments = self._fragments()
        series, total = self._load_series(tree)
        if req.coverage:
            from .coverage import changed_lines, gcov_make_vars, instrumented_files
            patches = series.patches if series is not None else []
            files = instrumented_files(patches)
            self.make_vars = self.make_vars + gcov_make_vars(files)
            self.record.coverage(files, changed_lines(patches))
        kmod_src = Path(req.kmod_dir) if req.kmod_dir else default_kmod_dir()
        if req.kmod_dir and not kmod_src.is_dir():
            raise BadInput(f"--kmod-dir {kmod_src} is not a directory.")

        self.build_dir = self._make_build_dir(tree, fragments, series)
        self.log = open(self.build_dir / "build.log", "w")
        self.record.begin(tree=tree, series=series, total=total, fragments=fragments,
                          toolchain=self._toolchain_record(), target=self.target.to_json(),
                          make_args=req.make_args,
                          reproducer=shlex.join(["zstest", req.command] + list(req.argv)),
                          build_dir=self.build_dir, each=req.each)
        self.write_manifest()

        from .tree import KernelTree, prepare_worktree
        try:
            kt = KernelTree.open(tree)
            wt = self.step("worktree", prepare_worktree, kt, req.base, "build",
                           series_base=series.base_commit if series is not None else None)
        except BaseException as exc:
            # build.json is on disk as "running": it must say how this run ended
            self._end_before_build(exc)
            raise
        try:
            return self._build_in(wt, kt, fragments, series, kmod_src)
        finally:
            wt.release()

    def _fragments(self) -> List[kconfig.Fragment]:
        """Profiles, fragments (on top of base) or a full .config (+ zstest's required options)."""
        configs = list(self.req.configs or ["base"])
        fragments = kconfig.expand_configs(configs)
        gcov = kconfig.merge_fragments(fragments).get("GCOV_KERNEL")
        if self.req.coverage and (gcov is None or gcov.value != "y"):
            # the base profile has gcov's kernel side (nothing profiled): --coverage then only
            # adds make variables, and the object dir stays the one of the same build without it
            fragments = kconfig.expand_configs(configs + ["coverage"])
        return fragments

    def _load_series(self, tree: Path) -> tuple:
        """(the series cut to --series-limit, its whole length), (None, None) without one."""
        req = self.req
        if not req.series:
            return None, None
        from .series import load_series
        series = load_series(req.series, git_tree=tree)
        if not series.patches:
            raise BadInput(f"{req.series} holds no patches.")
        total = len(series.patches)
        if req.series_limit is not None:
            if not 0 <= req.series_limit <= total:
                raise BadInput(f"{req.series} has {total} patches; cannot apply the first "
                               f"{req.series_limit}.")
            series.patches = series.patches[:req.series_limit]
        return series, total

    def _end_before_build(self, exc: BaseException) -> None:
        self.record.ended_before_build(exc)
        if isinstance(exc, ZstestError):
            exc.build_dir = self.build_dir
        self.write_manifest()
        if self.log:
            self.log.close()

    def _make_build_dir(self, tree: Path, fragments, series) -> Path:
        if self.req.out:
            out = Path(self.req.out).expanduser().resolve()
            out.mkdir(parents=True, exist_ok=True)
            return out
        names = "+".join(f.profile or f.path.stem for f in fragments)
        label = "plain" if series is None else f"v{series.revision}"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = _slug(f"{tree.name}-{label}-{names}-{stamp}")
        from .fsutil import claim_unique_dir
        return claim_unique_dir(cache_dir("builds"), name)

    def _build_in(self, wt, kt, fragments, series, kmod_src: Path) -> BuildResult:
        record = self.record
        self.srcdir = wt.path
        record.worktree(wt, series)
        if series is not None and wt.base_note:
            self.echo(f"zstest build: {wt.base_note}")
        self.objdir = objdir_for(kt.key, fragments, self.target, self.toolchain)
        record.objdir(self.objdir)
        self.env = dict(REPRODUCIBLE_ENV, **ccache_env(wt.path))
        jobs = self.req.jobs or os.cpu_count() or 1
        self.make_base = (kconfig.kbuild_make_args(wt.path, self.objdir, self.arch) + [f"-j{jobs}"]
                          + self.cc_args + self.make_vars)
        with file_lock(cache_dir("locks") / f"objs-{self.objdir.name}.lock"):
            clean_after_killed_make(self.objdir)
            self._load_warn_state()
            stats_before = ccache_stats(self.env)
            try:
                self._configure(wt.path, fragments)
                self._build_series(wt, fragments, series, kmod_src)
                self._finish(kmod_src)
                if series is not None:
                    self._build_coverage(wt.path, series.patches)
                record.finished("ok", True)
            except (KeyboardInterrupt, ZstestError, OSError, proc.CommandError) as exc:
                self._end_in_build(exc)
            finally:
                if series is not None:
                    self._keep_commits(wt)
                record.ccache(ccache_summary(stats_before, ccache_stats(self.env)))
                self._save_warn_state()
                if record.status == "ok":
                    self._point_last()
                self.write_manifest()
                if self.log:
                    self.log.close()
        return BuildResult(record.status, self.build_dir, record.duration_s, record.data)

    def _build_series(self, wt, fragments, series, kmod_src: Path) -> None:
        """Apply and build the series (or the plain tree): the path's own way."""
        raise NotImplementedError

    def _end_in_build(self, exc: BaseException) -> None:
        """Record how the build ended and raise what the user is told (always raises)."""
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        if isinstance(exc, proc.CommandError):
            # a tool of the build stage failed or hung (make kernelrelease, git): exit 4
            error = BuildFailed(f"the build step {exc.summary()}.", detail=exc.tail)
            self.record.finished(status, error=error.message)
            error.build_dir = self.build_dir
            raise error from None
        if _is_enospc(exc):
            self.record.finished(status, error="no space left on device")
            raise BuildFailed(f"no space left on device while building in {self.objdir} "
                              f"or {self.build_dir}; free some space and run again.") from None
        if isinstance(exc, ZstestError):
            exc.build_dir = self.build_dir
        self.record.finished(status, error=exc.message if isinstance(exc, ZstestError) else None)
        raise exc

    def _apply(self, wt, series, patch) -> None:
        """Apply one patch as a commit: ApplyFailed naming it when it does not apply."""
        from .tree import apply_patch
        pa = self.step(f"apply {patch.index}", apply_patch, wt, patch)
        self.record.applied(patch.index, pa, each=self.PATCH_BY_PATCH)
        if pa.status == "failed":
            raise self._apply_error(series, patch, pa)

    # -- steps

    def _series_configure(self, srcdir: Path, fragments, patches) -> None:
        """Configure again with what the series (as applied so far) needs to be compiled."""
        from . import series_config
        if not self.req.series_config:
            self.record.series_config(None, {})
            return
        symbols = series_config.series_symbols(list(patches), srcdir)
        current = kconfig.read_config(self.objdir / ".config")
        wanted = [s for s in symbols if current.get(s.name) not in ("y", "m")]
        self.record.series_config(symbols, current)
        if not wanted:
            return     # the profile already has them: the config (and the objdir) stay as they are
        frag_path = self.build_dir / "series.config"
        frag_path.write_text(series_config.fragment_text(wanted))
        frag = kconfig.parse_fragment(frag_path)
        self._configure(srcdir, list(fragments) + [frag], series_fragment=frag_path)
        self.record.series_config_now(kconfig.read_config(self.objdir / ".config"))

    def _build_coverage(self, srcdir: Path, patches) -> None:
        """Which files of the series were compiled; --require-built makes a miss exit 4."""
        from . import series_config
        final = kconfig.read_config(self.objdir / ".config")
        coverage = series_config.build_coverage(list(patches), srcdir, self.objdir, final)
        self.record.build_coverage(coverage)
        missed = [c for c in coverage if c.kind == "code" and c.built is False]
        if not self.req.quiet:
            for line in series_config.coverage_summary(coverage):
                self.echo(f"zstest build: series coverage: {line}")
        if missed and self.req.require_built:
            raise BuildFailed(f"{len(missed)} C file(s) of the series were not compiled "
                              f"(--require-built): {missed[0].file}: {missed[0].why}.",
                              detail="\n".join(f"  {c.file}: {c.why}" for c in missed))

    def _configure(self, srcdir: Path, fragments, series_fragment: Optional[Path] = None) -> None:
        scratch = Path(str(self.objdir) + ".kconfig")
        # the arch's own fragment and --page-size go last: what the platform needs and cannot have
        full = any(f.start_config is not None for f in fragments)
        fragments = list(fragments) + [kconfig.arch_fragment(self.arch, self.req.page_size, full)]
        res = self.step("config", kconfig.configure, srcdir, scratch, fragments,
                        env=self.env, log_file=self.log, arch=self.arch,
                        make_args=(self.cc_args + self.make_vars)
                        if self.req.make_args or not self.toolchain.is_default else [])
        dropped = None
        if series_fragment is not None:
            # the series' own wishes never fail the build: the coverage says what they cost
            dropped = [x for x in res.missing if str(series_fragment) in x.source]
            res.missing = [x for x in res.missing if x not in dropped]
        self.record.configured(res, dropped)
        if res.missing:
            lines = "\n".join("  " + x.sentence() for x in res.missing)
            if not self.req.allow_config_drift:
                raise BuildFailed(f"{len(res.missing)} requested config option(s) did not survive "
                                  f"olddefconfig (pass --allow-config-drift to build anyway).",
                                  detail=lines)
            self.echo(f"zstest build: config drift allowed:\n{lines}")
        kconfig.install_config(res, self.objdir)
        self.final_config = kconfig.read_config(self.objdir / ".config")
        self.record.compiler_version(cc_version_text(self.final_config))

    def _compile(self, stage: str, patch_index: Optional[int] = None) -> bool:
        """One make pass of the image (and modules); patch_index: the patch it judges."""
        targets = [self.arch.image_target]
        if self.final_config.get("MODULES") == "y":
            targets.append("modules")
        parsed = self.step(stage, self.make, self.make_base + targets, self.env, stage)
        if parsed.no_space:
            raise OSError(errno.ENOSPC, "No space left on device")
        if parsed.timed_out:
            raise BuildFailed(f"make did not finish within {MAKE_TIMEOUT_S} s.")
        previous = self._all_warnings()
        self._update_warn_state(parsed)
        new = buildlog.new_warnings(previous, self._all_warnings())
        ok = parsed.returncode == 0
        self.last_parsed = parsed
        if not ok and not parsed.errors:
            last = parsed.tail.strip().splitlines()[-1:] or ["make failed"]
            parsed.errors.append(buildlog.Diagnostic("make", 0, None, "error", last[0]))
        self.record.compiled(stage, parsed, self._all_warnings())
        if patch_index is not None:
            self.record.patch_built(patch_index, ok, parsed, new,
                                    self.record.durations.get(stage))
        return ok

    def _keep_commits(self, wt) -> None:
        """A ref per build in the cached repo: the patch commits outlive the next worktree reset."""
        digest = hashlib.sha1(str(self.build_dir).encode()).hexdigest()[:10]
        ref = f"refs/zstest/builds/{_slug(self.build_dir.name)}-{digest}"
        from .gitsafe import run_git
        try:
            run_git(["update-ref", ref, "HEAD"], cwd=wt.path, timeout=60, check=True)
        except proc.CommandError as exc:
            # runs in a finally: must not hide how the build ended; decode then has no commits
            self.echo(f"zstest build: the patch commits are not kept: {exc.summary()}")
            return
        self.record.keep_ref(ref)

    def _finish(self, kmod_src: Path) -> None:
        make = kconfig.kbuild_make_args(self.srcdir, self.objdir, self.arch) + self.make_vars
        rel = proc.run(make + ["-s", "kernelrelease"], env=self.env, timeout=120, check=False)
        self.record.kernel_version(rel.stdout.strip().splitlines()[-1] if rel.stdout.strip()
                                   else None)
        self.step("copy", self._copy_artifacts)
        modules_wanted = any(v == "m" for v in self.final_config.values())
        if self.final_config.get("MODULES") == "y" and modules_wanted:
            self.step("modules_install", self._modules_install)
        else:
            self.record.artifact("modules", None)
        self.record.artifact("kmod", self.step("kmod", self._build_kmod, kmod_src))
        if self.req.coverage:
            self.step("gcno", self._keep_gcno)

    def _keep_gcno(self) -> None:
        """The .gcno of every instrumented object, as built: the objdir is shared by later
        builds, and gcov refuses a .gcda whose .gcno was rebuilt since."""
        kept = []
        for rel in self.manifest["coverage"]["files"]:
            gcno = self.objdir / Path(rel).with_suffix(".gcno")
            if gcno.is_file():
                dest = self.build_dir / "gcno" / Path(rel).with_suffix(".gcno")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(gcno, dest)
                kept.append(rel)
        self.record.gcno("gcno", kept)

    def _copy_artifacts(self) -> None:
        # build.json's key stays "bzImage" whatever the arch; the file keeps the image's name
        pairs = {"bzImage": self.objdir / self.arch.image_path,
                 "vmlinux": self.objdir / "vmlinux",
                 "System.map": self.objdir / "System.map",
                 "config": self.objdir / ".config"}
        for key, src in pairs.items():
            name = ".config" if key == "config" else src.name
            if src.is_file():
                shutil.copy2(src, self.build_dir / name)
                self.record.artifact(key, name)
            else:
                self.record.artifact(key, None)
        if self.manifest["artifacts"].get("bzImage") is None:
            raise BuildFailed(f"make succeeded but {pairs['bzImage']} is missing.")
        # The zram selftests as the series left them: the build dir carries them to the guest.
        selftests = self.srcdir / "tools" / "testing" / "selftests" / "zram"
        if selftests.is_dir():
            dest = self.build_dir / "selftests" / "zram"
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(selftests, dest, symlinks=False)
            self.record.artifact("selftests", "selftests/zram")
        self.record.artifact("objects", self._keep_object_map())

    def _keep_object_map(self) -> Optional[str]:
        """Which object defines each vmlinux function, as built, for decode: the objdir is
        shared by later builds (and rewritten while one runs), so it is read now or never."""
        archive = self.objdir / "vmlinux.a"
        if not archive.is_file():
            return None
        res = proc.run(["nm", "-A", "--defined-only", str(archive)], timeout=300, check=False)
        if res.returncode != 0:
            log.warning("no object map: nm on %s: %s", archive, res.stderr.strip()[-200:])
            return None
        text = object_map_text(res.stdout, str(self.objdir))
        tmp = self.build_dir / "objects.map.gz.tmp"
        with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=6) as fh:
            fh.write(text)
        os.replace(tmp, self.build_dir / "objects.map.gz")
        return "objects.map.gz"

    def _modules_install(self) -> None:
        target = self.build_dir / "modules"
        if target.exists():
            shutil.rmtree(target)
        parsed = self.make(self.make_base + [f"INSTALL_MOD_PATH={target}", "modules_install"],
                           self.env, "modules_install")
        if parsed.returncode != 0:
            raise BuildFailed("make modules_install failed; see build.log.",
                              detail=parsed.tail)
        self.record.artifact("modules", "modules")

    def _build_kmod(self, kmod_src: Path) -> Optional[dict]:
        if not kmod_src.is_dir() or not any((kmod_src / n).is_file() for n in ("Kbuild", "Makefile")):
            return None
        if self.final_config.get("MODULES") != "y":
            raise BuildFailed(f"{kmod_src} holds a module but the config has CONFIG_MODULES off.")
        # the same module sources against the same kernel build the same .ko: reuse it
        reuse = Path(str(self.objdir) + ".kmod") / self._kmod_key(kmod_src)
        try:
            kept = json.loads((reuse / "kmod.json").read_text())
            for name in kept["modules"]:
                shutil.copy2(reuse / name, self.build_dir / name)
            return dict(kept, source=str(kmod_src), reused=True)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        work = self.build_dir / "kmod-build"
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(kmod_src, work, ignore=shutil.ignore_patterns(
            "*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd", "modules.order", "Module.symvers"))
        # W=1: the module must stay warning-free at the extra warning level too
        # ARCH and CROSS_COMPILE again: the O= dir's Makefile does not remember them
        arch_vars = kconfig.kbuild_make_args(self.srcdir, self.objdir, self.arch)[4:]
        parsed = self.make(["make", "-C", str(self.objdir), f"M={work}", *arch_vars, *self.cc_args,
                            *self.make_vars, "W=1",
                            f"-j{self.req.jobs or os.cpu_count() or 1}", "modules"],
                           self.env, "kmod")
        if parsed.returncode != 0:
            first = parsed.first_error
            where = f" at {first}" if first else ""
            raise BuildFailed(f"the out-of-tree module in {kmod_src} failed to build{where}.",
                              detail=parsed.tail)
        kos = sorted(work.rglob("*.ko"))
        for ko in kos:
            shutil.copy2(ko, self.build_dir / ko.name)
        built = {"source": str(kmod_src), "modules": [ko.name for ko in kos],
                 "warnings": [str(d) for d in buildlog.dedupe(parsed.warnings)]}
        try:   # a cache entry is only ever whole: written aside, then renamed into place
            shutil.rmtree(reuse, ignore_errors=True)
            tmp = reuse.with_name(reuse.name + f".tmp{os.getpid()}")
            tmp.mkdir(parents=True, exist_ok=True)
            for ko in kos:
                shutil.copy2(ko, tmp / ko.name)
            (tmp / "kmod.json").write_text(json.dumps(built))
            os.replace(tmp, reuse)
        except OSError:
            pass   # no reuse next time; this build is whole
        return dict(built, reused=False)

    def _kmod_key(self, kmod_src: Path) -> str:
        """What the module's build depends on: its sources, the kernel it is built against
        (vmlinux, Module.symvers, .config) and the make variables."""
        h = hashlib.sha256()
        for path in sorted(p for p in kmod_src.rglob("*") if p.is_file()):
            h.update(str(path.relative_to(kmod_src)).encode() + b"\0" + path.read_bytes())
        for name in ("vmlinux", "Module.symvers", ".config"):
            try:
                with open(self.objdir / name, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
            except OSError:
                h.update(b"missing " + name.encode())
        h.update(json.dumps([self.cc_args, self.make_vars]).encode())
        return h.hexdigest()[:20]

    # -- warnings carried across builds of one object dir

    def _warn_state_path(self) -> Path:
        return Path(str(self.objdir) + ".warnings.json")

    def _load_warn_state(self) -> None:
        try:
            self.warn_state = json.loads(self._warn_state_path().read_text())
        except (OSError, ValueError):
            self.warn_state = {}
        if not isinstance(self.warn_state, dict):
            self.warn_state = {}

    def _save_warn_state(self) -> None:
        try:
            from .fsutil import write_text_atomic
            write_text_atomic(self._warn_state_path(), json.dumps(self.warn_state, indent=1))
        except OSError:
            pass

    def _update_warn_state(self, parsed: buildlog.BuildLog) -> None:
        """Recompiled units drop their old warnings; every warning seen now is recorded."""
        for src in parsed.compiled_sources():
            self.warn_state.pop(src, None)
        fresh: Dict[str, List[dict]] = {}
        for d in buildlog.dedupe(parsed.warnings):
            fresh.setdefault(d.file, []).append(d.to_json())
        self.warn_state.update(fresh)

    def _all_warnings(self) -> List[buildlog.Diagnostic]:
        return [buildlog.Diagnostic(**d) for items in self.warn_state.values() for d in items]

    # -- errors

    def _apply_error(self, series, patch, pa) -> ApplyFailed:
        files = ", ".join(pa.failed_files) or "see git's message"
        return ApplyFailed(f"patch {patch.index}/{len(series.patches)} {patch.subject!r} does not "
                           f"apply ({files}).", detail=pa.message)

    def _build_error(self, which) -> BuildFailed:
        parsed = self.last_parsed
        first = parsed.first_error
        where = str(first) if first else "see build.log"
        if which is None:
            sentence = f"the kernel build failed: {where}."
        else:
            patch, entry, total = which
            errs = entry.get("errors") or [where]
            sentence = f"patch {patch.index}/{total} {patch.subject!r} breaks the build: {errs[0]}."
        detail = "\n".join(str(d) for d in buildlog.dedupe(parsed.errors)[:10])
        return BuildFailed(sentence, detail=detail + f"\nbuild log: {self.build_dir / 'build.log'}")

    def _point_last(self) -> None:
        if self.req.out is not None or self.build_dir is None:
            return
        link = cache_dir("builds") / "last"
        tmp = link.with_name("last.tmp")
        try:
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(self.build_dir)
            tmp.replace(link)
        except OSError:
            pass


class _WholeSeries(_Builder):
    """The plain tree, or every patch applied and then one build (`zstest build` without --each)."""

    def _build_series(self, wt, fragments, series, kmod_src: Path) -> None:
        if series is not None:
            for patch in series.patches:
                self._apply(wt, series, patch)
            self._series_configure(wt.path, fragments, series.patches)
        ok = self._compile("build")
        if series is not None:
            self.record.series_built(ok)
        if not ok:
            raise self._build_error(None)


class _PatchByPatch(_Builder):
    """--each: the base tree built first (its warnings are the baseline), then each patch
    applied and built on top, judged against the build before it."""

    PATCH_BY_PATCH = True

    def _build_series(self, wt, fragments, series, kmod_src: Path) -> None:
        total = len(series.patches)
        self._compile("build base")
        failures = []
        for patch in series.patches:
            self._apply(wt, series, patch)
            self._series_configure(wt.path, fragments, series.patches[:patch.index])
            if not self._compile(f"build {patch.index}/{total}", patch.index):
                failures.append(patch)
                self.record.patch_errors_default(patch.index,
                                                 [str(d) for d in self.last_parsed.errors])
            self.write_manifest()
        if failures:
            first = failures[0]
            error = self._build_error((first, self.record.patch(first.index), total))
            if self.record.last_patch_built():
                # Only a middle patch broke (bisectability): the whole series still gives a
                # kernel, so keep it bootable and let `run` test it.
                self._finish(kmod_src)
                self.record.bootable(True)
            raise error


def run_build(req: BuildRequest, echo: Callable[[str], None] = print) -> BuildResult:
    """Build a kernel (optionally with a series, patch by patch); raises ZstestError on failure.

    build.json is written in every case, including failure and Ctrl-C.
    """
    builder = (_PatchByPatch if req.each and req.series else _WholeSeries)(req, echo)
    try:
        result = builder.run()
    except OSError as exc:
        if _is_enospc(exc):
            raise BuildFailed("no space left on device; free some space and run again.") from None
        raise
    finally:
        builder.progress.close()
    builder.progress.done(
        f"zstest build: {result.status} in {result.duration_s:.0f} s -> {result.build_dir}")
    return result
