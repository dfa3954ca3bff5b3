"""Where kernel developers work: the kernel tree chosen (option > cwd > env > file > Debian's),
zstest.toml / config.toml as click defaults, `zstest config show`, bad files -> exit 2.

Real files, real git, the real CLI in a subprocess; no kernel build (the fake trees make the
config step fail at once, after build.json recorded which tree was used).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import run_zstest


def make_tree(path: Path, git: bool = False) -> Path:
    """The smallest thing zstest takes for a kernel tree (Makefile with VERSION, Kconfig, mm/,
    arch/x86, scripts/kconfig/); its make fails at once."""
    (path / "mm").mkdir(parents=True)
    (path / "arch" / "x86").mkdir(parents=True)
    (path / "scripts" / "kconfig").mkdir(parents=True)
    (path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n"
                                   "%:\n\t@echo 'not a real kernel' >&2; exit 2\n")
    (path / "Kconfig").write_text("config ZSMALLOC\n\tbool \"zsmalloc\"\n")
    (path / "mm" / "zsmalloc.c").write_text("/* zsmalloc */\n")
    if git:
        subprocess.run(["git", "init", "-q", str(path)], check=True)
        subprocess.run(["git", "-C", str(path), "add", "."], check=True)
        subprocess.run(["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t",
                        "commit", "-q", "-m", "base"], check=True)
    return path


@pytest.fixture
def env(tmp_path):
    """An empty cache and config home, and no ZSTEST_KERNEL from the caller."""
    (tmp_path / "xdg").mkdir()
    return {"ZSTEST_CACHE": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
            "ZSTEST_KERNEL": ""}


def show(cwd, env, *args) -> dict:
    proc = run_zstest("config", "show", "--json", *args, cwd=cwd, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return {row["key"]: (row["value"], row["source"]) for row in json.loads(proc.stdout)["settings"]}


def built_tree(build_dir: Path) -> str:
    return json.loads((build_dir / "build.json").read_text())["kernel"]["tree"]


# ---------------------------------------------------------------- the kernel tree

def test_run_inside_a_git_kernel_tree_uses_it(tmp_path, env):
    tree = make_tree(tmp_path / "linux", git=True)
    head = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout
    proc = run_zstest("run", "--build-out", tmp_path / "b", cwd=tree, env=env, timeout=300)
    # The fake tree cannot configure: exit 4 after build.json named the tree it used.
    assert proc.returncode == 4, proc.stderr
    assert built_tree(tmp_path / "b") == str(tree.resolve())
    assert "Debian" not in proc.stderr
    # The user's tree is never modified.
    assert subprocess.run(["git", "-C", str(tree), "status", "--porcelain"], capture_output=True,
                          text=True, check=True).stdout == ""
    assert subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout == head


def test_debian_default_says_so_in_one_line(tmp_path, env):
    # A stand-in for the unpacked tarball in the test's own cache: nothing is unpacked.
    make_tree(tmp_path / "cache" / "src" / "linux-source-6.1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_zstest("build", "--out", tmp_path / "b", cwd=elsewhere, env=env, timeout=300)
    assert proc.returncode == 4, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if "Debian" in l]
    assert lines == [f"zstest: using Debian's linux-source-6.1 (no --kernel, and {elsewhere} "
                     f"is not a kernel tree)"]
    assert built_tree(tmp_path / "b") == str(tmp_path / "cache" / "src" / "linux-source-6.1")


def test_kernel_precedence_option_cwd_env_file(tmp_path, env):
    cwd_tree = make_tree(tmp_path / "cwd-tree")
    env_tree = make_tree(tmp_path / "env-tree")
    file_tree = make_tree(tmp_path / "file-tree")
    opt_tree = make_tree(tmp_path / "opt-tree")
    plain = tmp_path / "plain"
    plain.mkdir()
    user_file = tmp_path / "xdg" / "zstest" / "config.toml"
    user_file.parent.mkdir()
    user_file.write_text(f'kernel = "{file_tree}"\n')

    assert show(plain, env)["kernel"] == (str(file_tree), str(user_file))
    env2 = dict(env, ZSTEST_KERNEL=str(env_tree))
    assert show(plain, env2)["kernel"] == (str(env_tree), "env ZSTEST_KERNEL")
    assert show(cwd_tree, env2)["kernel"] == (str(cwd_tree.resolve()), "cwd")
    assert show(cwd_tree, env2, "--kernel", opt_tree)["kernel"] == (str(opt_tree), "option")
    # A Debian version names Debian's tree.
    user_file.write_text('kernel = "6.12"\n')
    value, source = show(plain, env)["kernel"]
    assert value.startswith("Debian's linux-source-6.12") and source == str(user_file)
    user_file.unlink()
    value, source = show(plain, env)["kernel"]
    assert value.startswith("Debian's linux-source-6.1 ") and source == "default"


def test_series_apply_defaults_to_the_current_tree(tmp_path, env):
    tree = make_tree(tmp_path / "linux", git=True)
    (tree / "mm" / "zsmalloc.c").write_text("/* zsmalloc, patched */\n")
    patch = subprocess.run(["git", "-C", str(tree), "diff"], capture_output=True, text=True,
                           check=True).stdout
    subprocess.run(["git", "-C", str(tree), "checkout", "-q", "--", "."], check=True)
    mbox = tmp_path / "one.patch"
    mbox.write_text("From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
                    "From: Dev <dev@example.org>\nDate: Tue, 1 Dec 2026 00:00:00 +0000\n"
                    "Subject: [PATCH] mm/zsmalloc: a comment\n\n---\n" + patch + "-- \n2.39.0\n")
    proc = run_zstest("series", "apply", mbox, "--out", tmp_path / "apply", cwd=tree, env=env,
                      timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"tree:      {tree.resolve()}" in proc.stdout
    assert (tree / "mm" / "zsmalloc.c").read_text() == "/* zsmalloc */\n"


# ---------------------------------------------------------------- config files

def test_tree_file_beats_user_file_and_options_beat_both(tmp_path, env):
    tree = make_tree(tmp_path / "linux")
    user_file = tmp_path / "xdg" / "zstest" / "config.toml"
    user_file.parent.mkdir()
    user_file.write_text('suite = "from-user"\nmemory = 512\ntimeout = 30\n'
                         'lore_url = "http://127.0.0.1:1/all"\n')
    (tree / "zstest.toml").write_text('suite = "from-tree"\nconfig = ["base", "my.config"]\n'
                                      '[build]\njobs = 1\n')
    rows = show(tree, env)
    assert rows["suite"] == ("from-tree", str(tree / "zstest.toml"))
    assert rows["memory"] == ("512", str(user_file))
    assert rows["timeout"] == ("30", str(user_file))
    assert rows["config"] == (f"base, {tree / 'my.config'}", str(tree / "zstest.toml"))
    assert rows["build.jobs"] == ("1", str(tree / "zstest.toml"))
    assert rows["accel"] == ("auto", "default")
    # The file's suite reaches the command (click's default_map) ...
    proc = run_zstest("bisect", "--series", "x.mbox", cwd=tree, env=env, timeout=60)
    assert proc.returncode == 2 and "unknown suite 'from-tree'" in proc.stderr, proc.stderr
    # ... and an explicit option wins over it.
    proc = run_zstest("bisect", "--series", "x.mbox", "--suite", "typed", cwd=tree, env=env,
                      timeout=60)
    assert proc.returncode == 2 and "unknown suite 'typed'" in proc.stderr, proc.stderr
    # --kernel elsewhere: that tree's zstest.toml is the tree file, not cwd's.
    other = make_tree(tmp_path / "other")
    (other / "zstest.toml").write_text('suite = "from-other"\n')
    assert show(tree, env, "--kernel", other)["suite"] == ("from-other", str(other / "zstest.toml"))


def test_human_config_show_names_every_source(tmp_path, env):
    (tmp_path / "zstest.toml").write_text('memory = 768\n')
    proc = run_zstest("config", "show", cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"memory       = 768  ({tmp_path / 'zstest.toml'})" in proc.stdout
    assert "suite        = default  (default)" in proc.stdout
    assert "kernel       = Debian's linux-source-6.1" in proc.stdout


@pytest.mark.parametrize("text, words", [
    ('memroy = 512\n', ["unknown key 'memroy'"]),
    ('memory = "lots"\n', ["key 'memory' must be an integer"]),
    ('accel = "warp"\n', ["key 'accel'", "warp"]),
    ('config = [1, 2]\n', ["key 'config' must be a string or a list of strings"]),
    ('[build]\njobz = 2\n', ["unknown key build.'jobz'", "no option --jobz"]),
    ('[build]\njobs = "many"\n', ["key 'build.jobs'"]),
    ('[nosuch]\nx = 1\n', ["unknown key 'nosuch'"]),
    ('memory = \n', ["is not valid TOML"]),
])
def test_bad_file_is_exit_2_naming_file_and_key(tmp_path, env, text, words):
    (tmp_path / "zstest.toml").write_text(text)
    proc = run_zstest("build", "--help", cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zstest: error: "), proc.stderr
    assert str(tmp_path / "zstest.toml") in lines[0]
    for w in words:
        assert w in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("content, words", [
    (b'[build]\njobs = [1, 2]\n', ["key 'build.jobs'", "list"]),
    (b'[build]\nquiet = [1]\n', ["key 'build.quiet'", "list"]),
    (b'[build]\njobs = {a = 1}\n', ["key 'build.jobs'", "dict"]),
    # found by tests/test_fuzz_settings.py: a path option given a list of numbers
    (b'[boot-and-run]\njson = [0]\n', ["key 'boot-and-run.json'"]),
    (b'kernel = "~nosuchuser/x"\n', ["key 'kernel'", "~nosuchuser/x"]),
    (b'[series.apply]\nout = "~nosuchuser/y"\n', ["key 'series.apply.out'", "~nosuchuser/y"]),
    (b'kernel = "\xff\xfe"\n', ["is not UTF-8"]),
])
def test_wrong_type_or_encoding_breaks_no_command_with_a_traceback(tmp_path, env, content, words):
    """A value click cannot take (a list for an int or bool), an unknown ~user, a non-UTF-8 file:
    one sentence and exit 2 naming file and key, also for `cache show` (issue 26, finding 5)."""
    (tmp_path / "zstest.toml").write_bytes(content)
    proc = run_zstest("cache", "show", cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zstest: error: "), proc.stderr
    assert str(tmp_path / "zstest.toml") in lines[0]
    for w in words:
        assert w in lines[0]


def test_unknown_user_in_kernel_option_or_env_is_one_sentence(tmp_path, env):
    for args, extra in ((["--kernel", "~nosuchuser/x"], {}), ([], {"ZSTEST_KERNEL": "~nosuchuser/k"})):
        proc = run_zstest("series", "apply", *args, "x.mbox", cwd=tmp_path, env={**env, **extra},
                          timeout=60)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.strip().count("\n") == 0 and "~nosuchuser" in proc.stderr, proc.stderr
