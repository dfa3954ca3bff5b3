"""The cache's own housekeeping: what takes the space (show) and removing old parts (prune).

Sizes are counted like `du`: st_blocks * 512, symlinks never followed, a hard-linked file
once. Prune takes the same flock files the stages take (zstest/cache.py file_lock paths:
locks/worktree-<tree>-<purpose>.lock, locks/objs-<objdir>.lock, locks/image-<digest>.lock,
locks/repo-<tree>.lock, locks/test-build-<name>.lock), without waiting: an entry whose lock
is held is in use, skipped and named. It never deletes outside the cache root (resolved paths
are checked) and never follows a symlink when deleting.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

from . import proc
from .cache import cache_root
from .errors import BadInput
from .manifests import BUILD_JSON, RESULTS_JSON, load_bisect, load_build, load_results

# Every area zstest writes, in the order `cache show` lists them.
AREAS = ("src", "repos", "worktrees", "objs", "ccache", "builds", "results", "bisect", "images",
         "guest-tools", "lore", "test-builds", "accel", "locks")
PRUNABLE_AREAS = ("builds", "results", "bisect", "images", "objs", "worktrees", "ccache", "repos",
                  "test-builds")
DEFAULT_PRUNE_AREAS = ("builds", "results", "bisect", "images")
# Output areas: the newest N are kept; the others go (unless last / in use).
STAMPED_AREAS = ("builds", "results", "bisect")
# Reusable state (objs, worktrees, repos, test-builds): removed only when unused for
# --older-than days (this default when not given).
DEFAULT_IDLE_DAYS = 7.0
DEFAULT_KEEP = 5
IMAGES_KEPT = 3
# An unfinished build/results/bisect dir written to this recently may belong to a live run.
UNFINISHED_GRACE_S = 2 * 3600
_LOADERS = {"builds": load_build, "results": load_results, "bisect": load_bisect}
S_ISDIR = stat.S_ISDIR
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


# ---------------------------------------------------------------- du

@dataclass
class Usage:
    size_bytes: int = 0
    files: int = 0              # every inode seen: files, dirs, symlinks
    newest_mtime: float = 0.0

    def add(self, other: "Usage") -> None:
        self.size_bytes += other.size_bytes
        self.files += other.files
        self.newest_mtime = max(self.newest_mtime, other.newest_mtime)


class DiskUsage:
    """du -s over many paths: hard links counted once across all of them."""

    def __init__(self) -> None:
        self._seen_links: Set[Tuple[int, int]] = set()

    def usage(self, path: Path) -> Usage:
        u = Usage()
        try:
            st = os.lstat(path)
        except OSError:
            return u
        self._count(st, u)
        if stat.S_ISDIR(st.st_mode):
            try:
                fd = os.open(path, _DIR_FLAGS)
            except OSError:
                return u
            try:
                self._walk(fd, u)
            finally:
                os.close(fd)
        return u

    def _count(self, st: os.stat_result, u: Usage) -> None:
        u.files += 1
        if st.st_mtime > u.newest_mtime:
            u.newest_mtime = st.st_mtime
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in self._seen_links:
                return
            self._seen_links.add(key)
        u.size_bytes += st.st_blocks * 512

    def _walk(self, fd: int, u: Usage) -> None:
        # fstatat relative to an open dir fd: no long path lookups, no symlink ever followed.
        # _count is inlined: this loop runs once per file (a worktree has 75k).
        subdirs = []
        size, files, newest, seen = 0, 0, u.newest_mtime, self._seen_links
        try:
            it = os.scandir(fd)
        except OSError:         # removed while we looked (a worktree being cleaned)
            return
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                files += 1
                if st.st_mtime > newest:
                    newest = st.st_mtime
                if S_ISDIR(st.st_mode):
                    subdirs.append(entry.name)
                elif st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                size += st.st_blocks
        u.size_bytes += size * 512
        u.files += files
        u.newest_mtime = newest
        for name in subdirs:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue
            try:
                self._walk(child, u)
            finally:
                os.close(child)


def disk_usage(path: Path) -> Usage:
    """Like `du -s path` (in bytes), plus the file count and the newest mtime inside."""
    return DiskUsage().usage(Path(path))


# ---------------------------------------------------------------- entries

@dataclass
class CacheEntry:
    """One removable unit of an area: a build dir, an objdir with its side files, a worktree."""
    area: str
    name: str                   # relative to the area dir, e.g. "linux-6.1-abc/build"
    paths: List[Path]           # the unit's paths; paths[0] is the main one
    size_bytes: int = 0
    files: int = 0
    last_used: float = 0.0      # newest mtime inside (worktrees: also their git admin files)

    @property
    def path(self) -> Path:
        return self.paths[0]

    def to_json(self) -> dict:
        return {"name": self.name, "path": str(self.path), "size_bytes": self.size_bytes,
                "files": self.files, "last_used": _iso(self.last_used)}


def _real_dirs(path: Path) -> List[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return sorted((e for e in it), key=lambda e: e.name)
    except OSError:
        return []


def area_entries(area: str, area_dir: Path, du: Optional[DiskUsage] = None) -> List[CacheEntry]:
    """The units of area_dir (symlinks such as `last` are not entries), sized."""
    du = du or DiskUsage()
    children = _real_dirs(area_dir)
    units: List[Tuple[str, List[Path]]] = []
    if area == "worktrees":
        for key in children:
            if not key.is_dir(follow_symlinks=False):
                if not key.is_symlink():
                    units.append((key.name, [Path(key.path)]))
                continue
            for wt in _real_dirs(Path(key.path)):
                if not wt.is_symlink():
                    units.append((f"{key.name}/{wt.name}", [Path(wt.path)]))
    elif area == "objs":
        names = {e.name for e in children if e.is_dir(follow_symlinks=False)}
        # linux-...-695e50ec.kconfig/ and .warnings.json belong to objdir linux-...-695e50ec
        dirs = {d for d in names if not any(d.startswith(o + ".") for o in names)}
        owned: Dict[str, List[Path]] = {d: [area_dir / d] for d in dirs}
        for e in children:
            if e.name in dirs or e.is_symlink():
                continue
            owner = next((d for d in dirs if e.name.startswith(d + ".")), None)
            if owner:
                owned[owner].append(Path(e.path))
            else:
                units.append((e.name, [Path(e.path)]))
        units.extend(owned.items())
        units.sort()
    else:
        units = [(e.name, [Path(e.path)]) for e in children if not e.is_symlink()]
    entries = []
    for name, paths in units:
        usage = Usage()
        for p in paths:
            usage.add(du.usage(p))
        entry = CacheEntry(area, name, paths, usage.size_bytes, usage.files, usage.newest_mtime)
        if area == "worktrees":
            entry.last_used = max(entry.last_used, _worktree_admin_mtime(entry.path))
        entries.append(entry)
    return entries


def _worktree_admin_mtime(worktree: Path) -> float:
    """A reset keeps file mtimes, but git rewrites the worktree's index and HEAD on each use."""
    try:
        text = (worktree / ".git").read_text()
    except OSError:
        return 0.0
    if not text.startswith("gitdir:"):
        return 0.0
    admin = Path(text.split(":", 1)[1].strip())
    newest = 0.0
    for name in ("index", "HEAD", "logs/HEAD"):
        with contextlib.suppress(OSError):
            newest = max(newest, os.lstat(admin / name).st_mtime)
    return newest


