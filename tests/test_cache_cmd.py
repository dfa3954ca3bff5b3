"""`zstest cache show|prune|path` on a real cache layout made in tmp_path (ZSTEST_CACHE).

Real dirs and files with real sizes, a real git repo with `git worktree add`, real flocks
held by another process, a real process naming a build on its command line, and symlinks
pointing out of the cache that must never be followed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from zstest.cache_admin import RefusedPath, disk_usage, remove_inside

DAY = 86400


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))      # random: real blocks, nothing sparse
    return path


def set_age(path: Path, days: float) -> None:
    """Every mtime under path (path included) set to `days` ago."""
    t = time.time() - days * DAY
    for root, dirs, files in os.walk(path, topdown=False):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (t, t), follow_symlinks=False)
    os.utime(path, (t, t), follow_symlinks=False)


def du_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def cache_env(cache: Path) -> dict:
    return {"ZSTEST_CACHE": str(cache)}


def zstest_cache(cache: Path, *args):
    return run_zstest("cache", *args, env=cache_env(cache), timeout=120)


def make_build(cache: Path, name: str, days: float, status: str = "ok") -> Path:
    d = cache / "builds" / name
    write(d / "bzImage", 96 * 1024)
    write(d / "modules" / "lib" / "modules" / "zram.ko", 32 * 1024)
    manifest = {"status": status, "objdir": str(cache / "objs" / "x")}
    (d / "build.json").write_text(json.dumps(manifest))
    set_age(d, days)
    return d


def make_results(cache: Path, name: str, days: float, image: Path = None) -> Path:
    d = cache / "results" / name
    write(d / "console.log", 8 * 1024)
    data = {"status": "passed", "image": {"path": str(image)} if image else None}
    (d / "results.json").write_text(json.dumps(data))
    set_age(d, days)
    return d


def make_image(cache: Path, digest: str, days: float) -> Path:
    d = cache / "images" / digest
    write(d / "initramfs.cpio.lz4", 40 * 1024)
    (d / "image.json").write_text("{}")
    set_age(d, days)
    return d / "initramfs.cpio.lz4"


@pytest.fixture
def held_lock():
    """flock a lock file from another process with zstest's own file_lock; released at the end."""
    procs = []

    def hold(path: Path):
        # The path goes in the environment: a holder naming it on its command line would be
        # skipped as "named by a running process" before its lock is even looked at.
        code = ("import os, time; from pathlib import Path; from zstest.cache import file_lock\n"
                "with file_lock(Path(os.environ['HELD_LOCK'])):\n"
                "    print('held', flush=True); time.sleep(120)\n")
        p = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "HELD_LOCK": str(path)})
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield hold
    for p in procs:
        p.kill()
        p.wait()


@pytest.fixture
def cache(tmp_path) -> Path:
    """builds (8, last -> the 7th newest), results (7), images (6), an outside dir linked in."""
    root = tmp_path / "cache"
    outside = tmp_path / "outside"
    write(outside / "precious.bin", 16 * 1024)
    for i in range(8):
        make_build(root, f"linux-6.1-plain-base-2026010{i}", days=20 - i)
    # A build that is not among the newest five, with a symlink out of the cache inside it.
    (root / "builds" / "linux-6.1-plain-base-20260100" / "escape").symlink_to(outside)
    set_age(root / "builds" / "linux-6.1-plain-base-20260100", 20)
    (root / "builds" / "last").symlink_to(root / "builds" / "linux-6.1-plain-base-20260101")
    images = [make_image(root, f"{i:02d}" + "ab" * 9, days=30 - i) for i in range(6)]
    for i in range(7):
        make_results(root, f"2026010{i}-120000", days=20 - i,
                     image=images[0] if i == 6 else images[1] if i == 1 else None)
    (root / "results" / "last").symlink_to(outside)     # like a run with --out elsewhere
    (root / "src" / "linux-source-6.1").mkdir(parents=True)
    write(root / "src" / "linux-source-6.1" / "Makefile", 4096)
    write(root / "test-builds" / "default" / "bzImage", 8192)
    set_age(root / "test-builds", 40)
    return root


def test_cache_path_prints_the_root(tmp_path):
    root = tmp_path / "somewhere"
    res = zstest_cache(root, "path")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(root)


