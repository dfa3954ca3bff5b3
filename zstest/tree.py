"""Kernel trees: check them, mirror them into the cache, apply series in a scratch worktree.

The user's tree is never written to. A git tree is cloned with --shared into
the cache (its objects are read through alternates); a plain tree (Debian's
linux-source) is imported once into a cached git repository and re-imported
when its files change. Patches are applied with `git am` in one persistent
worktree per (tree, purpose), reset to the base each time with
`git checkout -f` + `git clean -fdx` so unchanged files keep their mtimes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

from .cache import cache_dir, cache_root, file_lock
from .errors import EXIT_APPLY, ApplyFailed, BadInput, ZstestError
from .fsutil import output_dir, write_text_atomic, writing
from .gitsafe import cache_git_dir, git_env, run_git
from .manifests import APPLY_JSON, save_apply
from .proc import CommandError
from .series.diff import analyze_diff
from .series.model import Patch, Series

log = logging.getLogger("zstest.tree")

GIT_TIMEOUT_S = 1800
AM_TIMEOUT_S = 600
# A full object id (SHA-1 or SHA-256): what an artifact may name as a commit, never a ref or option.
OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# Fixed identity and dates: the same tree content always imports to the same commit.
IMPORT_ENV = {
    "GIT_AUTHOR_NAME": "zstest", "GIT_AUTHOR_EMAIL": "zstest@localhost",
    "GIT_COMMITTER_NAME": "zstest", "GIT_COMMITTER_EMAIL": "zstest@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00+0000", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00+0000",
}
AM_ENV = {"GIT_COMMITTER_NAME": "zstest", "GIT_COMMITTER_EMAIL": "zstest@localhost"}
IMPORTED_REF = "refs/heads/imported"


# ---------------------------------------------------------------- kernel tree

@dataclass
class KernelTree:
    path: Path           # resolved path of the user's tree
    kind: str            # "git" or "plain"
    version: str         # from the top Makefile, e.g. "6.1.158"

    @classmethod
    def open(cls, path: Union[str, Path]) -> "KernelTree":
        p = Path(path).expanduser()
        if not p.exists():
            raise BadInput(f"kernel tree {p} does not exist.")
        if not p.is_dir():
            raise BadInput(f"kernel tree {p} is not a directory.")
        p = p.resolve()
        makefile = p / "Makefile"
        head = makefile.read_text(errors="replace")[:2000] if makefile.is_file() else ""
        missing = [name for name, ok in (
            ("a Makefile with VERSION =", re.search(r"(?m)^VERSION = \d+", head)),
            ("Kconfig", (p / "Kconfig").is_file()),
            ("mm/", (p / "mm").is_dir()),
            ("scripts/kconfig/", (p / "scripts" / "kconfig").is_dir())) if not ok]
        if missing:
            raise BadInput(f"{p} is not a Linux kernel tree (no {', no '.join(missing)}).")
        version = ".".join(re.search(rf"(?m)^{k} = (\S*)", head).group(1)
                           for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL")
                           if re.search(rf"(?m)^{k} = (\S*)", head))
        kind = "git" if (p / ".git").exists() else "plain"
        return cls(p, kind, version)

    @property
    def key(self) -> str:
        digest = hashlib.sha1(str(self.path).encode()).hexdigest()[:10]
        return f"{re.sub(r'[^A-Za-z0-9._-]', '_', self.path.name)}-{digest}"


def is_object_id(value: object) -> bool:
    """value is a full hex object id (40 or 64 digits), so git cannot read it as an option."""
    return isinstance(value, str) and OBJECT_ID.fullmatch(value) is not None


def inside_cache(path: object) -> Optional[Path]:
    """path resolved when it is one of the cache's own repositories (an artifact's git dir)."""
    return cache_git_dir(path)


def cache_git_env() -> dict:
    """The environment gitsafe gives every git (kept for callers that name it)."""
    return git_env()


@contextlib.contextmanager
def git_failures_as(exit_code: int, what: str):
    """A failing or timed-out git inside the block becomes one sentence with the stage's code."""
    try:
        yield
    except CommandError as exc:
        last = exc.tail.strip().splitlines()[-1:] if exc.tail.strip() else []
        reason = f" ({last[0].strip()})" if last else ""
        raise ZstestError(f"{what}: {exc.summary()}{reason}.", exit_code,
                          detail=exc.tail) from None