# ---------------------------------------------------------------- show

@dataclass
class AreaReport:
    name: str
    path: Path
    exists: bool
    size_bytes: int = 0
    files: int = 0
    entries: List[CacheEntry] = field(default_factory=list)
    known: bool = True          # one of AREAS (else found in the cache, written by something else)
    symlink_to: Optional[str] = None   # the area dir is itself a symlink: not followed

    @property
    def count(self) -> int:
        return len(self.entries)


@dataclass
class LastLink:
    """builds/last or results/last: where it points, and whether that is in the cache."""
    link: Path
    target: Optional[str] = None
    exists: bool = False
    inside_cache: bool = False

    def to_json(self) -> dict:
        return {"link": str(self.link), "target": self.target, "exists": self.exists,
                "inside_cache": self.inside_cache}


@dataclass
class CacheReport:
    root: Path
    areas: List[AreaReport]
    last: Dict[str, LastLink]
    total_bytes: int
    total_files: int
    duration_s: float

    def area(self, name: str) -> Optional[AreaReport]:
        return next((a for a in self.areas if a.name == name), None)

    def newest_oldest(self, name: str) -> Tuple[Optional[CacheEntry], Optional[CacheEntry]]:
        area = self.area(name)
        dirs = sorted((e for e in area.entries if e.path.is_dir()), key=_age_key) if area else []
        return (dirs[-1], dirs[0]) if dirs else (None, None)

    def to_json(self) -> dict:
        areas = {}
        for a in self.areas:
            areas[a.name] = {"path": str(a.path), "exists": a.exists, "known": a.known,
                             "size_bytes": a.size_bytes, "count": a.count, "files": a.files,
                             "symlink_to": a.symlink_to}
            if a.name not in ("ccache", "locks"):
                areas[a.name]["entries"] = [e.to_json() for e in a.entries]
        out = {"root": str(self.root), "total_bytes": self.total_bytes,
               "total_files": self.total_files, "duration_s": round(self.duration_s, 3),
               "areas": areas}
        for name in ("builds", "results"):
            newest, oldest = self.newest_oldest(name)
            out[name] = {"last": self.last[name].to_json(),
                         "newest": newest.to_json() if newest else None,
                         "oldest": oldest.to_json() if oldest else None}
        return out


