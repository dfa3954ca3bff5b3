"""Issue 26 findings 1 and 7: git never runs what a repository's config or attributes name.

Real git repositories, real patches applied by the CLI, real subprocesses; no mocks. A planted
setting writes a marker file when git honours it; each test first proves the plant is live
(plain git does run it), then that zstest's decode, report and cache prune run nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BASE_C = "int zs;\n"
PATCHED_C = "int zs;\nint zs_migrated;\n"
WARN = "[    5.1] WARNING: CPU: 0 PID: 1 at mm/zsmalloc.c:2 zs_page_migrate+0x1a3/0x5f0\n"
PLAIN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
PLAIN_ENV.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                  "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                  "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


def git(*args, cwd=None, check=True) -> str:
    return subprocess.run(["git", *map(str, args)], cwd=cwd, check=check, capture_output=True,
                          text=True, env=PLAIN_ENV).stdout.strip()


def zstest(*args, cache: Path, home: Path, timeout=180) -> subprocess.CompletedProcess:
    env = {**PLAIN_ENV, "ZSTEST_CACHE": str(cache), "HOME": str(home), "PYTHONPATH": str(REPO)}
    for key in [k for k in env if k.startswith("GIT_")]:
        del env[key]
    home.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "zstest.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def two_commits(git_dir: Path, work: Path) -> tuple[str, str]:
    """A repository at git_dir (work tree work): a base commit and one that adds line 2."""
    (work / "mm").mkdir(parents=True)
    git_dir.parent.mkdir(parents=True, exist_ok=True)
    git("init", "-q", "--separate-git-dir", git_dir, cwd=work)
    (work / "mm" / "zsmalloc.c").write_text(BASE_C)
    git("add", ".", cwd=work)
    git("commit", "-qm", "base", cwd=work)
    base = git("rev-parse", "HEAD", cwd=work)
    (work / "mm" / "zsmalloc.c").write_text(PATCHED_C)
    git("commit", "-qam", "zsmalloc: count migrated pages", cwd=work)
    return base, git("rev-parse", "HEAD", cwd=work)


def plant(git_dir: Path, marker: Path, keys=None) -> None:
    """Every program-running setting a repository can carry, each touching marker."""
    run = f"touch {marker}; cat"
    script = git_dir / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n")
    script.chmod(0o755)
    hooks = git_dir / "evil-hooks"
    hooks.mkdir(exist_ok=True)
    for hook in ("reference-transaction", "post-checkout", "pre-auto-gc", "post-index-change"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (hooks / hook).chmod(0o755)
    settings = {
        "core.fsmonitor": str(script), "core.hooksPath": str(hooks),
        "core.pager": run, "pager.blame": run, "pager.log": run,
        "diff.external": str(script), "diff.evil.textconv": run, "diff.evil.command": str(script),
        "filter.evil.process": str(script), "filter.evil.smudge": run, "filter.evil.clean": run,
        "filter.evil.required": "true", "merge.evil.driver": f"touch {marker}; false",
        "uploadpack.packObjectsHook": str(script), "core.alternateRefsCommand": run,
        "core.sshCommand": str(script), "credential.helper": f"!touch {marker}",
        "gc.auto": "1", "core.editor": str(script), "gpg.program": str(script),
        "commit.gpgSign": "true",
    }
    for key, value in settings.items():
        if keys is None or key in keys:
            git("config", "--file", git_dir / "config", key, value)
    (git_dir / "info").mkdir(exist_ok=True)
    (git_dir / "info" / "attributes").write_text("* diff=evil filter=evil merge=evil\n")


def build_and_results(tmp_path: Path, git_dir: Path, base: str, commit: str,
                      worktree: Path = None) -> Path:
    """A build.json naming git_dir and the patch commit, and a results dir whose test logged a
    WARN at the line that commit added."""
    build = tmp_path / "build"
    build.mkdir()
    (build / "build.json").write_text(json.dumps({
        "status": "ok",
        "kernel": {"tree": str(tmp_path), "base": base, "version": "6.1.0",
                   "git_dir": str(git_dir), "worktree": str(worktree or git_dir)},
        "series": {"source": "p.mbox", "revision": 1, "total": 1, "applied_prefix": 1,
                   "patches": [{"index": 1, "subject": "zsmalloc: count migrated pages",
                                "apply": "applied", "build": "ok", "commit": commit}]},
        "artifacts": {}}))
    results = tmp_path / "results"
    results.mkdir()
    (results / "results.json").write_text(json.dumps({
        "schema": 1, "status": "failed", "kernel": {"build_dir": str(build)},
        "tests": [{"name": "test_x", "status": "failed",
                   "splats": [{"kind": "warning", "title": "WARNING", "text": WARN}]}],
        "splats": []}))
    return results


def age(path: Path, seconds: float = 30 * 86400) -> None:
    """Every mtime under path set to `seconds` ago: idle enough for any prune."""
    when = os.stat(path).st_mtime - seconds
    for root, dirs, files in os.walk(path, topdown=False):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (when, when), follow_symlinks=False)
    os.utime(path, (when, when))


# ---------------------------------------------------------------- finding 1, end to end

def _tiny_kernel(path: Path) -> Path:
    (path / "mm").mkdir(parents=True)
    (path / "scripts" / "kconfig").mkdir(parents=True)
    (path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n")
    (path / "Kconfig").write_text("# tiny\n")
    (path / "scripts" / "kconfig" / "Makefile").write_text("# tiny\n")
    (path / "mm" / "zsmalloc.c").write_text(BASE_C)
    git("init", "-q", "-b", "main", cwd=path)
    git("add", ".", cwd=path)
    git("commit", "-qm", "base", cwd=path)
    return path


def _bare_repo_patch(tmp_path: Path, kernel: Path, marker: Path) -> tuple[Path, str, str]:
    """A git binary patch that adds a bare repository (evil.git/, its config and attributes
    planted) to the tree, as an attacker would send it; and the repository's two commits."""
    evil_work = tmp_path / "evil-work"
    evil_git = tmp_path / "evil.git"
    base, commit = two_commits(evil_git, evil_work)
    git("config", "--file", evil_git / "config", "core.bare", "true")
    plant(evil_git, marker, keys={"diff.evil.textconv", "core.fsmonitor", "filter.evil.smudge",
                                  "filter.evil.clean", "filter.evil.required"})
    sender = tmp_path / "sender"
    git("clone", "-q", kernel, sender)
    files = [p for p in evil_git.rglob("*") if p.is_file()]
    for path in files:
        target = sender / "evil.git" / path.relative_to(evil_git)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
        target.chmod(path.stat().st_mode)
    # every file a git binary patch (loose objects can look like text to git)
    (sender / ".git" / "info" / "attributes").write_text("evil.git/** binary\n")
    git("add", "-f", "evil.git", cwd=sender)
    git("commit", "-qm", "mm: add a test fixture", cwd=sender)
    out = tmp_path / "patches"
    git("format-patch", "-q", "--binary", "-1", "-o", out, cwd=sender)
    return next(out.iterdir()), base, commit