def _git(args: List[str], *, git_dir: Optional[Path] = None, cwd: Optional[Path] = None,
         env: Optional[dict] = None, check: bool = True, timeout: float = GIT_TIMEOUT_S,
         user_repo: bool = False, trusted: Optional[Path] = None, input: Optional[str] = None):
    """git through gitsafe, on a cache repository or read-only on the user's (user_repo: args
    name it with -C TREE; trusted as the user's own, see gitsafe.git_env)."""
    if user_repo and "-C" in args:
        trusted = Path(args[args.index("-C") + 1])
    return run_git(args, git_dir=git_dir, cwd=cwd, env=env, check=check, timeout=timeout,
                   trusted=trusted, input=input)


def tree_fingerprint(path: Path) -> str:
    """A cheap fingerprint of a plain tree: every file's path, size and mtime."""
    h = hashlib.sha1()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        if root == str(path) and ".git" in dirs:
            dirs.remove(".git")
        for name in sorted(files):
            full = os.path.join(root, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            h.update(f"{full}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_mode}\n".encode())
    return h.hexdigest()


# The keys zstest's own repositories carry (clone --bare --shared, init --bare, _import_plain).
# Anything else (a filter, a diff or merge driver, a hook path, an include) was not written by
# zstest and could make git run a program with names gitsafe cannot pin: the repo is made again.
OWN_CONFIG = re.compile(r"core\.(repositoryformatversion|filemode|bare|logallrefupdates|autocrlf|"
                        r"ignorecase|precomposeunicode|symlinks)|gc\.auto|remote\.origin\.url|"
                        r"extensions\.objectformat")


def foreign_config(git_dir: Path) -> Optional[str]:
    """The first key of git_dir's config that zstest never writes, else None."""
    res = _git(["config", "--file", str(git_dir / "config"), "--no-includes", "--name-only",
                "--list"], check=False)
    if res.returncode != 0 and (git_dir / "config").exists():
        return "(an unreadable config)"
    return next((key for key in res.stdout.split() if not OWN_CONFIG.fullmatch(key.lower())),
                None)


def cached_repo(tree: KernelTree) -> Path:
    """The cache's git repository mirroring tree (created or refreshed); returns its git dir."""
    repo = cache_dir("repos", tree.key)
    git_dir = repo / "git"
    with file_lock(cache_dir("locks") / f"repo-{tree.key}.lock"):
        foreign = foreign_config(git_dir) if (git_dir / "objects").is_dir() else None
        if foreign is not None:
            log.warning("the cache's repository %s has config zstest never writes (%s): "
                        "made again", git_dir, foreign)
            shutil.rmtree(git_dir, ignore_errors=True)   # its worktrees are re-added on use
        if tree.kind == "git":
            if not (git_dir / "objects").is_dir():
                _fresh_dir(git_dir)
                # Read-only on the user's repo: objects are shared through alternates. Run with
                # the cache's isolation: the user's init.templateDir would copy hooks in.
                _git(["clone", "--quiet", "--bare", "--shared", "--", str(tree.path),
                      str(git_dir)], trusted=tree.path)
        else:
            _import_plain(tree, repo, git_dir)
    return git_dir


def _fresh_dir(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)


def _import_plain(tree: KernelTree, repo: Path, git_dir: Path) -> None:
    stamp = repo / "fingerprint"
    fingerprint = tree_fingerprint(tree.path)
    have = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", IMPORTED_REF], git_dir=git_dir,
                check=False).stdout.strip() if (git_dir / "objects").is_dir() else ""
    if have and stamp.is_file() and stamp.read_text().strip() == fingerprint:
        return
    if not (git_dir / "objects").is_dir():
        _fresh_dir(git_dir)
        _git(["init", "--quiet", "--bare", "--", str(git_dir)])
        _git(["config", "core.autocrlf", "false"], git_dir=git_dir)
        _git(["config", "gc.auto", "0"], git_dir=git_dir)
    _stage_all(tree.path, git_dir)
    tree_sha = _git(["write-tree"], git_dir=git_dir).stdout.strip()
    parent_tree = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{have}^{{tree}}"],
                       git_dir=git_dir,
                       check=False).stdout.strip() if have else ""
    if tree_sha != parent_tree:
        args = ["commit-tree", tree_sha, "-m", f"zstest import of {tree.path} ({tree.version})"]
        if have:
            args += ["-p", have]
        commit = _git(args, git_dir=git_dir, env=IMPORT_ENV).stdout.strip()
        _git(["update-ref", IMPORTED_REF, "--end-of-options", commit], git_dir=git_dir)
    stamp.write_text(fingerprint + "\n")