def _age_key(entry: CacheEntry) -> Tuple[float, str]:
    return (entry.last_used, entry.name)


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolved_root() -> Path:
    return cache_root().resolve()


def last_link(root: Path, area: str) -> LastLink:
    link = root / area / "last"
    info = LastLink(link)
    try:
        info.target = os.readlink(link)
    except OSError:
        return info
    target = (link.parent / info.target).resolve()
    info.exists = target.is_dir()
    info.inside_cache = _is_within(target, root)
    return info


def show_cache(root: Optional[Path] = None) -> CacheReport:
    """Size and count of every area of the cache, what the `last` links point to."""
    start = time.monotonic()
    root = Path(root).resolve() if root else resolved_root()
    du = DiskUsage()
    present = {e.name: e for e in _real_dirs(root)}
    names = list(AREAS) + sorted(n for n in present if n not in AREAS)
    areas = []
    for name in names:
        path = root / name
        entry = present.get(name)
        report = AreaReport(name, path, exists=entry is not None, known=name in AREAS)
        if entry is None:
            areas.append(report)
            continue
        if entry.is_symlink():
            report.symlink_to = os.readlink(path)
            areas.append(report)
            continue
        if not entry.is_dir(follow_symlinks=False):
            usage = du.usage(path)
            report.size_bytes, report.files = usage.size_bytes, usage.files
            areas.append(report)
            continue
        report.entries = area_entries(name, path, du)
        own = _dir_own_usage(path, name)
        report.size_bytes = own.size_bytes + sum(e.size_bytes for e in report.entries)
        report.files = own.files + sum(e.files for e in report.entries)
        areas.append(report)
    own = os.lstat(root)      # the root dir's own block, as du counts it
    return CacheReport(root, areas, {a: last_link(root, a) for a in ("builds", "results")},
                       total_bytes=own.st_blocks * 512 + sum(a.size_bytes for a in areas),
                       total_files=1 + sum(a.files for a in areas),
                       duration_s=time.monotonic() - start)


def _dir_own_usage(path: Path, area: str) -> Usage:
    """The blocks of an area dir itself (and worktrees' per-tree dirs), not counted by entries."""
    u = Usage()
    dirs = [path]
    if area == "worktrees":
        dirs += [Path(e.path) for e in _real_dirs(path) if e.is_dir(follow_symlinks=False)]
    for d in dirs:
        with contextlib.suppress(OSError):
            st = os.lstat(d)
            u.size_bytes += st.st_blocks * 512
            u.files += 1
    # Top-level symlinks (last) are not entries but are inodes all the same.
    for e in _real_dirs(path):
        if e.is_symlink():
            with contextlib.suppress(OSError):
                u.size_bytes += e.stat(follow_symlinks=False).st_blocks * 512
                u.files += 1
    return u