def test_a_repository_planted_by_a_patch_is_never_read_as_the_tree_git_dir(tmp_path):
    """Finding 1: a bare repository applied into the scratch worktree by `series apply`, named by
    a crafted build.json: `decode` and `report` ran its diff.<x>.textconv (command execution)."""
    cache, home, marker = tmp_path / "cache", tmp_path / "home", tmp_path / "EXECUTED"
    kernel = _tiny_kernel(tmp_path / "linux")
    mbox, base, commit = _bare_repo_patch(tmp_path, kernel, marker)
    applied = zstest("series", "apply", mbox, "--kernel", kernel, "--out", tmp_path / "out",
                     cache=cache, home=home)
    assert applied.returncode == 0, applied.stderr
    worktree = Path(json.loads((tmp_path / "out" / "apply.json").read_text())["worktree"]["path"])
    planted = worktree / "evil.git"
    assert (planted / "info" / "attributes").is_file() and str(planted).startswith(str(cache))
    assert not marker.exists()
    # the plant is live: plain git blame in it runs the textconv
    git("--git-dir", planted, "blame", "-L", "2,2", commit, "--", "mm/zsmalloc.c")
    assert marker.exists()
    marker.unlink()
    results = build_and_results(tmp_path, planted, base, commit, worktree=planted)
    for command in ("decode", "report"):
        proc = zstest(command, results, cache=cache, home=home)
        assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
        assert not marker.exists(), f"zstest {command} ran the planted repository's textconv"
    decoded = zstest("decode", results, cache=cache, home=home).stdout
    assert "not one of the zstest cache's repositories: not read" in decoded


# ---------------------------------------------------------------- every key, the cache's own repo