# A name git's line protocols (--stdin-paths, --index-info) would read as another name: a
# control character or a leading quote (C-quoted). Names that are not ASCII are left to git add
# too: the pipe to git is encoded in the locale's encoding, which need not be git's bytes.
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f]|^"')


def _plain_files(top: Path) -> Optional[tuple[list, list]]:
    """(regular files as (path, size, mode), symlinks) under top, .git dirs left out; None when
    a name cannot go through git's line protocols."""
    files, links = [], []
    for root, dirs, names in os.walk(top):
        rel_root = os.path.relpath(root, top)
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in [n for n in names if n != ".git"] + [
                d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = name if rel_root == "." else os.path.join(rel_root, name)
            if not rel.isascii() or _UNSAFE_NAME.search(rel):
                return None
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                return None
            if stat.S_ISLNK(st.st_mode):
                links.append(rel)
            elif stat.S_ISREG(st.st_mode):   # a FIFO or device is not content: git add skips it
                files.append((rel, st.st_size, "100755" if st.st_mode & stat.S_IXUSR else "100644"))
    return files, links


def _stage_all(top: Path, git_dir: Path) -> None:
    """The index of git_dir := every file of the plain tree top, as `git add --all` would stage
    it; a first import hashes and compresses with one git per core (git add is one thread: 30 s
    of a cold build for the 6.1 tree here)."""
    # A re-import goes through git add, which re-hashes only what changed since the index's stat
    # data (none after a parallel import: the first re-import hashes all, as git add always did);
    # so does a name the line protocols cannot carry. -f: Debian's .gitignore ignores `/*`.
    listing = None if (git_dir / "index").exists() else _plain_files(top)
    if listing is None:
        _git(["--work-tree", str(top), "add", "--all", "--force", "."], git_dir=git_dir, cwd=top)
        return
    files, links = listing
    workers = max(1, min(os.cpu_count() or 1, 4, len(files)))
    shares: list[list] = [[] for _ in range(workers)]
    loads = [0] * workers
    for entry in sorted(files, key=lambda f: -f[1]):      # largest first, to the lightest share
        i = loads.index(min(loads))
        shares[i].append(entry)
        loads[i] += entry[1]

    def hash_share(share: list) -> list[str]:
        out = _git(["hash-object", "-w", "--no-filters", "--stdin-paths"], git_dir=git_dir,
                   cwd=top, input="".join(f"{path}\n" for path, _, _ in share)).stdout.split()
        if len(out) != len(share):
            raise ZstestError(f"importing {top}: git hash-object gave {len(out)} ids for "
                              f"{len(share)} files.", EXIT_APPLY)
        return out

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        ids = list(pool.map(hash_share, shares))
    index_info = "".join(f"{mode} {oid}\t{path}\n" for share, oids in zip(shares, ids)
                         for (path, _, mode), oid in zip(share, oids))
    _git(["update-index", "--add", "--index-info"], git_dir=git_dir, input=index_info)
    if links:   # update-index reads a link's target itself
        _git(["--work-tree", str(top), "update-index", "--add", "--stdin"], git_dir=git_dir,
             cwd=top, input="".join(f"{path}\n" for path in links))


def resolve_base(tree: KernelTree, git_dir: Path, base: Optional[str]) -> str:
    """The commit to apply on: the user's HEAD (git) or the latest import (plain), or base."""
    if tree.kind == "git":
        rev = base or "HEAD"
        # Resolved in the user's repo (read-only); its objects are visible through alternates.
        out = _git(["-C", str(tree.path), "rev-parse", "--verify", "--quiet", "--end-of-options",
                    f"{rev}^{{commit}}"], check=False, user_repo=True)
    else:
        rev = base or IMPORTED_REF
        out = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
                   git_dir=git_dir, check=False)
    sha = out.stdout.strip()
    if out.returncode != 0 or not is_object_id(sha):
        raise BadInput(f"base {rev} is not a commit in {tree.path}.")
    return sha