def test_show_sizes_match_du_and_last_links(cache, tmp_path):
    res = zstest_cache(cache, "show", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    areas = report["areas"]
    for name in ("builds", "results", "images", "src", "test-builds"):
        assert areas[name]["size_bytes"] == du_bytes(cache / name), name
    assert areas["builds"]["count"] == 8 and areas["results"]["count"] == 7
    assert areas["images"]["count"] == 6
    assert areas["worktrees"]["exists"] is False
    # The symlink out of the cache is not followed: the outside file is not counted.
    assert report["total_bytes"] == du_bytes(cache)
    assert report["builds"]["last"]["target"].endswith("linux-6.1-plain-base-20260101")
    assert report["builds"]["last"]["inside_cache"] is True
    assert report["results"]["last"]["inside_cache"] is False
    assert report["builds"]["newest"]["name"] == "linux-6.1-plain-base-20260107"
    assert report["builds"]["oldest"]["name"] == "linux-6.1-plain-base-20260100"
    text = zstest_cache(cache, "show")
    assert text.returncode == 0
    assert "builds/last -> " in text.stdout and "(outside the cache)" in text.stdout


def test_disk_usage_counts_hard_links_once_and_skips_symlinks(tmp_path):
    d = tmp_path / "d"
    write(d / "a", 64 * 1024)
    os.link(d / "a", d / "b")
    (d / "link").symlink_to(tmp_path)            # would loop if followed
    assert disk_usage(d).size_bytes == du_bytes(d)
    assert disk_usage(d).size_bytes < 2 * 64 * 1024


def test_prune_default_keeps_newest_five_last_and_outside(cache, tmp_path):
    before = {p.name for p in (cache / "builds").iterdir()}
    dry = zstest_cache(cache, "prune", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert {p.name for p in (cache / "builds").iterdir()} == before     # dry run: nothing gone

    res = zstest_cache(cache, "prune", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    removed = {(i["area"], i["name"]) for i in out["removed"]}
    assert removed == {(i["area"], i["name"]) for i in planned["removed"]}
    builds = sorted(p.name for p in (cache / "builds").iterdir() if not p.is_symlink())
    # newest five (03..07) + what last points to (01); 00 and 02 go
    assert builds == [f"linux-6.1-plain-base-2026010{i}" for i in (1, 3, 4, 5, 6, 7)]
    assert ("builds", "linux-6.1-plain-base-20260100") in removed
    assert any(s["name"] == "linux-6.1-plain-base-20260101" and "last" in s["reason"]
               for s in out["skipped"])
    # The symlink inside the removed build pointed out of the cache: its target is intact.
    assert (tmp_path / "outside" / "precious.bin").stat().st_size == 16 * 1024
    assert (cache / "results" / "last").is_symlink()
    assert sorted(p.name for p in (cache / "results").iterdir() if not p.is_symlink()) == [
        f"2026010{i}-120000" for i in range(2, 7)]
    # images: the newest 3 (03, 04, 05) + 00 used by kept results 06; 01's results are gone
    images = sorted(p.name[:2] for p in (cache / "images").iterdir())
    assert images == ["00", "03", "04", "05"]
    assert out["freed_bytes"] == sum(i["size_bytes"] for i in out["removed"]) > 2 * 96 * 1024
    assert (cache / "src" / "linux-source-6.1" / "Makefile").is_file()
    assert (cache / "test-builds" / "default" / "bzImage").is_file()
    text = zstest_cache(cache, "prune", "--dry-run")
    assert "would free" in text.stdout


def test_prune_keep_and_older_than(cache):
    res = zstest_cache(cache, "prune", "--keep", "1", "--older-than", "16.5", "--area", "builds",
                       "--json")
    assert res.returncode == 0, res.stderr
    left = sorted(p.name[-2:] for p in (cache / "builds").iterdir() if not p.is_symlink())
    # ages 20..13 days: older than 16.5 are 00..03 (20, 19, 18, 17); 01 is last
    assert left == ["01", "04", "05", "06", "07"]
    assert (cache / "results" / "20260100-120000").is_dir()         # area not asked


def test_build_named_by_a_running_process_is_skipped(cache):
    bz = cache / "builds" / "linux-6.1-plain-base-20260100" / "bzImage"
    # A process naming the kernel on its command line, as QEMU's -kernel does.
    user = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                             "-kernel", str(bz)])
    try:
        time.sleep(0.2)
        res = zstest_cache(cache, "prune", "--area", "builds", "--json")
    finally:
        user.kill()
        user.wait()
    out = json.loads(res.stdout)
    assert bz.is_file()
    assert any(s["name"] == "linux-6.1-plain-base-20260100" and "running process" in s["reason"]
               for s in out["skipped"])


def test_unfinished_recent_build_is_skipped(cache):
    d = make_build(cache, "linux-6.1-v1-base-running", days=0, status="running")
    old = make_build(cache, "linux-6.1-v1-base-killed", days=3, status="running")
    res = zstest_cache(cache, "prune", "--area", "builds", "--keep", "0", "--json")
    out = json.loads(res.stdout)
    assert d.is_dir()
    assert any(s["name"] == d.name and "may still be running" in s["reason"]
               for s in out["skipped"])
    assert not old.exists()         # unfinished and untouched for days: a killed build
    assert sorted(p.name for p in (cache / "builds").iterdir()) == [
        "last", "linux-6.1-plain-base-20260101", d.name]


def _git(*args, cwd=None):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout


def make_worktrees(cache: Path, tmp_path: Path, key: str = "linux-test-0123456789"):
    user = tmp_path / "user-tree"
    write(user / "mm" / "zsmalloc.c", 20 * 1024)
    _git("init", "-q", str(user))
    _git("add", ".", cwd=user)
    _git("commit", "-qm", "base", cwd=user)
    git_dir = cache / "repos" / key / "git"
    _git("clone", "-q", "--bare", "--shared", str(user), str(git_dir))
    for purpose in ("build", "apply"):
        _git("--git-dir", str(git_dir), "worktree", "add", "-q", "--detach",
             str(cache / "worktrees" / key / purpose), "HEAD")
        set_age(cache / "worktrees" / key / purpose, 10)
        set_age(git_dir / "worktrees" / purpose, 10)
    return key, git_dir


def test_worktrees_locked_one_skipped_other_removed_and_git_told(cache, tmp_path, held_lock):
    key, git_dir = make_worktrees(cache, tmp_path)
    held_lock(cache / "locks" / f"worktree-{key}-build.lock")
    # Not asked for: worktrees stay.
    zstest_cache(cache, "prune")
    assert (cache / "worktrees" / key / "apply").is_dir()
    res = zstest_cache(cache, "prune", "--area", "worktrees", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert not (cache / "worktrees" / key / "apply").exists()
    assert (cache / "worktrees" / key / "build" / "mm" / "zsmalloc.c").is_file()
    skipped = [s for s in out["skipped"] if s["name"] == f"{key}/build"]
    assert skipped and f"locks/worktree-{key}-build.lock is held" in skipped[0]["reason"]
    listed = _git("--git-dir", str(git_dir), "worktree", "list", "--porcelain")
    assert "/apply" not in listed and "/build" in listed
    assert not (git_dir / "worktrees" / "apply").exists()


def test_worktree_used_recently_is_kept_by_older_than(cache, tmp_path):
    key, git_dir = make_worktrees(cache, tmp_path)
    # A reset keeps file mtimes; git's index for the worktree is what shows the use.
    os.utime(git_dir / "worktrees" / "apply" / "index")
    res = zstest_cache(cache, "prune", "--area", "worktrees", "--older-than", "3", "--json")
    out = json.loads(res.stdout)
    assert (cache / "worktrees" / key / "apply").is_dir()
    assert not (cache / "worktrees" / key / "build").exists()
    assert out["kept"] == {"worktrees": 1}


def test_objs_locked_skipped_idle_removed_with_side_files(cache, held_lock):
    objs = cache / "objs"
    for name in ("linux-a-base-11111111", "linux-a-debug-22222222"):
        write(objs / name / "vmlinux.o", 64 * 1024)
        write(objs / f"{name}.kconfig" / ".config", 4096)
        (objs / f"{name}.warnings.json").write_text("{}")
        for p in (objs / name, objs / f"{name}.kconfig", objs / f"{name}.warnings.json"):
            set_age(p, 9)
    held_lock(cache / "locks" / "objs-linux-a-debug-22222222.lock")
    dry = json.loads(zstest_cache(cache, "prune", "--area", "objs", "--dry-run", "--json").stdout)
    assert [i["name"] for i in dry["removed"]] == ["linux-a-base-11111111"]
    res = zstest_cache(cache, "prune", "--area", "objs", "--json")
    out = json.loads(res.stdout)
    assert sorted(p.name for p in objs.iterdir()) == [
        "linux-a-debug-22222222", "linux-a-debug-22222222.kconfig",
        "linux-a-debug-22222222.warnings.json"]
    assert out["removed"][0]["size_bytes"] >= 64 * 1024 + 4096
    assert "objs-linux-a-debug-22222222.lock is held" in out["skipped"][0]["reason"]


def test_repos_only_explicitly_and_with_their_worktrees(cache, tmp_path):
    key, git_dir = make_worktrees(cache, tmp_path)
    set_age(cache / "repos" / key, 10)
    zstest_cache(cache, "prune", "--area", "worktrees,objs", "--older-than", "30")
    assert git_dir.is_dir()
    res = zstest_cache(cache, "prune", "--area", "repos", "--json")
    assert res.returncode == 0, res.stderr
    assert not (cache / "repos" / key).exists() and not (cache / "worktrees" / key).exists()
    assert (tmp_path / "user-tree" / ".git").is_dir()          # the user's tree is untouched


def test_test_builds_only_explicitly(cache, held_lock):
    res = zstest_cache(cache, "prune", "--keep", "0")
    assert res.returncode == 0 and (cache / "test-builds" / "default").is_dir()
    held_lock(cache / "locks" / "test-build-default.lock")
    out = json.loads(zstest_cache(cache, "prune", "--area", "test-builds", "--json").stdout)
    assert (cache / "test-builds" / "default").is_dir() and out["skipped"]


def test_area_symlinked_out_of_the_cache_is_not_followed(cache, tmp_path):
    elsewhere = tmp_path / "elsewhere-bisect"
    for i in range(8):
        write(elsewhere / f"2026010{i}-000000" / "bisect.txt", 1024)
    set_age(elsewhere, 50)
    (cache / "bisect").symlink_to(elsewhere)
    res = zstest_cache(cache, "prune", "--area", "bisect", "--keep", "0", "--json")
    assert res.returncode == 0, res.stderr
    assert len(list(elsewhere.iterdir())) == 8
    assert any("bisect/ is a symlink" in n for n in json.loads(res.stdout)["notes"])
    show = json.loads(zstest_cache(cache, "show", "--json").stdout)
    assert show["areas"]["bisect"]["symlink_to"] == str(elsewhere)


def test_remove_inside_refuses_resolved_paths_outside(tmp_path):
    root = tmp_path / "cache"
    outside = tmp_path / "outside"
    write(outside / "x" / "f", 100)
    (root / "results").mkdir(parents=True)
    (root / "images").symlink_to(outside)
    with pytest.raises(RefusedPath):
        remove_inside(root / "images" / "x", root)
    with pytest.raises(RefusedPath):
        remove_inside(root, root)
    (root / "results" / "link").symlink_to(outside / "x")
    remove_inside(root / "results" / "link", root)             # only the link goes
    assert (outside / "x" / "f").is_file() and not (root / "results" / "link").exists()


def test_ccache_cleanup_only_with_area(cache):
    ccache_dir = cache / "ccache"
    write(ccache_dir / "a" / "b" / "stale.o", 4096)
    out = json.loads(zstest_cache(cache, "prune", "--json").stdout)
    assert out["ccache"] is None
    res = zstest_cache(cache, "prune", "--area", "ccache", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)["ccache"]
    assert info["dir"] == str(ccache_dir) and info["max_size"]


@pytest.mark.parametrize("args, words", [
    (["--area", "src"], "never pruned"),
    (["--area", "builds,bogus"], "unknown cache area 'bogus'"),
    (["--area", ","], "names no area"),
    (["--keep", "-1"], "--keep must be 0 or more"),
    (["--older-than", "-2"], "--older-than must be 0 or more"),
    (["--keep", "many"], "many"),
])
def test_bad_input_exit_2_one_sentence(cache, args, words):
    res = zstest_cache(cache, "prune", *args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert words in res.stderr and "Traceback" not in res.stderr
    assert (cache / "builds" / "linux-6.1-plain-base-20260100").is_dir()


def test_pruned_build_drops_its_keep_ref(cache, tmp_path):
    key, git_dir = make_worktrees(cache, tmp_path)
    ref = "refs/zstest/builds/linux-6.1-plain-base-20260100-0123456789"
    _git("--git-dir", str(git_dir), "update-ref", ref, "HEAD")
    build = cache / "builds" / "linux-6.1-plain-base-20260100"
    (build / "build.json").write_text(json.dumps(
        {"status": "ok", "kernel": {"git_dir": str(git_dir), "keep_ref": ref}}))
    set_age(build, 20)
    res = zstest_cache(cache, "prune", "--area", "builds")
    assert res.returncode == 0, res.stderr
    assert not build.exists()
    refs = _git("--git-dir", str(git_dir), "for-each-ref", "refs/zstest/")
    assert ref not in refs


# ---------------------------------------------------------------- this round's areas

def make_perf(cache: Path, name: str, days: float, image: Path = None, done: bool = True) -> Path:
    """A compare --perf out dir: a/ and b/ runs (results.json naming their image), perf.json."""
    d = cache / "perf" / name
    for side in ("a", "b"):
        make_results(cache, "x", 0, image=image).rename(_mkparent(d / side / "run-01"))
    if done:
        (d / "perf.json").write_text(json.dumps({"schema": 1, "exit_code": 0}))
    set_age(d, days)
    return d


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_perf_dirs_are_outputs_newest_kept_unfinished_skipped_images_kept(cache):
    image = make_image(cache, "99" + "cd" * 9, days=60)    # oldest image: kept only by a run
    for i in range(7):
        make_perf(cache, f"2026010{i}-090000", days=20 - i, image=image if i == 2 else None)
    running = make_perf(cache, "20260110-090000", days=0, done=False)
    res = zstest_cache(cache, "prune", "--keep", "3", "--json")      # perf is a default area
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    left = sorted(p.name[:8] for p in (cache / "perf").iterdir())
    # the newest 3: the unfinished one (0 days, counted among them), 06, 05
    assert left == ["20260105", "20260106", "20260110"]
    assert running.is_dir() and not (running / "perf.json").exists()
    assert ("perf", "20260102-090000") in {(i["area"], i["name"]) for i in out["removed"]}
    assert not image.parent.exists()          # its only run went with perf/20260102


def test_a_kept_perf_run_keeps_its_image(cache):
    image = make_image(cache, "99" + "cd" * 9, days=60)
    make_perf(cache, "20260109-090000", days=1, image=image)
    res = zstest_cache(cache, "prune", "--json")
    assert res.returncode == 0, res.stderr
    assert image.is_file()
    assert any(s["name"].startswith("99cd") and "perf/20260109-090000/" in s["reason"]
               for s in json.loads(res.stdout)["skipped"])


def make_b4check(cache: Path, key: str, days: float, status: str = "done") -> Path:
    d = cache / "b4check" / key
    write(d / "build" / "bzImage", 64 * 1024)
    (d / "build" / "build.json").write_text(json.dumps({"status": "ok"}))
    make_results(cache, "y", 0).rename(d / "results")
    (d / "b4check.json").write_text(json.dumps({"schema": 1, "status": status, "key": key}))
    set_age(d, days)
    return d


def test_b4check_verdicts_removed_when_idle_never_while_running(cache, held_lock):
    idle = make_b4check(cache, "1111111111111111", days=9)
    running = make_b4check(cache, "2222222222222222", days=9, status="running")
    fresh = make_b4check(cache, "3333333333333333", days=1)
    held_lock(running / "run.lock")
    set_age(running, 9)                     # a worker that started 9 days ago and hangs
    zstest_cache(cache, "prune", "--keep", "0")
    assert idle.is_dir()                                # not a default area: b4 reads it back
    dry = zstest_cache(cache, "prune", "--area", "b4check", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove  b4check/1111111111111111" in dry.stdout
    assert "unused for 9.0 days (limit 7); b4check.json says 'done'" in dry.stdout
    assert "b4check/2222222222222222/run.lock is held" in dry.stdout
    assert idle.is_dir()
    res = zstest_cache(cache, "prune", "--area", "b4check", "--json")
    out = json.loads(res.stdout)
    assert not idle.exists() and fresh.is_dir()
    assert (running / "b4check.json").is_file() and (running / "build" / "bzImage").is_file()
    assert out["kept"] == {"b4check": 1}


def make_watch(cache: Path) -> dict:
    """A watcher's directory with a real state file: series in every state, each dir with its
    thread, reply draft, build and results."""
    from zstest.watch.bot import STATE_FILE
    from zstest.watch.state import WatchState
    base = cache / "watch"
    state = WatchState(base / STATE_FILE)
    now = time.time()
    rows = {"done-old": ("done", 30), "done-mid": ("done", 20), "done-new": ("done", 2),
            "superseded-old": ("superseded", 25), "queued": ("queued", 40),
            "running": ("running", 40), "dispatched": ("dispatched", 40)}
    with state.transaction() as db:
        for i, (key, (status, days)) in enumerate(rows.items()):
            state.add_series(db, hash=f"h{i}", root=f"<{key}@x>", key=key, title=key,
                             author="A <a@x>", revision=1, total=1, present=1, revkey=key,
                             status=status, queued=now - days * DAY,
                             finished=now - days * DAY if status == "done" else None)
            d = base / "series" / key
            write(d / "thread.mbox", 4096)
            (d / "reply.txt").write_text("Tested-by: zstest\n")
            write(d / "build" / "bzImage", 64 * 1024)
            make_results(cache, "z", 0).rename(d / "results")
            write(d / "perf" / "builds" / "a" / "bzImage", 64 * 1024)     # watch --perf
            for side in ("a", "b"):
                make_results(cache, "z", 0).rename(_mkparent(d / "perf" / side / "run-00"))
            write(d / "perf" / "perf.json", 100)
            write(d / "perf" / "plots" / "fio.seqwrite.png", 100)
            set_age(d, days)
    state.close()
    (base / "watch.lock").write_text("")
    return {key: base / "series" / key for key in rows}


def test_watch_keeps_queue_state_and_lock_finished_series_lose_only_their_bulk(cache):
    dirs = make_watch(cache)
    state_file = cache / "watch" / "watch.sqlite"
    before = state_file.read_bytes()
    zstest_cache(cache, "prune", "--keep", "0")
    assert (dirs["done-old"] / "build").is_dir()        # not a default area
    dry = zstest_cache(cache, "prune", "--area", "watch", "--keep", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove  watch/series/done-old" in dry.stdout
    assert "skipped       watch/series/queued" in dry.stdout and "never pruned" in dry.stdout
    assert (dirs["done-old"] / "build").is_dir()
    res = zstest_cache(cache, "prune", "--area", "watch", "--keep", "1", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert {i["name"] for i in out["removed"]} == {
        "series/done-old", "series/done-mid", "series/superseded-old"}
    for key in ("done-old", "done-mid", "superseded-old"):
        d = dirs[key]
        assert not (d / "build").exists() and not (d / "results").exists()
        assert not any((d / "perf" / name).exists() for name in ("builds", "a", "b"))
        assert (d / "thread.mbox").is_file() and (d / "reply.txt").is_file()
        assert (d / "perf" / "perf.json").is_file() and (d / "perf" / "plots").is_dir()
    for key in ("done-new", "queued", "running", "dispatched"):
        assert (dirs[key] / "build" / "bzImage").is_file(), key
        assert (dirs[key] / "results" / "results.json").is_file(), key
        assert (dirs[key] / "perf" / "b" / "run-00" / "results.json").is_file(), key
    assert {s["name"] for s in out["skipped"]} == {
        "series/queued", "series/running", "series/dispatched"}
    assert state_file.read_bytes() == before and (cache / "watch" / "watch.lock").is_file()
    from zstest.watch.state import WatchState
    statuses = {r.key: r.status for r in WatchState(state_file).all_series()}
    assert statuses["queued"] == "queued" and statuses["done-old"] == "done"


def test_watch_untouched_while_a_watcher_holds_its_lock(cache, held_lock):
    dirs = make_watch(cache)
    held_lock(cache / "watch" / "watch.lock")
    res = zstest_cache(cache, "prune", "--area", "watch", "--keep", "0", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["removed"] == [] and (dirs["done-old"] / "build" / "bzImage").is_file()
    assert any("watch.lock is held by a running zstest watch" in n for n in out["notes"])


def make_map(cache: Path, commit: str, days: float, base: str = None, profiles=("base",)) -> Path:
    """A coverage map as --coverage keeps it: the recorded one with another source."""
    from zstest.affected import map_key
    from zstest.manifests import save_coverage_map
    doc = json.loads((REPO / "tests" / "data" / "coverage-map-default-6.1.json").read_text())
    doc["source"].update(commit=commit, base=base or commit,
                         series={"source": "x.mbox", "revision": 1, "sha256": []} if base else None)
    doc["config"]["profiles"] = list(profiles)
    doc["key"] = map_key(doc["source"], doc["config"])
    path = save_coverage_map(_mkparent(cache / "coverage-maps" / f"{doc['key']}.json"), doc)
    set_age(path, days)
    return path


def test_coverage_maps_newest_per_tree_and_config_and_the_base_of_a_kept_one(cache, held_lock):
    base = "b" * 40
    base_map = make_map(cache, base, days=30)
    series = [make_map(cache, f"{i}" * 40, days=10 - i, base=base) for i in range(1, 5)]
    other_config = make_map(cache, "c" * 40, days=40, profiles=("base", "debug"))
    held = make_map(cache, "e" * 40, days=50, base="f" * 40)
    held_lock(cache / "locks" / f"coverage-map-{held.stem}.lock")
    (cache / "coverage-maps" / "broken.json").write_text("{")
    dry = zstest_cache(cache, "prune", "--area", "coverage-maps", "--keep", "2", "--dry-run",
                       "--json")
    planned = {i["path"] for i in json.loads(dry.stdout)["removed"]}
    assert planned == {str(series[0]), str(series[1])}        # held: skipped in a dry run too
    res = zstest_cache(cache, "prune", "--area", "coverage-maps", "--keep", "2", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert not series[0].exists() and not series[1].exists()
    assert series[2].is_file() and series[3].is_file() and other_config.is_file()
    assert base_map.is_file() and held.is_file()
    reasons = {Path(s["path"]).name: s["reason"] for s in out["skipped"]}
    assert "--affected falls back to it" in reasons[base_map.name]
    assert f"coverage-map-{held.stem}.lock is held" in reasons[held.name]
    assert "left alone" in reasons["broken.json"]


def test_git_isolation_is_never_pruned(cache):
    reader = cache / "git-isolation" / "reader.git" / "objects"
    reader.mkdir(parents=True)
    set_age(cache / "git-isolation", 90)
    res = zstest_cache(cache, "prune", "--area", "git-isolation")
    assert res.returncode == 2 and "never pruned" in res.stderr and "Traceback" not in res.stderr
    zstest_cache(cache, "prune", "--keep", "0", "--older-than", "0", "--area",
                 ",".join(a for a in ("builds", "results", "bisect", "perf", "images", "objs",
                                      "worktrees", "repos", "b4check", "watch", "coverage-maps")))
    assert reader.is_dir()


# ---------------------------------------------------------------- unpacking Debian's sources

def _tarball(path: Path, members) -> Path:
    import io
    import tarfile
    with tarfile.open(path, "w:xz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("with_tar", [True, False])
def test_unpack_never_writes_outside_dest(tmp_path, monkeypatch, with_tar):
    from zstest import cache
    from zstest.errors import PrereqMissing
    good = _tarball(tmp_path / "good.tar.xz", [("linux-source-9.9/Makefile", b"all:\n"),
                                               ("linux-source-9.9/mm/zsmalloc.c", b"/* */\n")])
    bad = _tarball(tmp_path / "bad.tar.xz", [("linux-source-9.9/Makefile", b"all:\n"),
                                             ("../evil", b"x"), (str(tmp_path / "abs"), b"y"),
                                             ("linux-source-9.9/a/../../evil2", b"z")])
    if not with_tar:
        monkeypatch.setattr(cache, "which", lambda name: None)     # a host without GNU tar
    (tmp_path / "d1").mkdir()
    cache.unpack_tarball(good, tmp_path / "d1")
    assert (tmp_path / "d1" / "linux-source-9.9" / "mm" / "zsmalloc.c").read_bytes() == b"/* */\n"
    (tmp_path / "d2").mkdir()
    try:
        cache.unpack_tarball(bad, tmp_path / "d2")
    except PrereqMissing as exc:            # GNU tar refuses the '..' names: one sentence
        assert with_tar and "could not be unpacked" in exc.message and "'..'" in exc.message
    assert (tmp_path / "d2" / "linux-source-9.9" / "Makefile").is_file()
    assert not (tmp_path / "evil").exists() and not (tmp_path / "abs").exists()
    assert not list(tmp_path.rglob("evil2"))
