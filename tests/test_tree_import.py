"""Importing a plain tree: the parallel staging gives exactly the tree `git add --all` gives.

The import hashes a plain tree's files with one `git hash-object` per core instead of one
single-threaded `git add`; the commit every build and coverage map is keyed by must not change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from zstest.cache import default_kernel_tree
from zstest.tree import _plain_files, _stage_all


def git(*args, git_dir: Path, **kw) -> str:
    # bytes, not text=True: universal newlines would turn a name's \r into \n
    return subprocess.run(["git", "--git-dir", str(git_dir), *args], check=True,
                          capture_output=True, **kw).stdout.decode("utf-8", "surrogateescape")


def tree_by_git_add(top: Path, tmp: Path) -> str:
    """The tree `git add --all --force .` stages (the import before the parallel one)."""
    g = tmp / "by-add.git"
    subprocess.run(["git", "init", "-q", "--bare", str(g)], check=True)
    git("--work-tree", str(top), "add", "--all", "--force", ".", git_dir=g, cwd=top)
    return git("write-tree", git_dir=g).strip()


def tree_by_stage_all(top: Path, tmp: Path, name: str = "by-stage.git") -> tuple[str, Path]:
    g = tmp / name
    if not g.exists():
        subprocess.run(["git", "init", "-q", "--bare", str(g)], check=True)
    _stage_all(top, g)
    return git("write-tree", git_dir=g).strip(), g


def odd_tree(top: Path) -> Path:
    """Every kind of entry a plain tree can hold."""
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "Makefile").write_text("VERSION = 6\n")
    (top / "empty").write_bytes(b"")
    (top / "sub" / "deeper" / "big.bin").write_bytes(os.urandom(3 << 20))
    script = top / "sub" / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    (top / "sub" / "group-exec-only").write_text("x\n")
    (top / "sub" / "group-exec-only").chmod(0o654)   # git looks at the owner's x bit only
    (top / "name with spaces.c").write_text("int a;\n")
    (top / "link-to-file").symlink_to("Makefile")
    (top / "link-to-dir").symlink_to("sub/deeper")
    (top / "dangling").symlink_to("no/such/file")
    (top / ".gitignore").write_text("/*\n")          # Debian's tree ignores everything too
    for i in range(200):                              # enough files for every worker to get some
        (top / "sub" / f"f{i:03}.c").write_text(f"int f{i};\n" * (i + 1))
    return top


def test_odd_tree_stages_as_git_add_does(tmp_path):
    top = odd_tree(tmp_path / "tree")
    staged, g = tree_by_stage_all(top, tmp_path)
    assert staged == tree_by_git_add(top, tmp_path)
    entries = git("ls-files", "-s", git_dir=g)
    assert "120000" in entries.split("\n")[[l.endswith("\tlink-to-dir")
                                            for l in entries.split("\n")].index(True)]
    assert any(l.startswith("100755") and l.endswith("\tsub/run.sh") for l in entries.split("\n"))


def test_real_kernel_dirs_with_dir_symlinks_stage_as_git_add_does(tmp_path):
    """scripts/dtc/include-prefixes holds symlinks to directories: the first version of the
    parallel staging lost them (os.walk lists them among the dirs)."""
    src = default_kernel_tree("6.1")
    top = tmp_path / "linux"
    for sub in ("scripts/dtc", "mm", "drivers/block/zram"):
        shutil.copytree(src / sub, top / sub, symlinks=True)
    shutil.copy2(src / "Makefile", top / "Makefile")
    links = _plain_files(top)[1]
    assert "scripts/dtc/include-prefixes/arm64" in links
    assert tree_by_stage_all(top, tmp_path)[0] == tree_by_git_add(top, tmp_path)


def test_a_reimport_drops_what_the_tree_lost(tmp_path):
    """The first import stages in parallel; a re-import (the index exists) goes through git add,
    which re-hashes only the files whose stat data changed."""
    top = odd_tree(tmp_path / "tree")
    first, g = tree_by_stage_all(top, tmp_path)
    (top / "sub" / "f007.c").unlink()
    (top / "link-to-dir").unlink()
    (top / "sub" / "new.c").write_text("int n;\n")
    second, _ = tree_by_stage_all(top, tmp_path)
    assert second != first
    assert second == tree_by_git_add(top, tmp_path)
    names = git("ls-files", git_dir=g).split("\n")
    assert "sub/f007.c" not in names and "link-to-dir" not in names and "sub/new.c" in names


@pytest.mark.parametrize("name", ["new\nline.c", '"quoted.c', "carriage\r", "tab\there",
                                  "ünïcode-名前.h"])
def test_a_name_the_line_protocols_cannot_carry_goes_through_git_add(tmp_path, name):
    top = odd_tree(tmp_path / "tree")
    (top / name).write_text("odd\n")      # at the top: a line that starts with a quote
    assert _plain_files(top) is None
    staged, g = tree_by_stage_all(top, tmp_path)
    assert staged == tree_by_git_add(top, tmp_path)
    assert name in git("ls-files", "-z", git_dir=g).split("\0")


def test_a_fifo_is_not_read_and_a_nested_git_dir_is_left_out(tmp_path):
    """A FIFO in the tree would block a reader forever; git add skips it, so does the import."""
    top = odd_tree(tmp_path / "tree")
    os.mkfifo(top / "sub" / "fifo")
    nested = top / "sub" / "vendored"
    nested.mkdir()
    (nested / "kept.c").write_text("int k;\n")
    (nested / ".git").mkdir()
    (nested / ".git" / "config").write_text("[core]\n")
    files, _ = _plain_files(top)
    paths = {f[0] for f in files}
    assert "sub/fifo" not in paths and "sub/vendored/kept.c" in paths
    assert not any("/.git/" in p for p in paths)
    staged, g = tree_by_stage_all(top, tmp_path)       # returns: nothing waited on the FIFO
    names = git("ls-files", git_dir=g).split("\n")
    assert "sub/vendored/kept.c" in names and "sub/fifo" not in names
