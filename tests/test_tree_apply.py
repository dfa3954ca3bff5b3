"""`zstest series apply` on Debian's plain linux-source-6.1 and on a git tree made from it.

The user's tree must be identical before and after: files, and for a git tree
HEAD, branches, status and everything under .git.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from zstest.cache import default_kernel_tree
from zstest.manifests import load_apply
from zstest.series import load_series
from zstest.tree import (KernelTree, apply_patch, apply_series, cached_repo, forget_tree,
                         prepare_worktree)

FIXTURES = REPO / "kernel-patches" / "fixtures"
CONTENT_DIRS = ("mm", "drivers/block/zram", "include/linux")


def git(*args, cwd):
    return subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def tree_state(path: Path) -> str:
    """Every file's path, size and mtime, plus the content of the dirs patches touch and of .git."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        rel_root = os.path.relpath(root, path)
        for name in sorted(files):
            full = os.path.join(root, name)
            st = os.lstat(full)
            h.update(f"{full}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            rel = os.path.join(rel_root, name)
            if rel.startswith(CONTENT_DIRS + (".git",)) or rel_root == ".":
                if os.path.isfile(full) and not os.path.islink(full):
                    with open(full, "rb") as fh:
                        h.update(hashlib.sha256(fh.read()).digest())
    if (path / ".git").exists():
        for cmd in (["status", "--porcelain"], ["show-ref"], ["rev-parse", "HEAD"],
                    ["symbolic-ref", "-q", "HEAD"], ["worktree", "list"]):
            h.update(subprocess.run(["git", "--no-optional-locks", *cmd], cwd=path,
                                    capture_output=True).stdout)
    return h.hexdigest()


@pytest.fixture(scope="session")
def plain_61() -> Path:
    """Debian's linux-source-6.1 from the cache, imported once into the cached git repo."""
    tree = default_kernel_tree("6.1")
    cached_repo(KernelTree.open(tree))
    return tree


@pytest.fixture(scope="session")
def git_61(plain_61, tmp_path_factory) -> Path:
    """A small git kernel tree: the top files, mm/, scripts/, zram and include/linux of 6.1."""
    path = tmp_path_factory.mktemp("gittree") / "linux"
    path.mkdir()
    for entry in plain_61.iterdir():
        if entry.is_file():
            shutil.copy2(entry, path / entry.name)
    for sub in ("mm", "scripts", "drivers/block/zram", "include/linux"):
        shutil.copytree(plain_61 / sub, path / sub, symlinks=True)
    ident = ["-c", "user.name=T", "-c", "user.email=t@example.org"]
    git("init", "-q", "-b", "master", cwd=path)
    git("add", "--force", "--all", ".", cwd=path)   # Debian's top .gitignore ignores /*
    git(*ident, "commit", "-q", "-m", "6.1 subset", cwd=path)
    git("branch", "mywork", cwd=path)
    yield path
    forget_tree(path)


def apply_cli(src, tree, *extra):
    r = run_zstest("series", "apply", src, "--kernel", tree, *extra, timeout=1200)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_good_series_applies_plain_tree_untouched(plain_61, tmp_path):
    before = tree_state(plain_61)
    out = tmp_path / "out"
    r = apply_cli(FIXTURES / "good-3", plain_61, "--out", out)
    assert r.returncode == 0, r.stderr
    data = json.loads((out / "apply.json").read_text())
    assert data["status"] == "ok"
    assert [p["status"] for p in data["patches"]] == ["applied"] * 3
    assert all(len(p["commit"]) == 40 for p in data["patches"])
    typed = load_apply(out)     # the manifests' reader takes what tree.py wrote
    assert data["schema"] == typed.schema == 1 and typed.status == "ok"
    assert [p.commit for p in typed.patches] == [p["commit"] for p in data["patches"]]
    wt = Path(data["worktree"]["path"])
    assert "zs_objs_to_pages" in (wt / "mm" / "zsmalloc.c").read_text()
    assert tree_state(plain_61) == before


def test_conflict_exit_3_names_file_and_hunk(plain_61, tmp_path):
    before = tree_state(plain_61)
    out = tmp_path / "out"
    r = apply_cli(FIXTURES / "conflict", plain_61, "--out", out)
    assert r.returncode == 3, r.stderr
    # the error's first line (a "waiting for <lock>" warning may come before it when another
    # test holds the tree's worktree lock)
    first = next(line for line in r.stderr.splitlines() if line.startswith("zstest: error:"))
    assert first.startswith("zstest: error: patch 1/1 'zram: reword two device messages' does not apply")
    assert "drivers/block/zram/zram_drv.c" in first
    assert "drivers/block/zram/zram_drv.c: hunk #2 @@ -1981,7 +1981,7 @@" in r.stderr
    assert "error: patch failed: drivers/block/zram/zram_drv.c:1981" in r.stderr
    data = json.loads((out / "apply.json").read_text())
    assert data["status"] == "failed"
    p = data["patches"][0]
    assert p["status"] == "failed" and p["failed_files"] == ["drivers/block/zram/zram_drv.c"]
    assert load_apply(out).patches[0].failed_files == ["drivers/block/zram/zram_drv.c"]
    # The scratch worktree is left clean: no am session, no .rej, no modified file.
    wt = Path(data["worktree"]["path"])
    assert git("status", "--porcelain", "--ignored", cwd=wt) == ""
    assert not (wt / "drivers/block/zram/zram_drv.c.rej").exists()
    assert not (wt / git("rev-parse", "--git-path", "rebase-apply", cwd=wt).strip()).exists()
    assert tree_state(plain_61) == before


def test_v4_fails_at_first_patch(plain_61, shared_series):
    before = tree_state(plain_61)
    r = apply_cli(shared_series / "nonlru-migration-v4.mbox", plain_61)
    assert r.returncode == 3, r.stderr
    first = next(line for line in r.stderr.splitlines() if line.startswith("zstest: error:"))
    assert "patch 2/12 'mm: migrate: support non-lru movable page migration' does not apply" in first
    assert "missing 1/12, 3/12" in first
    assert "error: Documentation/filesystems/Locking: No such file or directory" in r.stderr
    assert "2/12 failed" in r.stdout and "4/12" not in r.stdout
    assert tree_state(plain_61) == before


def test_gap_exit_2_unless_allowed(plain_61, tmp_path):
    gap = tmp_path / "gap"
    gap.mkdir()
    for p in sorted((FIXTURES / "good-3").glob("*.patch")):
        if not p.name.startswith("0002"):
            (gap / p.name).write_bytes(p.read_bytes())
    r = apply_cli(gap, plain_61)
    assert r.returncode == 2
    assert "the series has a gap: 2/3 missing" in r.stderr.splitlines()[0]
    r = apply_cli(gap, plain_61, "--allow-gaps")
    assert r.returncode == 0, r.stderr


def test_outside_tree_refused_before_git(plain_61, tmp_path):
    patch = sorted((FIXTURES / "good-3").glob("*.patch"))[0].read_text()
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "0001-evil.patch").write_text(patch.replace(" a/mm/zsmalloc.c", " a/../zsmalloc.c")
                                         .replace(" b/mm/zsmalloc.c", " b/../zsmalloc.c"))
    r = apply_cli(evil, plain_61)
    assert r.returncode == 2
    assert "writes outside the tree (../zsmalloc.c)" in r.stderr