def render_report(report: CacheReport) -> str:
    lines = [f"cache: {report.root}  ({human(report.total_bytes)} in {report.total_files} files; "
             f"scanned in {report.duration_s:.1f} s)", "",
             f"  {'area':<14} {'size':>10} {'items':>7} {'files':>9}"]
    for a in report.areas:
        if not a.exists:
            lines.append(f"  {a.name:<14} {'-':>10} {'-':>7} {'-':>9}")
            continue
        label = a.name if a.known else f"{a.name} *"
        if a.symlink_to is not None:
            lines.append(f"  {label:<14} symlink to {a.symlink_to} (not followed)")
            continue
        lines.append(f"  {label:<14} {human(a.size_bytes):>10} {a.count:>7} {a.files:>9}")
    lines.append(f"  {'total':<14} {human(report.total_bytes):>10} {'':>7} {report.total_files:>9}")
    if any(a.exists and not a.known for a in report.areas):
        lines.append("  * not written by zstest itself (tests, other tools); never pruned")
    lines.append("")
    for name in ("builds", "results"):
        link = report.last[name]
        if link.target is None:
            lines.append(f"{name}/last: none")
        else:
            where = "in the cache" if link.inside_cache else "outside the cache"
            state = "" if link.exists else ", missing"
            lines.append(f"{name}/last -> {link.target} ({where}{state})")
        newest, oldest = report.newest_oldest(name)
        if newest:
            lines.append(f"  newest {newest.name} ({_iso(newest.last_used)}), "
                         f"oldest {oldest.name} ({_iso(oldest.last_used)})")
    return "\n".join(lines)


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
            if name == "src":
                raise BadInput("src/ holds Debian's unpacked kernel sources, which zstest treats "
                               "as the user's tree: it is never pruned (delete it by hand if you "
                               "must).")
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
        last = last_link(self.root, area) if area != "bisect" else None
        last_target = ((self.root / area / last.target).resolve()
                       if last is not None and last.target else None)
        dirs = sorted((e for e in entries if e.path.is_dir()), key=_age_key, reverse=True)
        for rank, entry in enumerate(dirs):
            if rank < self.req.keep:
                self._keep(area)
            elif (self.req.older_than_days is not None
                  and self._age_days(entry) < self.req.older_than_days):
                self._keep(area)
            elif last_target is not None and entry.path.resolve() == last_target:
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
        data = _load_quietly(_LOADERS[area], entry.path)
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
        """The refs build.py made to keep a build's patch commits (a bisect has one per step)."""
        refs = []
        for build_dir in [entry.path, *(p.parent for p in entry.path.glob(f"*/build/{BUILD_JSON}"))]:
            manifest = _load_quietly(load_build, build_dir)
            if manifest is None:
                continue
            ref, git_dir = manifest.kernel.keep_ref, manifest.kernel.git_dir
            if (ref and ref.startswith("refs/zstest/builds/")
                    and git_dir and Path(git_dir).is_dir()
                    and _is_within(Path(git_dir).resolve(), self.root)):
                refs.append((Path(git_dir), ref))
        return refs

    def _drop_refs(self, refs: List[Tuple[Path, str]]) -> None:
        """With the build gone its commits need no ref: a later `git gc` may drop them."""
        if self.req.dry_run:
            return
        for git_dir, ref in refs:
            proc.run(["git", "--git-dir", str(git_dir), "update-ref", "-d", ref],
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
                image_dir = Path(image).parent.resolve()
                referenced.setdefault(image_dir, str(results_json.parent))
        real = [e for e in entries if e.path.is_dir() and ".tmp" not in e.name]
        newest = {e.path for e in sorted(real, key=_age_key, reverse=True)[:IMAGES_KEPT]}
        for entry in entries:
            digest = entry.name.split(".tmp")[0]
            if entry.path in newest:
                self._keep("images")
            elif entry.path.resolve() in referenced:
                self._skip(entry, f"used by kept results {referenced[entry.path.resolve()]}")
            elif (self.req.older_than_days is not None
                  and self._age_days(entry) < self.req.older_than_days):
                self._keep("images")
            elif not self._process_user(entry):
                why = (f"not among the newest {IMAGES_KEPT} nor used by a kept results dir"
                       if ".tmp" not in entry.name else "left over from an interrupted image build")
                self._remove_locked(entry, self.locks / f"image-{digest}.lock", why)

    def kept_results_files(self) -> List[Path]:
        """results.json of every results dir that stays (results/, bisect steps, last links)."""
        files = []
        # bisect/<stamp>/<step>/results/ holds each step's run.
        for area, pattern in (("results", f"*/{RESULTS_JSON}"),
                              ("bisect", f"*/*/results/{RESULTS_JSON}")):
            base = self.root / area
            if base.is_dir() and not base.is_symlink():
                for f in base.glob(pattern):
                    top = base / f.relative_to(base).parts[0]
                    if top not in self.removed_paths:
                        files.append(f)
        link = last_link(self.root, "results")
        if link.target:
            files.append((self.root / "results" / link.target) / RESULTS_JSON)
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
            proc.run(["git", "--git-dir", str(git_dir), "worktree", "prune"], timeout=120)
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


def render_prune(result: PruneResult) -> str:
    verb = "would remove" if result.dry_run else "removed"
    lines = []
    for item in result.removed:
        lines.append(f"{verb:<12}  {item.area}/{item.name}  {human(item.size_bytes)}  "
                     f"({item.reason})")
    for item in result.skipped:
        lines.append(f"{'skipped':<12}  {item.area}/{item.name}  {human(item.size_bytes)}  "
                     f"({item.reason})")
    if result.ccache:
        c = result.ccache
        if result.dry_run:
            lines.append(f"{'would run':<12}  ccache -c on ccache/ ({human(c['before_bytes'])}, "
                         f"limit {c.get('max_size')})")
        else:
            lines.append(f"{'ran':<12}  ccache -c on ccache/: {human(c['before_bytes'])} -> "
                         f"{human(c['after_bytes'])}")
    if result.kept:
        lines.append("kept: " + ", ".join(f"{n} in {a}/" for a, n in sorted(result.kept.items())))
    lines.extend(f"note: {n}" for n in result.notes)
    freed = human(result.freed_bytes)
    lines.append(f"{'would free' if result.dry_run else 'freed'} {freed} "
                 f"({len(result.removed)} entries) in {result.duration_s:.1f} s")
    return "\n".join(lines)


# ---------------------------------------------------------------- small helpers

def _load_quietly(load, path: Path):
    """A manifest, or None when it is missing or unreadable: prune judges by what it can read."""
    try:
        return load(path)
    except BadInput:
        return None


def _iso(ts: float) -> Optional[str]:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts)) if ts else None


def human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