@pytest.fixture
def cache_repo(tmp_path):
    """One of the cache's own repositories (repos/<tree>/git) with every setting planted, a
    build and results naming it, and a worktree and a kept build ref for prune to act on."""
    cache = tmp_path / "cache"
    git_dir = cache / "repos" / "linux-0123456789" / "git"
    base, commit = two_commits(git_dir, tmp_path / "src")
    marker = tmp_path / "EXECUTED"
    results = build_and_results(tmp_path, git_dir, base, commit)
    git("--git-dir", git_dir, "worktree", "add", "-q", "--detach",
        cache / "worktrees" / "linux-0123456789" / "apply", commit)
    plant(git_dir, marker)
    return cache, git_dir, results, marker, commit


def test_plain_git_runs_the_planted_settings(cache_repo, tmp_path):
    """The control: without zstest's isolation these settings do run (blame's textconv, the
    hooks of update-ref), so the next test's silence means something."""
    cache, git_dir, _, marker, commit = cache_repo
    # (the planted filter process is no real filter: git then fails, after running it)
    git("--git-dir", git_dir, "blame", "-L", "2,2", commit, "--", "mm/zsmalloc.c", check=False)
    assert marker.exists()
    marker.unlink()
    git("--git-dir", git_dir, "update-ref", "refs/x", commit, check=False)
    assert marker.exists()


def test_decode_and_report_run_nothing_a_repository_names(cache_repo, tmp_path):
    """Finding 1: decode's blame/log/diff/cat-file and report on a repository carrying every
    program-running setting: nothing runs."""
    cache, git_dir, results, marker, commit = cache_repo
    home = tmp_path / "home"
    proc = zstest("decode", results, cache=cache, home=home)
    assert not marker.exists(), "decode ran a planted setting"
    assert proc.returncode == 0, proc.stderr
    # the git side did run: the WARN's line is blamed on the patch
    assert "patch 1 changed this line" in proc.stdout, proc.stdout
    proc = zstest("report", results, cache=cache, home=home)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert not marker.exists(), "report ran a planted setting"


def test_cache_prune_runs_nothing_a_repository_names(cache_repo, tmp_path):
    """Finding 7: `cache prune`'s update-ref -d ran the repository's hooks (no isolated env);
    its worktree prune too: nothing runs."""
    cache, git_dir, results, marker, commit = cache_repo
    home = tmp_path / "home"
    # a finished build whose kept ref lives in this repository, and an idle worktree
    kept = cache / "builds" / "linux-6.1-old"
    kept.mkdir(parents=True)
    ref = "refs/zstest/builds/linux-6.1-old-0123456789"
    git("--git-dir", git_dir, "-c", "core.hooksPath=/nonexistent", "update-ref", ref, commit)
    (kept / "build.json").write_text(json.dumps({
        "status": "ok", "kernel": {"git_dir": str(git_dir), "keep_ref": ref}}))
    for path in (kept, cache / "worktrees" / "linux-0123456789" / "apply",
                 git_dir / "worktrees" / "apply"):
        age(path)
    proc = zstest("cache", "prune", "--area", "builds", "--area", "worktrees", "--keep", "0",
                  "--json", cache=cache, home=home)
    assert proc.returncode == 0, proc.stderr
    assert not kept.exists()
    assert not (cache / "worktrees" / "linux-0123456789" / "apply").exists()
    assert not (git_dir / "worktrees" / "apply").exists(), "git worktree prune did not run"
    assert subprocess.run(["git", "--git-dir", git_dir, "rev-parse", "--verify", "-q", ref],
                          env=PLAIN_ENV, capture_output=True).returncode != 0, "ref not dropped"
    assert not marker.exists(), "cache prune ran a planted setting"


def test_build_json_may_name_only_the_cache_repositories(tmp_path, monkeypatch):
    """A git dir nested in a scratch worktree, a symlink to it, or any other cache path is not
    one of the cache's repositories."""
    from zstest.gitsafe import cache_git_dir, cache_worktree
    cache = tmp_path / "cache"
    monkeypatch.setenv("ZSTEST_CACHE", str(cache))
    own = cache / "repos" / "linux-0123456789" / "git"
    nested = cache / "worktrees" / "linux-0123456789" / "build" / "evil.git"
    for path in (own, nested):
        path.mkdir(parents=True)
    (cache / "repos" / "link").mkdir()
    (cache / "repos" / "link" / "git").symlink_to(nested)
    assert cache_git_dir(str(own)) == own.resolve()
    assert cache_git_dir(str(nested)) is None
    assert cache_git_dir(str(cache / "repos" / "link" / "git")) is None
    assert cache_git_dir(str(cache / "repos" / "linux-0123456789")) is None
    assert cache_git_dir(str(own / ".." / ".." / ".." / "worktrees")) is None
    assert cache_git_dir(["not", "a", "path"]) is None and cache_git_dir("") is None
    assert cache_worktree(str(nested.parent)) == nested.parent.resolve()
    assert cache_worktree(str(nested)) is None