def test_bad_tree_paths(tmp_path):
    r = apply_cli(FIXTURES / "good-3", tmp_path / "nope")
    assert r.returncode == 2 and "does not exist" in r.stderr.splitlines()[0]
    (tmp_path / "Makefile").write_text("all:\n")
    r = apply_cli(FIXTURES / "good-3", tmp_path)
    assert r.returncode == 2
    assert "is not a Linux kernel tree" in r.stderr.splitlines()[0]


def test_reset_keeps_mtimes_of_unchanged_files(plain_61):
    series = load_series(str(FIXTURES / "good-3"))
    with prepare_worktree(plain_61, purpose="apply") as wt:
        assert wt.tree_kind == "plain"
        base = wt.base_commit
        slab = wt.path / "mm" / "slab.c"
        zs_before = (wt.path / "mm" / "zsmalloc.c").read_bytes()
        slab_mtime = slab.stat().st_mtime_ns
        results = [apply_patch(wt, p) for p in series.patches]
        assert [r.status for r in results] == ["applied"] * 3
        (wt.path / "stray.o").write_text("build junk\n")
    with prepare_worktree(plain_61, purpose="apply") as wt:
        assert wt.head() == base
        assert (wt.path / "mm" / "zsmalloc.c").read_bytes() == zs_before
        assert slab.stat().st_mtime_ns == slab_mtime
        assert not (wt.path / "stray.o").exists()