# ---------------------------------------------------------------- worktree

@dataclass
class Worktree:
    path: Path
    base_commit: str
    tree_kind: str        # "git" or "plain"
    source_tree: Path
    git_dir: Path
    purpose: str = "build"
    notes: List[str] = field(default_factory=list)
    _lock: Optional[contextlib.ExitStack] = field(default=None, repr=False)
    series_base: Optional[str] = None    # the series' base-commit: line, as written
    base_from: str = "HEAD"              # --base, base-commit, HEAD or import
    base_note: str = ""                  # one line: which base, and why

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "Worktree":
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def head(self) -> str:
        return _git(["rev-parse", "HEAD"], cwd=self.path).stdout.strip()

    def reset(self, rev: Optional[str] = None) -> None:
        """Back to rev (default: the base): only files that differ are rewritten."""
        with git_failures_as(EXIT_APPLY, f"resetting the scratch worktree {self.path} failed"):
            _clean_worktree(self.path, rev or self.base_commit)


# A kernel checkout is ~75k files: one writer per core took a cold worktree from 19 s to 7 s here.
PARALLEL_CHECKOUT = ["-c", "checkout.workers=0"]


def worktree_path(tree: KernelTree, purpose: str) -> Path:
    return cache_root() / "worktrees" / tree.key / purpose


def _clean_worktree(path: Path, rev: str) -> None:
    def git_path(name: str) -> Path:
        return path / _git(["rev-parse", "--git-path", name], cwd=path).stdout.strip()

    # A git killed mid-way (am past its deadline on a loaded host, a Ctrl-C) leaves its locks;
    # the caller holds this worktree's lock and every git zstest ran in it is gone: stale.
    for lock in ("index.lock", "HEAD.lock"):
        git_path(lock).unlink(missing_ok=True)
    rebase_apply = git_path("rebase-apply")
    if rebase_apply.exists():
        _git(["am", "--abort"], cwd=path, check=False)
        # An am session that cannot abort (killed mid-way) must not block the next run.
        shutil.rmtree(rebase_apply, ignore_errors=True)
    # git 2.39's checkout takes no --end-of-options: rev is an object id or HEAD, never an option.
    if rev != "HEAD" and not is_object_id(rev):
        raise BadInput(f"{rev!r} is not a full commit id.")
    _git(PARALLEL_CHECKOUT + ["checkout", "--quiet", "--force", "--detach", rev], cwd=path)
    _git(["clean", "-fdxq"], cwd=path)


