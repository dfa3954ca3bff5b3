"""The cache's areas and entries and what they take on disk (du-like: st_blocks, no symlink
followed, hard links once): `show_cache()` -> CacheReport."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from ..cache import cache_root
from ..errors import BadInput
from ..manifests import load_bisect, load_build, load_results


# Every area zstest writes, in the order `cache show` lists them.
AREAS = ("src", "repos", "worktrees", "objs", "ccache", "builds", "results", "bisect", "images",
         "guest-tools", "sysroots", "lore", "perf", "b4check", "watch", "coverage-maps",
         "mutate", "shell", "test-builds", "git-isolation", "accel", "locks")
PRUNABLE_AREAS = ("builds", "results", "bisect", "perf", "images", "objs", "worktrees", "ccache",
                  "repos", "test-builds", "b4check", "watch", "coverage-maps")
DEFAULT_PRUNE_AREAS = ("builds", "results", "bisect", "perf", "images")
# Output areas: the newest N are kept; the others go (unless last / in use). perf/ holds
# `compare --perf` out dirs, finished when perf.json is written.
STAMPED_AREAS = ("builds", "results", "bisect", "perf")
# Reusable state (objs, worktrees, repos, test-builds, b4check's verdicts): removed only when
# unused for --older-than days (this default when not given).
DEFAULT_IDLE_DAYS = 7.0
# Areas that are never pruned, and why (--area NAME is refused with this sentence).
NEVER_PRUNED = {
    "src": "src/ holds Debian's unpacked kernel sources, which zstest treats as the user's tree: "
           "it is never pruned (delete it by hand if you must).",
    "git-isolation": "git-isolation/ holds the empty hooks dir, the templates and reader.git that "
                     "every git zstest runs goes through (a few KiB, in use by any running "
                     "zstest): it is never pruned.",
}
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
    resolved: Optional[Path] = None      # the target, when it resolves (no loop)

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
    target = safe_resolve(link.parent / info.target)
    if target is None:          # a symlink loop: nothing there
        return info
    info.resolved = target
    info.exists = target.is_dir()
    info.inside_cache = _is_within(target, root)
    return info


def safe_resolve(path: Path) -> Optional[Path]:
    """path resolved, or None when it cannot be (a symlink loop: RuntimeError on Python 3.11)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return None


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