def test_apply_series_api_and_git_tree_untouched(git_61, tmp_path):
    before = tree_state(git_61)
    series = load_series(str(FIXTURES / "good-3"))
    result = apply_series(series, git_61, out=tmp_path, purpose="apply")
    try:
        assert result.ok and result.worktree.tree_kind == "git"
        assert result.worktree.base_commit == git("rev-parse", "HEAD", cwd=git_61).strip()
        assert [p.status for p in result.patches] == ["applied"] * 3
        assert git("log", "--format=%s", "-3", cwd=result.worktree.path).splitlines() == \
            [p.subject for p in reversed(series.patches)]
    finally:
        result.worktree.release()
    r = apply_cli(FIXTURES / "conflict", git_61, "--base", "mywork")
    assert r.returncode == 3
    assert tree_state(git_61) == before


def small_plain_tree(plain_61, tree):
    """A plain kernel tree small enough to import in seconds: top files, mm/, scripts/kconfig."""
    tree.mkdir()
    for entry in plain_61.iterdir():
        if entry.is_file():
            shutil.copy2(entry, tree / entry.name)
    for sub in ("mm", "scripts/kconfig"):
        shutil.copytree(plain_61 / sub, tree / sub, symlinks=True)
    return tree


def test_plain_tree_change_is_reimported(plain_61, tmp_path):
    """A plain tree is imported once; a later edit of it shows up as a new base commit."""
    tree = small_plain_tree(plain_61, tmp_path / "linux-plain")
    try:
        with prepare_worktree(tree, purpose="apply") as wt:
            first = wt.base_commit
            assert (wt.path / ".gitignore").read_text() == (tree / ".gitignore").read_text()
            assert (wt.path / "mm" / "zsmalloc.c").is_file()
        with prepare_worktree(tree, purpose="apply") as wt:
            assert wt.base_commit == first
        zs = tree / "mm" / "zsmalloc.c"
        zs.write_text(zs.read_text() + "/* local edit */\n")
        with prepare_worktree(tree, purpose="apply") as wt:
            assert wt.base_commit != first
            assert (wt.path / "mm" / "zsmalloc.c").read_text().endswith("/* local edit */\n")
            assert git("rev-parse", "HEAD~1", cwd=wt.path).strip() == first
    finally:
        forget_tree(tree)


def test_worktree_lock_serialises_runs(plain_61, tmp_path):
    """Two runs never share a worktree: the second waits until the first releases it."""
    import sys
    import time
    tree = small_plain_tree(plain_61, tmp_path / "linux-lock")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom zstest.tree import prepare_worktree\n"
         f"wt = prepare_worktree({str(tree)!r}, purpose='locktest')\n"
         "print('held', flush=True)\ntime.sleep(3)\nwt.release()\n"],
        stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with prepare_worktree(tree, purpose="locktest"):
            waited = time.monotonic() - start
        assert waited > 1.5
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
        forget_tree(tree)