def choose_base(kt: KernelTree, git_dir: Path, base: Optional[str],
                series_base: Optional[str]) -> tuple[str, str, str]:
    """(commit, how, one line) for a series: --base wins, then its base-commit when the tree
    has it, else the tree's HEAD (git) or import (plain)."""
    fallback = "HEAD" if kt.kind == "git" else "import"
    if base:
        sha = resolve_base(kt, git_dir, base)
        note = (f"base {sha[:12]} (--base {base}; the series' base-commit {series_base} is "
                f"not used)" if series_base else "")
        return sha, "--base", note
    if series_base and kt.kind == "git" and re.fullmatch(r"[0-9a-f]{7,64}", series_base):
        out = _git(["-C", str(kt.path), "rev-parse", "--verify", "--quiet", "--end-of-options",
                    f"{series_base}^{{commit}}"], check=False, user_repo=True)
        sha = out.stdout.strip()
        if out.returncode == 0 and is_object_id(sha):
            return sha, "base-commit", f"applying on the series' base-commit {sha[:12]}"
    sha = resolve_base(kt, git_dir, None)
    if not series_base:
        return sha, fallback, ""
    lacks = (f"{kt.path} does not have it" if kt.kind == "git"
             else f"{kt.path} is not a git tree")
    what = "its HEAD" if kt.kind == "git" else "its imported copy"
    return sha, fallback, (f"the series' base-commit {series_base} is not used ({lacks}): "
                           f"applying on {what} {sha[:12]}")


def prepare_worktree(tree: Union[str, Path, KernelTree], base: Optional[str] = None,
                     purpose: str = "build", series_base: Optional[str] = None) -> Worktree:
    """The locked scratch worktree of (tree, purpose), reset to base (else the series'
    base-commit when the git tree has it, else HEAD / the import). Release it when done."""
    kt = tree if isinstance(tree, KernelTree) else KernelTree.open(tree)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", purpose):
        raise BadInput(f"worktree purpose {purpose!r} must be a plain name.")
    # git failing on the user's tree (a broken .git) is bad input; on the cache's copy, the
    # tree stage failed (exit 3, as a patch that does not apply).
    with git_failures_as(2, f"git cannot read the kernel tree {kt.path}"):
        git_dir = cached_repo(kt)
        base_commit, base_from, base_note = choose_base(kt, git_dir, base, series_base)
    path = worktree_path(kt, purpose)
    lock = contextlib.ExitStack()
    lock.enter_context(file_lock(cache_dir("locks") / f"worktree-{kt.key}-{purpose}.lock"))
    try:
        with git_failures_as(EXIT_APPLY, f"preparing the scratch worktree {path} failed"):
            if (path / ".git").is_file():
                try:
                    _clean_worktree(path, base_commit)
                except CommandError:
                    _remove_worktree(git_dir, path)
            if not (path / ".git").is_file():
                _remove_worktree(git_dir, path)
                path.parent.mkdir(parents=True, exist_ok=True)
                _git(PARALLEL_CHECKOUT + ["worktree", "add", "--quiet", "--force", "--detach",
                                          str(path), "--end-of-options", base_commit],
                     git_dir=git_dir)
            wt = Worktree(path=path, base_commit=base_commit, tree_kind=kt.kind,
                          source_tree=kt.path, git_dir=git_dir, purpose=purpose, _lock=lock,
                          series_base=series_base, base_from=base_from, base_note=base_note)
            if kt.kind == "git":
                dirty = _git(["--no-optional-locks", "-C", str(kt.path), "status", "--porcelain",
                              "--untracked-files=no"], check=False, user_repo=True).stdout.strip()
                if dirty:
                    wt.notes.append(f"{kt.path} has uncommitted changes; they are not in the worktree "
                                    f"(base is the commit {base_commit[:12]}).")
            return wt
    except BaseException:
        lock.close()
        raise