def test_inherited_git_variables_never_reach_zstest_git(tmp_path, monkeypatch):
    """A GIT_DIR or GIT_EXTERNAL_DIFF in the user's shell must not redirect zstest's git."""
    from zstest.gitsafe import run_git
    monkeypatch.setenv("ZSTEST_CACHE", str(tmp_path / "cache"))
    other = tmp_path / "other"
    git("init", "-q", "--bare", other)
    monkeypatch.setenv("GIT_DIR", str(other))
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", "/bin/false")
    mine = tmp_path / "mine"
    git("init", "-q", mine)
    out = run_git(["rev-parse", "--absolute-git-dir"], cwd=mine).stdout.strip()
    assert out == str(mine / ".git")


# ---------------------------------------------------------------- one place

# "git" (or a GIT constant) as the first word of a list or tuple, across line breaks
GIT_ARGV = re.compile(r"""[\[(]\s*(?:["']git["']|GIT)\s*[,\])]""")


def test_no_module_but_gitsafe_puts_git_in_an_argv():
    """The class fix: every git of zstest goes through zstest/gitsafe.py."""
    offenders = []
    for path in sorted((REPO / "zstest").rglob("*.py")):
        if path.name == "gitsafe.py":
            continue
        text = path.read_text()
        for m in GIT_ARGV.finditer(text):
            if text[max(0, m.start() - 5):m.start()] == "_tool":
                continue        # doctor's _tool("git", ...): is a git installed; runs none
            line = text.count("\n", 0, m.start()) + 1
            offenders.append(f"{path.relative_to(REPO)}:{line}: {m.group(0)!r}")
    assert offenders == []
    # the check sees what it is for
    for argv in ('run(["git", "blame"])', "proc.run(['git'])", 'run([\n    "git",\n    "am"])',
                 'run(("git", "log"))'):
        assert GIT_ARGV.search(argv), argv


# ---------------------------------------------------------------- the cache's own repositories

def test_a_cache_repository_with_config_zstest_never_writes_is_made_again(tmp_path):
    """A filter, merge driver or fsmonitor planted in the cache's own repository (names gitsafe
    cannot pin) would run on the next apply's checkout: the repository is made again instead."""
    cache, home, marker = tmp_path / "cache", tmp_path / "home", tmp_path / "EXECUTED"
    kernel = _tiny_kernel(tmp_path / "linux")
    sender = tmp_path / "sender"
    git("clone", "-q", kernel, sender)
    (sender / ".gitattributes").write_text("* filter=evil diff=evil merge=evil\n")
    (sender / "mm" / "zsmalloc.c").write_text(PATCHED_C)
    git("add", ".", cwd=sender)
    git("commit", "-qm", "mm: count migrated pages", cwd=sender)
    git("format-patch", "-q", "-1", "-o", tmp_path / "p", cwd=sender)
    mbox = next((tmp_path / "p").iterdir())
    first = zstest("series", "apply", mbox, "--kernel", kernel, cache=cache, home=home)
    assert first.returncode == 0, first.stderr
    git_dir = next((cache / "repos").iterdir()) / "git"
    plant(git_dir, marker, keys={"filter.evil.smudge", "filter.evil.clean", "filter.evil.process",
                                 "merge.evil.driver", "core.fsmonitor", "diff.evil.textconv"})
    # the plant is live: a plain checkout in a worktree of that repository runs the filter
    probe = tmp_path / "probe"
    git("--git-dir", git_dir, "worktree", "add", "-q", "--detach", probe,
        git("rev-parse", "HEAD", cwd=kernel), check=False)
    assert marker.exists()
    marker.unlink()
    git("--git-dir", git_dir, "worktree", "remove", "--force", probe, check=False)
    again = zstest("series", "apply", mbox, "--kernel", kernel, cache=cache, home=home)
    assert again.returncode == 0, again.stderr
    assert not marker.exists(), "a planted filter ran on apply"
    from zstest.tree import OWN_CONFIG
    keys = git("config", "--file", git_dir / "config", "--list", "--name-only").split()
    assert all(OWN_CONFIG.fullmatch(k) for k in keys), keys
