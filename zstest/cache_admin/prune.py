"""Removing old parts of the cache: `prune_cache(PruneRequest)` -> PruneResult, taking the
stages' own flocks without waiting (an entry in use is skipped and named), never
deleting outside the cache root nor through a symlink."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

from .. import proc
from ..errors import BadInput
from ..gitsafe import cache_git_dir, run_git
from ..manifests import (B4CHECK_JSON, BUILD_JSON, PERF_JSON, RESULTS_JSON, load_b4check,
                         load_build, load_coverage_map, load_results)
from .usage import (DEFAULT_IDLE_DAYS, DEFAULT_KEEP, DEFAULT_PRUNE_AREAS, IMAGES_KEPT, _LOADERS,
                    NEVER_PRUNED, PRUNABLE_AREAS, STAMPED_AREAS, UNFINISHED_GRACE_S, CacheEntry,
                    DiskUsage, _age_key, _is_within, _load_quietly, _real_dirs, area_entries,
                    last_link, resolved_root, safe_resolve)

# The ref build.py keeps per build (its _slug of the build dir's name and a digest).
BUILD_REF = re.compile(r"refs/zstest/builds/[\w.-]+")

# Where results dirs sit in each area (their results.json keeps their image).
RESULTS_PATTERNS = (("results", f"*/{RESULTS_JSON}"), ("bisect", f"*/*/results/{RESULTS_JSON}"),
                    ("perf", f"*/[ab]/*/{RESULTS_JSON}"), ("perf", f"*/warmup/*/*/{RESULTS_JSON}"),
                    ("b4check", f"*/results/{RESULTS_JSON}"),
                    ("watch", f"series/*/results*/{RESULTS_JSON}"))
# A watched series in these states is the watcher's queue or its run: never touched.
WATCH_LIVE_STATES = ("queued", "running", "dispatched")
WATCH_DONE_STATES = ("done", "superseded")

# ---------------------------------------------------------------- locks and use

@contextlib.contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """The flock zstest's stages take on path, without waiting: yields False when it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                yield False
                return
            raise
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def paths_in_use(root: Path) -> List[Path]:
    """Cache paths other processes name on their command line or sit in (QEMU -kernel, O=)."""
    found: Set[Path] = set()
    own = {os.getpid(), os.getppid()}
    for pid_dir in _real_dirs(Path("/proc")):
        if not pid_dir.name.isdigit() or int(pid_dir.name) in own:
            continue
        base = Path(pid_dir.path)
        try:
            args = (base / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        cwd = None
        with contextlib.suppress(OSError):
            cwd = Path(os.readlink(base / "cwd"))
        candidates = [cwd] if cwd else []
        for raw in args:
            text = raw.decode(errors="replace")
            for part in text.replace(",", "=").split("="):
                if "/" in part:
                    p = Path(part)
                    candidates.append(p if p.is_absolute() else (cwd / p if cwd else None))
        for p in candidates:
            if p is None:
                continue
            p = Path(os.path.normpath(p))
            if _is_within(p, root) and p != root:
                found.add(p)
    return sorted(found)


def _used_by_process(entry: CacheEntry, in_use: Sequence[Path]) -> Optional[Path]:
    for p in in_use:
        if any(_is_within(p, own) for own in entry.paths):
            return p
    return None


# ---------------------------------------------------------------- removal

class RefusedPath(Exception):
    """A path that resolves outside the cache root (a symlink on the way): never deleted."""


def remove_inside(path: Path, root: Path) -> None:
    """Delete path (a dir tree, a file or just a symlink itself) if it is inside root."""
    root = root.resolve()
    parent = Path(path).parent.resolve()
    target = parent / Path(path).name
    if not _is_within(parent, root) or target == root or Path(path).name in ("", ".", ".."):
        raise RefusedPath(f"{path} resolves to {target}, outside the cache {root}; not deleted")
    st = os.lstat(target)
    if stat.S_ISDIR(st.st_mode):
        # rmtree unlinks symlinks inside without following them (fd-based, avoids_symlink_attacks).
        shutil.rmtree(target)
    else:
        os.unlink(target)


# ---------------------------------------------------------------- prune

@dataclass
class PruneRequest:
    keep: int = DEFAULT_KEEP
    older_than_days: Optional[float] = None
    areas: Sequence[str] = DEFAULT_PRUNE_AREAS
    dry_run: bool = False


@dataclass
class PruneItem:
    area: str
    name: str
    path: str
    size_bytes: int
    reason: str

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class PruneResult:
    root: Path
    dry_run: bool
    removed: List[PruneItem] = field(default_factory=list)     # or would be, with dry_run
    skipped: List[PruneItem] = field(default_factory=list)     # kept for safety: last, in use
    kept: Dict[str, int] = field(default_factory=dict)         # kept by --keep / --older-than
    errors: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    ccache: Optional[dict] = None
    duration_s: float = 0.0

    @property
    def freed_bytes(self) -> int:
        freed = sum(i.size_bytes for i in self.removed)
        if self.ccache and not self.dry_run:
            freed += max(0, self.ccache["before_bytes"] - self.ccache["after_bytes"])
        return freed

    def to_json(self) -> dict:
        return {"root": str(self.root), "dry_run": self.dry_run, "freed_bytes": self.freed_bytes,
                "removed": [i.to_json() for i in self.removed],
                "skipped": [i.to_json() for i in self.skipped], "kept": self.kept,
                "errors": self.errors, "notes": self.notes, "ccache": self.ccache,
                "duration_s": round(self.duration_s, 3)}


def parse_areas(values: Sequence[str]) -> List[str]:
    """--area a,b --area c -> [a, b, c], each one prunable; BadInput otherwise."""
    areas: List[str] = []
    for value in values:
        for name in (v.strip().rstrip("/") for v in value.split(",")):
            if not name:
                continue
            if name in NEVER_PRUNED:
                raise BadInput(NEVER_PRUNED[name])
            if name not in PRUNABLE_AREAS:
                raise BadInput(f"unknown cache area {name!r} for --area; prunable areas: "
                               f"{', '.join(PRUNABLE_AREAS)}.")
            if name not in areas:
                areas.append(name)
    if values and not areas:
        raise BadInput("--area names no area; prunable areas: " + ", ".join(PRUNABLE_AREAS) + ".")
    return areas


class _Pruner:
    def __init__(self, req: PruneRequest, root: Path):
        if req.keep < 0:
            raise BadInput(f"--keep must be 0 or more, not {req.keep}.")
        if req.older_than_days is not None and req.older_than_days < 0:
            raise BadInput(f"--older-than must be 0 or more days, not {req.older_than_days:g}.")
        self.req = req
        self.root = root
        self.now = time.time()
        self.du = DiskUsage()
        self.result = PruneResult(root, req.dry_run)
        self.in_use = paths_in_use(root)
        self.locks = root / "locks"
        self.removed_paths: Set[Path] = set()

    # -- helpers

    def _item(self, entry: CacheEntry, reason: str) -> PruneItem:
        return PruneItem(entry.area, entry.name, str(entry.path), entry.size_bytes, reason)

    def _skip(self, entry: CacheEntry, reason: str) -> None:
        self.result.skipped.append(self._item(entry, reason))

    def _keep(self, area: str) -> None:
        self.result.kept[area] = self.result.kept.get(area, 0) + 1

    def _age_days(self, entry: CacheEntry) -> float:
        return (self.now - entry.last_used) / 86400

    def _entries(self, area: str) -> Optional[List[CacheEntry]]:
        path = self.root / area
        if path.is_symlink():
            self.result.notes.append(f"{area}/ is a symlink to {os.readlink(path)}: not followed, "
                                     f"not pruned")
            return None
        if not path.is_dir():
            return None
        return area_entries(area, path, self.du)

    def _remove(self, entry: CacheEntry, reason: str) -> bool:
        """Delete entry's paths (or only report them with --dry-run); False if something failed."""
        if not self.req.dry_run:
            try:
                for p in entry.paths:
                    remove_inside(p, self.root)
            except (OSError, RefusedPath) as exc:
                self.result.errors.append(f"could not remove {entry.path}: {exc}")
                return False
        self.removed_paths.add(entry.path)
        self.result.removed.append(self._item(entry, reason))
        return True

    def _remove_locked(self, entry: CacheEntry, lock: Path, reason: str) -> bool:
        with try_lock(lock) as got:
            if not got:
                self._skip(entry, f"in use: {lock.relative_to(self.root)} is held")
                return False
            return self._remove(entry, reason)

    def _process_user(self, entry: CacheEntry) -> bool:
        user = _used_by_process(entry, self.in_use)
        if user is not None:
            self._skip(entry, f"in use: a running process names {user}")
            return True
        return False

    # -- output areas: builds, results, bisect

    def prune_stamped(self, area: str) -> None:
        entries = self._entries(area)
        if not entries:
            return
        last = last_link(self.root, area) if area in ("builds", "results") else None
        last_target = last.resolved if last is not None else None
        dirs = sorted((e for e in entries if e.path.is_dir()), key=_age_key, reverse=True)
        for rank, entry in enumerate(dirs):
            if rank < self.req.keep:
                self._keep(area)
            elif (self.req.older_than_days is not None
                  and self._age_days(entry) < self.req.older_than_days):
                self._keep(area)
            elif last_target is not None and safe_resolve(entry.path) == last_target:
                self._skip(entry, f"{area}/last points here")
            elif self._process_user(entry):
                pass
            elif self._unfinished_and_live(area, entry):
                pass
            else:
                refs = self._build_refs(entry)
                if self._remove(entry, f"beyond the newest {self.req.keep}" + (
                        f", older than {self.req.older_than_days:g} days"
                        if self.req.older_than_days is not None else "")):
                    self._drop_refs(refs)

    def _unfinished_and_live(self, area: str, entry: CacheEntry) -> bool:
        if area == "perf" and (entry.path / PERF_JSON).is_file():
            return False
        data = _load_quietly(_LOADERS[area], entry.path) if area in _LOADERS else None
        if area == "builds" and data and data.status != "running":
            return False
        if area == "results" and data is not None:
            return False
        if area == "bisect" and (entry.path / "bisect.txt").is_file():
            return False
        if area == "builds" and data and data.objdir:
            with try_lock(self.locks / f"objs-{Path(data.objdir).name}.lock") as got:
                if not got:
                    self._skip(entry, "in use: unfinished and its objdir lock is held")
                    return True
        idle = self.now - entry.last_used
        if idle < UNFINISHED_GRACE_S:
            self._skip(entry, f"unfinished and written {idle / 60:.0f} min ago: "
                              f"may still be running")
            return True
        return False

    def _build_refs(self, entry: CacheEntry) -> List[Tuple[Path, str]]:
        """The refs build.py made to keep a build's patch commits (a bisect has one per step;
        b4check and watch keep theirs in build/)."""
        refs = []
        found = [p.parent for p in entry.path.glob(f"*/build/{BUILD_JSON}")]
        for build_dir in [entry.path, entry.path / "build", *found]:
            manifest = _load_quietly(load_build, build_dir)
            if manifest is None:
                continue
            ref, git_dir = manifest.kernel.keep_ref, manifest.kernel.git_dir
            # build.json is an artifact: only the cache's own repositories, only zstest's refs
            own_repo = cache_git_dir(git_dir, self.root)
            if (isinstance(ref, str) and BUILD_REF.fullmatch(ref)
                    and own_repo is not None and own_repo.is_dir()):
                refs.append((own_repo, ref))
        return refs

    def _drop_refs(self, refs: List[Tuple[Path, str]]) -> None:
        """With the build gone its commits need no ref: a later `git gc` may drop them."""
        if self.req.dry_run:
            return
        for git_dir, ref in refs:
            run_git(["update-ref", "-d", "--end-of-options", ref], git_dir=git_dir,
                    timeout=60, check=False)

    # -- images

    def prune_images(self, kept_results: List[Path]) -> None:
        entries = self._entries("images")
        if not entries:
            return
        referenced: Dict[Path, str] = {}
        for results_json in kept_results:
            results = _load_quietly(load_results, results_json)
            image = results.image.get("path") if results else None
            if isinstance(image, str) and image:
                image_dir = safe_resolve(Path(image).parent)
                if image_dir is not None:
                    referenced.setdefault(image_dir, str(results_json.parent))
        real = [e for e in entries if e.path.is_dir() and ".tmp" not in e.name]
        newest = {e.path for e in sorted(real, key=_age_key, reverse=True)[:IMAGES_KEPT]}
        for entry in entries:
            digest = entry.name.split(".tmp")[0]
            if entry.path in newest:
                self._keep("images")
            elif safe_resolve(entry.path) in referenced:
                self._skip(entry, f"used by kept results {referenced[safe_resolve(entry.path)]}")
            elif (self.req.older_than_days is not None
                  and self._age_days(entry) < self.req.older_than_days):
                self._keep("images")
            elif not self._process_user(entry):
                why = (f"not among the newest {IMAGES_KEPT} nor used by a kept results dir"
                       if ".tmp" not in entry.name else "left over from an interrupted image build")
                self._remove_locked(entry, self.locks / f"image-{digest}.lock", why)

    def kept_results_files(self) -> List[Path]:
        """results.json of every results dir that stays (results/, bisect steps, perf runs,
        b4check and watch series, last links)."""
        files = []
        # bisect/<stamp>/<step>/results/ holds each step's run; perf/<stamp>/{a,b}/run-NN/ and
        # warmup/{a,b}/run-NN/ compare --perf's.
        for area, pattern in RESULTS_PATTERNS:
            base = self.root / area
            if base.is_dir() and not base.is_symlink():
                for f in base.glob(pattern):
                    if not any(_is_within(f, gone) for gone in self.removed_paths):
                        files.append(f)
        link = last_link(self.root, "results")
        if link.resolved is not None:
            files.append(link.resolved / RESULTS_JSON)
        return files

    # -- reusable state: objs, worktrees, repos, test-builds

    def _idle_days(self) -> float:
        return (self.req.older_than_days if self.req.older_than_days is not None
                else DEFAULT_IDLE_DAYS)

    def _idle_enough(self, entry: CacheEntry) -> bool:
        if self._age_days(entry) < self._idle_days():
            self._keep(entry.area)
            return False
        return not self._process_user(entry)

    def _idle_reason(self, entry: CacheEntry) -> str:
        return f"unused for {self._age_days(entry):.1f} days (limit {self._idle_days():g})"

    def prune_objs(self) -> None:
        for entry in self._entries("objs") or []:
            if entry.path.is_dir() and self._idle_enough(entry):
                self._remove_locked(entry, self.locks / f"objs-{entry.path.name}.lock",
                                    self._idle_reason(entry))

    def prune_test_builds(self) -> None:
        for entry in self._entries("test-builds") or []:
            if entry.path.is_dir() and self._idle_enough(entry):
                self._remove_locked(entry, self.locks / f"test-build-{entry.name}.lock",
                                    self._idle_reason(entry))

    def prune_worktrees(self) -> None:
        for entry in self._entries("worktrees") or []:
            if any(_is_within(entry.path, gone) for gone in self.removed_paths):
                continue    # went with its repo
            if "/" not in entry.name or not self._idle_enough(entry):
                continue
            key, purpose = entry.name.split("/", 1)
            lock = self.locks / f"worktree-{key}-{purpose}.lock"
            with try_lock(lock) as got:
                if not got:
                    self._skip(entry, f"in use: {lock.relative_to(self.root)} is held")
                elif self._remove(entry, self._idle_reason(entry)):
                    # Still under the lock: the next prepare_worktree finds git and disk agreeing.
                    self._forget_worktree(key)

    def _forget_worktree(self, key: str) -> None:
        """Tell the cached repo its removed worktree is gone (`git worktree prune`)."""
        if self.req.dry_run:
            return
        with contextlib.suppress(OSError):
            (self.root / "worktrees" / key).rmdir()     # only when empty
        git_dir = self.root / "repos" / key / "git"
        if not git_dir.is_dir():
            return
        try:
            run_git(["worktree", "prune"], git_dir=git_dir, timeout=120)
        except proc.CommandError as exc:
            self.result.errors.append(f"git worktree prune in {git_dir} failed: {exc.tail or exc}")

    def prune_repos(self) -> None:
        worktrees = {}
        wt_dir = self.root / "worktrees"
        if wt_dir.is_dir() and not wt_dir.is_symlink():
            for e in area_entries("worktrees", wt_dir, self.du):
                worktrees.setdefault(e.name.split("/")[0], []).append(e)
        for entry in self._entries("repos") or []:
            if not entry.path.is_dir():
                continue
            own = worktrees.get(entry.name, [])
            # The repo is in use as long as any of its worktrees is.
            entry.last_used = max([entry.last_used] + [w.last_used for w in own])
            entry.size_bytes += sum(w.size_bytes for w in own)
            if any(_used_by_process(w, self.in_use) for w in own):
                self._skip(entry, "in use: a running process uses one of its worktrees")
                continue
            if not self._idle_enough(entry):
                continue
            with contextlib.ExitStack() as stack:
                locks = [self.locks / f"repo-{entry.name}.lock"] + [
                    self.locks / f"worktree-{entry.name}-{w.name.split('/', 1)[1]}.lock"
                    for w in own]
                held = [lk for lk in locks if not stack.enter_context(try_lock(lk))]
                if held:
                    self._skip(entry, f"in use: {held[0].relative_to(self.root)} is held")
                    continue
                entry.paths = [entry.path] + ([wt_dir / entry.name] if own else [])
                if self._remove(entry, self._idle_reason(entry) + "; with its worktrees"):
                    self.removed_paths.update(entry.paths)

    # -- this round's state: b4check verdicts, a watcher's series, coverage maps

    def prune_b4check(self) -> None:
        """A key's verdict is what b4 reads back on its next check of the series: kept until
        unused for --older-than days; a key whose run.lock is held is running."""
        for entry in self._entries("b4check") or []:
            if not entry.path.is_dir() or not self._idle_enough(entry):
                continue
            refs = self._build_refs(entry)
            state = _load_quietly(load_b4check, entry.path) or {}
            why = (self._idle_reason(entry)
                   + f"; {B4CHECK_JSON} says {state.get('status', 'nothing')!r}")
            lock = entry.path / "run.lock"
            # no run.lock: no run ever started there (and a dry run must not make one)
            removed = (self._remove_locked(entry, lock, why) if lock.exists()
                       else self._remove(entry, why))
            if removed:
                self._drop_refs(refs)

    def prune_watch(self) -> None:
        """A finished series (done, superseded) beyond the newest --keep loses its build and
        results dirs (the bulk); its thread, report, reply draft and kcidb.json stay, and the
        state keeps its verdict, so it is never run again. The state file, the lock and a
        queued, running or dispatched series are never touched; nothing is while a watcher
        holds watch.lock (its page reads the results), and prune holds it meanwhile (seconds:
        a watcher started then says another one polls there)."""
        base = self.root / "watch"
        if base.is_symlink():
            self.result.notes.append(f"watch/ is a symlink to {os.readlink(base)}: not followed, "
                                     f"not pruned")
            return
        from ..watch.bot import STATE_FILE
        if not (base / STATE_FILE).is_file():
            return
        with try_lock(base / "watch.lock") as got:
            if not got:
                self.result.notes.append("watch/ not pruned: watch/watch.lock is held by a "
                                         "running zstest watch (stop it to prune its finished "
                                         "series)")
                return
            rows = self._watch_rows(base / STATE_FILE)
            if rows is not None:
                self._prune_watch_series(base, rows)

    def _watch_rows(self, state_file: Path) -> Optional[List[Tuple[str, str, float]]]:
        """(key, status, when) of every series in the watcher's state, read-only."""
        import sqlite3
        try:
            db = sqlite3.connect(f"{state_file.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            try:
                return [(str(k), str(st), float(fin or q or 0)) for k, st, fin, q in db.execute(
                    "SELECT key, status, finished, queued FROM series")]
            finally:
                db.close()
        except sqlite3.Error as exc:
            self.result.errors.append(f"watch/ not pruned: {state_file} cannot be read ({exc})")
            return None

    def _prune_watch_series(self, base: Path, rows: List[Tuple[str, str, float]]) -> None:
        status = {key: st for key, st, _ in rows}
        finished = sorted(((when, key) for key, st, when in rows if st in WATCH_DONE_STATES),
                          reverse=True)
        for rank, (when, key) in enumerate(finished):
            series_dir = base / "series" / key
            # watch --perf: the base's build and both sides' runs; perf.json, the table and
            # the plots stay (the page and the reply read them)
            perf = [series_dir / "perf" / name for name in ("builds", "a", "b")]
            bulk = [p for p in [series_dir / "build", *sorted(series_dir.glob("results*")), *perf]
                    if p.is_dir() and not p.is_symlink()]
            if not bulk or series_dir.is_symlink():
                continue
            entry = CacheEntry("watch", f"series/{key}", bulk, last_used=when)
            for p in bulk:
                entry.size_bytes += self.du.usage(p).size_bytes
            if rank < self.req.keep or (self.req.older_than_days is not None
                                        and self._age_days(entry) < self.req.older_than_days):
                self._keep("watch")
            elif not self._process_user(entry):
                refs = self._build_refs(CacheEntry("watch", key, [series_dir]))
                if self._remove(entry, f"{status[key]} {self._age_days(entry):.1f} days ago, "
                                       f"beyond the newest {self.req.keep}: its build, results and "
                                       f"perf runs go; report, reply draft, verdict and perf "
                                       f"table stay"):
                    self._drop_refs(refs)
        for entry in area_entries("series", base / "series", self.du):
            if status.get(entry.name) in WATCH_LIVE_STATES:
                self._skip(CacheEntry("watch", f"series/{entry.name}", entry.paths,
                                      entry.size_bytes),
                           f"{status[entry.name]}: the watcher's queue or run, never pruned")

    def prune_coverage_maps(self) -> None:
        """Per tree and config, the newest --keep maps stay, and the map of a kept map's base:
        --affected on a series falls back to its base's map."""
        groups: Dict[str, List[Tuple[CacheEntry, dict]]] = {}
        for entry in self._entries("coverage-maps") or []:
            if not entry.name.endswith(".json") or not entry.path.is_file():
                continue
            cmap = _load_quietly(load_coverage_map, entry.path)
            if cmap is None:
                self._skip(entry, "not a coverage map this zstest reads: left alone")
                continue
            group = repr((cmap.source.get("tree"), sorted(cmap.config.items())))
            groups.setdefault(group, []).append((entry, cmap.source))
        for members in groups.values():
            members.sort(key=lambda m: _age_key(m[0]), reverse=True)
            kept = members[:self.req.keep]
            bases = {src.get("base") for _, src in kept if src.get("series")}
            for entry, src in members[self.req.keep:]:
                if not src.get("series") and src.get("commit") in bases:
                    self._skip(entry, "the base of a kept map (--affected falls back to it)")
                elif (self.req.older_than_days is not None
                      and self._age_days(entry) < self.req.older_than_days):
                    self._keep("coverage-maps")
                else:
                    self._remove_locked(entry, self.locks / f"coverage-map-{entry.path.stem}.lock",
                                        f"beyond the newest {self.req.keep} of its tree and config")
            for _ in kept:
                self._keep("coverage-maps")

    # -- ccache

    def prune_ccache(self) -> None:
        ccache_dir = self.root / "ccache"
        if not ccache_dir.is_dir() or ccache_dir.is_symlink():
            return
        exe = proc.which("ccache")
        before = self.du.usage(ccache_dir).size_bytes
        info = {"dir": str(ccache_dir), "before_bytes": before, "after_bytes": before}
        if exe is None:
            self.result.errors.append("ccache is not installed: ccache/ was not cleaned up")
            self.result.ccache = info
            return
        env = {"CCACHE_DIR": str(ccache_dir)}
        limit = proc.run([exe, "--get-config", "max_size"], env=env, timeout=60, check=False)
        info["max_size"] = limit.stdout.strip() if limit.ok else None
        if not self.req.dry_run:
            try:
                proc.run([exe, "-c"], env=env, timeout=1800)
            except proc.CommandError as exc:
                self.result.errors.append(f"ccache -c failed: {exc.tail or exc}")
            info["after_bytes"] = DiskUsage().usage(ccache_dir).size_bytes
        self.result.ccache = info

    def run(self) -> PruneResult:
        areas = list(self.req.areas)
        for area in STAMPED_AREAS:
            if area in areas:
                self.prune_stamped(area)
        if "b4check" in areas:
            self.prune_b4check()
        if "watch" in areas:
            self.prune_watch()
        if "coverage-maps" in areas:
            self.prune_coverage_maps()
        if "images" in areas:
            self.prune_images(self.kept_results_files())
        if "repos" in areas:
            self.prune_repos()
        if "worktrees" in areas:
            self.prune_worktrees()
        if "objs" in areas:
            self.prune_objs()
        if "test-builds" in areas:
            self.prune_test_builds()
        if "ccache" in areas:
            self.prune_ccache()
        return self.result


def prune_cache(req: PruneRequest, root: Optional[Path] = None) -> PruneResult:
    """Remove (or with dry_run list) what req asks for; in-use and `last` entries are skipped."""
    start = time.monotonic()
    result = _Pruner(req, Path(root).resolve() if root else resolved_root()).run()
    result.duration_s = time.monotonic() - start
    return result