def forget_tree(tree: Union[str, Path, KernelTree]) -> None:
    """Drop the cache's repository and worktrees of tree (the user's tree is not touched)."""
    kt = tree if isinstance(tree, KernelTree) else KernelTree.open(tree)
    with file_lock(cache_dir("locks") / f"repo-{kt.key}.lock"):
        for path in (cache_root() / "worktrees" / kt.key, cache_root() / "repos" / kt.key):
            if path.exists():
                shutil.rmtree(path)


def _remove_worktree(git_dir: Path, path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    _git(["worktree", "prune"], git_dir=git_dir, check=False)


# ---------------------------------------------------------------- apply

@dataclass
class PatchApply:
    index: int
    subject: str
    status: str                      # applied, applied-3way, failed
    commit: Optional[str] = None
    failed_files: List[str] = field(default_factory=list)
    failed_hunks: List[str] = field(default_factory=list)
    message: str = ""                # git's own text
    duration_s: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ApplyResult:
    worktree: Worktree
    patches: List[PatchApply]
    ok: bool
    duration_s: float
    series: Optional[Series] = None
    problems: List[str] = field(default_factory=list)
    interrupted: bool = False      # Ctrl-C or SIGTERM stopped it; patches holds what was done

    def to_dict(self) -> dict:
        wt = self.worktree
        status = "interrupted" if self.interrupted else "ok" if self.ok else "failed"
        d = {"status": status, "duration_s": round(self.duration_s, 3),
             "kernel": {"tree": str(wt.source_tree), "kind": wt.tree_kind,
                        "base": wt.base_commit},
             "worktree": {"path": str(wt.path), "purpose": wt.purpose,
                          "git_dir": str(wt.git_dir), "notes": wt.notes},
             "problems": self.problems,
             "patches": [p.to_dict() for p in self.patches]}
        if self.series is not None:
            d["series"] = {k: v for k, v in self.series.to_dict().items() if k != "patches"}
            d["series"].update(base_used=wt.base_commit, base_from=wt.base_from,
                               base_note=wt.base_note)
        return d


def _check_safe(patch: Patch) -> None:
    """Exit 2 before git am runs unless what git would apply from the mail (git's own mailsplit
    and mailinfo, attachments included) stays inside the tree and is what zstest lists."""
    from .series.gitview import check_patch
    check_patch(patch)


def apply_patch(wt: Worktree, patch: Patch) -> PatchApply:
    """`git am --3way` one patch on the worktree's HEAD; on failure abort and explain."""
    _check_safe(patch)
    with git_failures_as(EXIT_APPLY, f"applying patch {patch.index}/{patch.total} "
                                     f"{patch.subject!r} in {wt.path} failed"):
        return _apply_patch(wt, patch)


def _apply_patch(wt: Worktree, patch: Patch) -> PatchApply:
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zstest-am-") as tmp:
        mbox = Path(tmp) / "patch.mbox"
        mbox.write_bytes(patch.raw)
        # on_line merges stderr into stdout, so git's errors stay in their place.
        try:
            res = run_git(["am", "--3way", "--committer-date-is-author-date", "--", str(mbox)],
                          cwd=wt.path, env=AM_ENV, check=False,
                          timeout=AM_TIMEOUT_S, on_line=lambda line: None)
        except CommandError:
            # a timed-out am leaves its session behind: the next reset aborts it
            _clean_worktree(wt.path, "HEAD")
            raise
        message = _strip_hints(res.stdout + res.stderr)
        if res.returncode == 0:
            status = "applied-3way" if "3-way merge" in message else "applied"
            return PatchApply(patch.index, patch.subject, status, commit=wt.head(),
                              message=message, duration_s=time.monotonic() - start)
        _git(["am", "--abort"], cwd=wt.path, check=False)
        files, hunks, detail = _explain_failure(wt, Path(tmp), mbox)
        _clean_worktree(wt.path, "HEAD")
    if detail and detail not in message:
        message = message.rstrip() + "\n" + detail
    return PatchApply(patch.index, patch.subject, "failed", failed_files=files,
                      failed_hunks=hunks, message=message, duration_s=time.monotonic() - start)


AM_RESUME_ADVICE = ("When you have resolved", "If you prefer to skip", "To restore the original",
                    "hint:")


def _strip_hints(text: str) -> str:
    # We always abort, so git's advice on how to continue the am session does not apply.
    return "\n".join(l for l in text.splitlines() if not l.startswith(AM_RESUME_ADVICE)).strip()


def _explain_failure(wt: Worktree, tmp: Path, mbox: Path):
    """Which files and hunks do not apply: git's own `apply --reject --verbose`, on a clean HEAD."""
    diff_file, msg_file = tmp / "diff", tmp / "msg"
    with open(mbox, "rb") as fh:
        info_text = fh.read().decode("utf-8", "replace")
    # git mailinfo decodes the mail exactly as git am does.
    run_git(["mailinfo", str(msg_file), str(diff_file)], cwd=wt.path, input=info_text,
            check=False, timeout=60)
    diff_text = diff_file.read_text(errors="replace") if diff_file.is_file() else ""
    info = analyze_diff(diff_text)
    res = _git(["apply", "--reject", "--verbose", "--", str(diff_file)], cwd=wt.path, check=False,
               timeout=600)
    out = (res.stdout + res.stderr).splitlines()
    files: List[str] = []
    hunks: List[str] = []
    current = None
    for line in out:
        m = re.match(r"^Applying patch (.+?) with \d+ reject", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^Rejected hunk #(\d+)\.", line)
        if m and current:
            if current not in files:
                files.append(current)
            header = next((h.header for h in info.hunks
                           if h.file == current and h.number == int(m.group(1))), "")
            hunks.append(f"{current}: hunk #{m.group(1)} {header}".rstrip())
            continue
        m = re.match(r"^error: (.+?): (No such file or directory|does not exist in index)$", line)
        if m:
            name = m.group(1)
            if name not in files:
                files.append(name)
            n = sum(1 for h in info.hunks if h.file == name)
            hunks.append(f"{name}: all {n} hunk(s), the file does not exist in the tree")
            continue
        m = re.match(r"^error: patch failed: (.+):(\d+)$", line)
        if m and m.group(1) not in files:
            files.append(m.group(1))
    detail = "\n".join(l for l in out if l.startswith("error:")
                       and l != "error: while searching for:")
    return files, hunks, detail


def apply_series(series: Series, tree: Union[str, Path, KernelTree], base: Optional[str] = None,
                 out: Optional[Path] = None, stop_on_failure: bool = True, *,
                 purpose: str = "build", allow_gaps: bool = False) -> ApplyResult:
    """Apply every patch of series in order on a scratch worktree of tree.

    Returns with the worktree still locked (call result.worktree.release()).
    Raises ApplyFailed (exit 3) at the first patch that does not apply, and
    BadInput (exit 2) when the series has a gap and allow_gaps is False.
    With out, apply.json is there from the start and rewritten after every patch: a full disk
    or a kill part-way leaves the patches done so far.
    """
    start = time.monotonic()
    if out is not None:
        out = output_dir(out, "apply.json to")
    try:
        if out is not None:     # inside the try: a SIGTERM while it is written still says so
            write_apply_status(out, "running", tree, series, 0.0)
        for patch in series.patches:
            _check_safe(patch)
        wt = prepare_worktree(tree, base, purpose, series_base=series.base_commit)
    except KeyboardInterrupt:
        if out is not None:
            _quietly(write_apply_status, out, "interrupted", tree, series,
                     time.monotonic() - start)
        raise
    except ZstestError as exc:
        if out is not None:     # refused or no worktree: apply.json says so, not "running"
            _quietly(write_apply_status, out, "failed", tree, series, time.monotonic() - start,
                     exc.message)
        raise
    try:
        results: List[PatchApply] = []
        try:
            for patch in series.patches:
                pa = apply_patch(wt, patch)
                results.append(pa)
                if out is not None:
                    write_apply_json(ApplyResult(wt, results, False, time.monotonic() - start,
                                                 series, list(series.problems)), out,
                                     status="running")
                if pa.status == "failed" and stop_on_failure:
                    break
        except KeyboardInterrupt:
            if out is not None:
                _quietly(write_apply_json, ApplyResult(wt, results, False, time.monotonic() - start,
                                                       series, list(series.problems),
                                                       interrupted=True), out)
            raise
        ok = all(p.status != "failed" for p in results)
        result = ApplyResult(wt, results, ok, time.monotonic() - start, series,
                             list(series.problems))
        if out is not None:
            write_apply_json(result, out)
        failed = next((p for p in results if p.status == "failed"), None)
        if failed is not None and stop_on_failure:
            raise _apply_failed(series, failed, result)
        if series.missing and not allow_gaps:
            missing = ", ".join(f"{i}/{series.total}" for i in series.missing)
            raise BadInput(f"the series has a gap: {missing} missing; an incomplete series is "
                           f"not a valid result (pass --allow-gaps to accept it).", result=result)
        return result
    except BaseException:
        wt.release()
        raise


def _quietly(write, *args) -> None:
    """A state file written while Ctrl-C/SIGTERM unwinds: a full disk must not hide the 130."""
    try:
        write(*args)
    except ZstestError:
        pass


def _apply_failed(series: Series, failed: PatchApply, result: ApplyResult) -> ApplyFailed:
    files = failed.failed_files
    where = ", ".join(files[:3]) + (f" and {len(files) - 3} more files" if len(files) > 3 else "")
    where = where or "see git's message"
    sentence = (f"patch {failed.index}/{series.total} {failed.subject!r} does not apply "
                f"to {result.worktree.source_tree} at {result.worktree.base_commit[:12]} ({where})")
    if series.missing:
        sentence += (f"; note the series is missing "
                     f"{', '.join(f'{i}/{series.total}' for i in series.missing)}")
    detail = "\n".join(["failed hunks:"] + [f"  {h}" for h in failed.failed_hunks]
                       if failed.failed_hunks else [])
    detail = (detail + "\ngit says:\n" if detail else "git says:\n") + \
        "\n".join(f"  {l}" for l in failed.message.splitlines())
    return ApplyFailed(sentence + ".", detail=detail, result=result)


def write_apply_status(out: Path, status: str, tree, series: Optional[Series],
                       duration_s: float, problem: str = "") -> None:
    """apply.json before the worktree is ready (running, interrupted, failed): no patch yet."""
    source = tree.path if isinstance(tree, KernelTree) else Path(str(tree))
    problems = (list(series.problems) if series else []) + ([problem] if problem else [])
    data = {"status": status, "duration_s": round(duration_s, 3),
            "kernel": {"tree": str(source)}, "problems": problems, "patches": []}
    if series is not None:
        data["series"] = {k: v for k, v in series.to_dict().items() if k != "patches"}
    with writing(out / APPLY_JSON, APPLY_JSON):
        save_apply(out, data)


def write_apply_json(result: ApplyResult, out: Path, status: Optional[str] = None) -> Path:
    """apply.json and apply.log of result (status overrides its own: running part-way)."""
    out = output_dir(out, "apply.json to")
    target = out / APPLY_JSON
    data = result.to_dict()
    if status:
        data["status"] = status
    with writing(target, APPLY_JSON):
        save_apply(out, data)
    with writing(out / "apply.log", "apply.log"):
        log_text = "".join(f"== {p.index} {p.subject}: {p.status}\n{p.message}\n\n"
                           for p in result.patches)
        write_text_atomic(out / "apply.log", log_text)
    return target
