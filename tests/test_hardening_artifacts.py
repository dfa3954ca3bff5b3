"""Issue 26 findings 2, 5 (outputs, shapes, the last-link loop), 6, 8, 9 (decode), 10.

Hostile results dirs, build dirs and matrices fed to the real CLI in a subprocess; real
signals, real read-only and full filesystems (tmpfs mounts, skipped where mount is refused).
Each test names the finding it proves. The CLI runs with a 2 GiB address-space limit: a
regression that reads /dev/zero whole fails with a MemoryError, not by eating the host.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO

PLAIN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
PLAIN_ENV.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                  "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                  "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def cli_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in PLAIN_ENV.items() if not k.startswith("GIT_")}
    env.update({"ZSTEST_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path / "home"),
                "PYTHONPATH": str(REPO)})
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def zstest(tmp_path: Path, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zstest.cli", *map(str, args)],
                          env=cli_env(tmp_path), capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, preexec_fn=_limit_memory)


def one_sentence(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.startswith("zstest: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def git(*args, cwd=None) -> str:
    return subprocess.run(["git", *map(str, args)], cwd=cwd, check=True, capture_output=True,
                          text=True, env=PLAIN_ENV).stdout.strip()


def results_dir(path: Path, **data) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    body = {"schema": 1, "status": "passed", "tests": [], "splats": []}
    body.update(data)
    (path / "results.json").write_text(json.dumps(body))
    return path


def passed(name: str, **extra) -> dict:
    return {"name": name, "status": "passed", **extra}


# ---------------------------------------------------------------- finding 2: report's file reads

SECRET = "SECRET-LINE-root:x:0:0"


@pytest.mark.parametrize("how", ["absolute", "dotdot", "dev-zero", "symlink-out", "fifo"])
def test_report_reads_no_file_outside_the_results_dir(tmp_path, how):
    """Finding 2: results.json's console_log "/etc/passwd" or "../../x" printed that file's tail
    in a report meant for a public list; "/dev/zero" grew memory to a MemoryError."""
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{SECRET}\n" * 20)
    res = tmp_path / "a" / "b" / "results"
    res.mkdir(parents=True)
    name = {"absolute": str(secret), "dotdot": "../../../secret.txt", "dev-zero": "/dev/zero",
            "symlink-out": "console.log", "fifo": "console.fifo"}[how]
    if how == "symlink-out":
        (res / "console.log").symlink_to(secret)
    if how == "fifo":
        os.mkfifo(res / "console.fifo")
    results_dir(res, status="error", message="the guest did not boot", console_log=name)
    proc = zstest(tmp_path, "report", res, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert SECRET not in proc.stdout
    said = " ".join(proc.stdout.split())        # the report wraps its lines
    assert "Console tail: not shown" in said and "is not a file inside" in said


def test_report_shows_the_tail_of_a_real_console_log_bounded(tmp_path):
    """The console tail still works for a log inside the results dir; a 1 GiB sparse log is
    read from its end, not whole (the run has a 2 GiB address-space limit). (Named boot.log:
    the splat rescan of console.log is bounded separately, in evidence.py.)"""
    res = results_dir(tmp_path / "results", status="error", message="no boot",
                      console_log="boot.log")
    with open(res / "boot.log", "wb") as fh:
        fh.truncate(1 << 30)
        fh.seek(1 << 30)
        fh.write(b"[    0.9] the line the tail's cut starts in\n"
                 b"[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    start = time.monotonic()
    proc = zstest(tmp_path, "report", res, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Console tail (boot.log):" in proc.stdout
    assert "Unable to mount root fs" in proc.stdout
    took = time.monotonic() - start
    assert took < 60, f"report took {took:.0f} s on a sparse 1 GiB console.log"


def test_bounded_readers_never_read_a_device_or_fifo_whole(tmp_path):
    from zstest.fsutil import artifact_file, read_bounded, read_tail
    fifo = tmp_path / "x.c"
    os.mkfifo(fifo)
    assert read_bounded(fifo, 1 << 20) is None          # returns at once: no writer awaited
    assert read_bounded("/dev/zero", 1 << 20) is None
    big = tmp_path / "big.c"
    big.write_bytes(b"x" * 4096)
    assert read_bounded(big, 1024) is None and read_bounded(big, 4096) == "x" * 4096
    (tmp_path / "log").write_bytes(b"first\n" + b"y" * 100 + b"\nlast line\n")
    assert read_tail(tmp_path / "log", 20) == "last line\n"
    assert artifact_file(tmp_path, "/dev/zero") is None
    assert artifact_file(tmp_path, "../" + tmp_path.name + "/log") == (tmp_path / "log").resolve()
    assert artifact_file(tmp_path, "x.c") is None and artifact_file(tmp_path, 5) is None


def test_decode_reads_no_system_map_outside_the_build_dir(tmp_path):
    """Finding 2 for decode: build.json's System.map / vmlinux naming a file outside the
    build dir (or a device) is not read; a note says so."""
    build = tmp_path / "build"
    build.mkdir()
    (build / "build.json").write_text(json.dumps({
        "status": "ok", "artifacts": {"System.map": "/dev/zero", "vmlinux": "../vmlinux"}}))
    (tmp_path / "vmlinux").write_text("not an elf\n")
    splat = {"kind": "warning", "title": "WARNING",
             "text": "WARNING: CPU: 0 PID: 1 at mm/zsmalloc.c:2 zs_x+0x1/0x2\n"
                     "Call Trace:\n zs_page_migrate+0x10/0x40\n"}
    res = results_dir(tmp_path / "results", status="failed", kernel={"build_dir": str(build)},
                      tests=[{"name": "t", "status": "failed", "splats": [splat]}])
    proc = zstest(tmp_path, "decode", res, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "build.json's System.map '/dev/zero' is not a file inside" in proc.stdout
    assert "build.json's vmlinux '../vmlinux' is not a file inside" in proc.stdout


# ---------------------------------------------------------------- finding 6: compare verdicts

def _compare(tmp_path, a_tests, b_tests, *extra):
    a = results_dir(tmp_path / "A", tests=a_tests)
    b = results_dir(tmp_path / "B", tests=b_tests)
    return zstest(tmp_path, "compare", a, b, *extra)


def test_compare_an_interrupted_test_in_b_is_not_passing(tmp_path):
    """Finding 6: a test interrupted in B counted as passing (exit 0)."""
    proc = _compare(tmp_path, [passed("t1")], [{"name": "t1", "status": "interrupted"}])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "regressed" in proc.stdout and "interrupted" in proc.stdout


@pytest.mark.parametrize("order", ["failed-then-passed", "passed-then-failed"])
def test_compare_a_test_named_twice_counts_its_worst_entry(tmp_path, order):
    """Finding 6: B naming a test twice (failed, then passed) kept the last: no regression."""
    twice = [{"name": "t1", "status": "failed"}, passed("t1")]
    if order == "passed-then-failed":
        twice.reverse()
    proc = _compare(tmp_path, [passed("t1")], twice)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "regressed" in proc.stdout and "1/2" in proc.stdout


@pytest.mark.parametrize("bad,where", [
    ({"passes": "x"}, "tests[0].passes"),
    ({"passes": -1}, "tests[0].passes"),
    ({"splats": [{"kind": "warning", "title": 5}]}, "tests[0].splats[0].title"),
    ({"runs": ["passed", 3]}, "tests[0].runs[1]"),
])
def test_compare_a_wrong_shape_is_one_sentence(tmp_path, bad, where):
    """Finding 5: `passes: "x"` or a non-string splat title was a traceback (exit 1)."""
    proc = _compare(tmp_path, [passed("t1")], [{**passed("t1"), **bad}])
    assert proc.returncode == 2
    assert where in one_sentence(proc)


def test_compare_merge_skips_one_bad_file_and_names_it(tmp_path):
    """Finding 5: one results.json of the wrong shape failed the whole `compare --merge`."""
    root = tmp_path / "ci"
    results_dir(root / "cell-a", tests=[passed("t1")])
    results_dir(root / "cell-b", tests=[{**passed("t1"), "passes": "x"}])
    results_dir(root / "cell-c", status="failed", tests=[{"name": "t1", "status": "failed"}])
    proc = zstest(tmp_path, "compare", "--merge", root, "--json", tmp_path / "m.json")
    assert "Traceback" not in proc.stderr and proc.returncode == 1, proc.stderr
    assert "not merged:" in proc.stdout and "cell-b" in proc.stdout
    merged = json.loads((tmp_path / "m.json").read_text())
    assert [c["name"] for c in merged["cells"]] == ["cell-a", "cell-c"]
    assert len(merged["not_merged"]) == 1
    # only good cells passing, one bad file: not a clean 0
    (root / "cell-c" / "results.json").unlink()
    proc = zstest(tmp_path, "compare", "--merge", root)
    assert proc.returncode == 2 and "not merged:" in proc.stdout, proc.stdout + proc.stderr


# ---------------------------------------------------------------- finding 9: escapes in decode

def test_decode_output_carries_no_terminal_escapes(tmp_path):
    """Finding 9: console text and results.json reached the terminal unfiltered in decode."""
    evil = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\x1b[0m\x9b31m\r\x08"
    splat = {"kind": "warning", "title": f"WARNING {evil}",
             "text": f"WARNING: CPU: 0 PID: 1 at mm/zsmalloc.c:2 zs_x+0x1/0x2 {evil}\n"}
    res = results_dir(tmp_path / "results", status="failed",
                      tests=[{"name": f"t{evil}", "status": "failed", "splats": [splat]}])
    proc = zstest(tmp_path, "decode", res)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" in proc.stdout and "red" in proc.stdout
    for ch in ("\x1b", "\x07", "\x9b", "\r", "\x08"):
        assert ch not in proc.stdout, repr(ch)
    assert "owned" not in proc.stdout and "[2J" not in proc.stdout


# ---------------------------------------------------------------- finding 5: shapes, loops

def test_decode_splats_of_the_wrong_shape(tmp_path):
    """Finding 5: decode on splats of the wrong shape was a traceback."""
    res = results_dir(tmp_path / "r1", status="failed",
                      tests=[{"name": "t", "status": "failed",
                              "splats": [{"kind": "warning", "title": ["x"], "text": "y"}]}])
    proc = zstest(tmp_path, "decode", res)
    assert proc.returncode == 2 and "splats[0].title" in one_sentence(proc)
    # a recorded decoding of the wrong shape: decoded again, with a note
    splat = {"kind": "warning", "title": "WARNING",
             "text": "WARNING: CPU: 0 PID: 1 at mm/zsmalloc.c:2 zs_x+0x1/0x2\n",
             "decoded": {"kind": "warning", "title": "W", "frames": [{"kind": "bug", "text": "x",
                                                                      "offset": "0x1"}]}}
    res = results_dir(tmp_path / "r2", status="failed",
                      tests=[{"name": "t", "status": "failed", "splats": [splat]}])
    for command in ("decode", "report"):
        proc = zstest(tmp_path, command, res)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "recorded decoding is malformed" in zstest(tmp_path, "decode", res).stdout


def test_a_last_link_loop_is_named_not_a_traceback(tmp_path):
    """Finding 5: a results/last symlink loop broke `cache show` and `cache prune`."""
    cache = tmp_path / "cache"
    for area in ("results", "builds"):
        (cache / area).mkdir(parents=True)
        (cache / area / "last").symlink_to("last")
    proc = zstest(tmp_path, "cache", "show")
    assert proc.returncode == 0, proc.stderr
    assert "results/last -> last (a symlink loop: points nowhere)" in proc.stdout
    proc = zstest(tmp_path, "cache", "prune", "--area", "results", "--keep", "0")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    proc = zstest(tmp_path, "report", cache / "results" / "last")
    assert proc.returncode == 2 and one_sentence(proc)


# ---------------------------------------------------------------- finding 10: matrix names

@pytest.mark.parametrize("toml,said", [
    ('series = ["a.mbox"]\n[[include]]\nname = "../../etc"\nseries = "a.mbox"\n',
     "is not a safe name"),
    ('series = { "x/../../y" = "a.mbox" }\n', "is not a safe name"),
    ('series = { "ok\\u001b[2J" = "a.mbox" }\n', "is not a safe name"),
    ('series = ["a.mbox"]\n[[include]]\nname = ["a", "b"]\nseries = "a.mbox"\n',
     "must be a string"),
], ids=["include-dotdot", "label-slash", "label-escape", "name-list"])
def test_matrix_names_are_safe_directory_names(tmp_path, toml, said):
    """Findings 10 and 5: cell names become results/<name> in CI; `../../..` went through, and
    a list as name was a traceback."""
    (tmp_path / "m.toml").write_text(toml)
    proc = zstest(tmp_path, "matrix", tmp_path / "m.toml", "--format", "json")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert said in one_sentence(proc)


def test_a_cell_name_from_cell_json_is_checked_too():
    from zstest.errors import BadInput
    from zstest.matrix import load_cell, matrix_from_dict, expand
    with pytest.raises(BadInput, match="not a safe name"):
        load_cell('{"name": "../../x"}')
    with pytest.raises(BadInput, match="must be a string"):
        load_cell('{"name": ["x"]}')
    # default names from hostile paths are made safe, not refused
    cells = expand(matrix_from_dict({"series": ["../../..", "x/..y.mbox"]}))
    assert all(".." not in c["name"] and "/" not in c["name"] for c in cells), cells


# ---------------------------------------------------------------- finding 5: writing outputs

@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount_tmpfs(name, size, readonly): a tmpfs of its own (unmounted after the test)."""
    mounted = []

    def mount(name: str, size: str = "1m", readonly: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir()
        opts = f"size={size}" + (",ro" if readonly else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()})")
        mounted.append(where)
        return where
    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(fs: Path, leave: int) -> None:
    """Fill fs until about `leave` bytes are free."""
    st = os.statvfs(fs)
    free = st.f_bavail * st.f_frsize
    with open(fs / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))


def tiny_kernel(path: Path) -> Path:
    (path / "mm").mkdir(parents=True)
    (path / "scripts" / "kconfig").mkdir(parents=True)
    (path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n")
    (path / "Kconfig").write_text("# tiny\n")
    (path / "scripts" / "kconfig" / "Makefile").write_text("# tiny\n")
    (path / "mm" / "zsmalloc.c").write_text("int zs;\n")
    git("init", "-q", "-b", "main", cwd=path)
    git("add", ".", cwd=path)
    git("commit", "-qm", "base", cwd=path)
    return path


def long_series(tmp_path: Path, kernel: Path, count: int) -> Path:
    """An mbox of `count` patches, each adding one line to mm/zsmalloc.c."""
    sender = tmp_path / "sender"
    git("clone", "-q", kernel, sender)
    for i in range(count):
        with open(sender / "mm" / "zsmalloc.c", "a") as fh:
            fh.write(f"int zs_{i};\n")
        git("commit", "-qam", f"mm: add zs_{i} with a subject long enough to take some room",
            cwd=sender)
    mbox = tmp_path / "series.mbox"
    mbox.write_text(git("format-patch", "-q", "--stdout", "-n", f"HEAD~{count}", cwd=sender)
                    + "\n")
    return mbox


def test_outputs_to_a_read_only_dir_are_one_sentence(tmp_path, mount_tmpfs):
    """Finding 5: series apply --out, decode --json, compare --json into a read-only dir."""
    ro = mount_tmpfs("ro", readonly=True)
    kernel = tiny_kernel(tmp_path / "linux")
    mbox = long_series(tmp_path, kernel, 1)
    proc = zstest(tmp_path, "series", "apply", mbox, "--kernel", kernel, "--out", ro / "out")
    assert proc.returncode == 2 and "cannot write apply.json to" in one_sentence(proc)
    res = results_dir(tmp_path / "results", tests=[passed("t1")])
    proc = zstest(tmp_path, "decode", res, "--json", ro / "d.json")
    assert proc.returncode == 2 and "Read-only file system" in one_sentence(proc)
    proc = zstest(tmp_path, "compare", res, res, "--json", ro / "c.json")
    assert proc.returncode == 2 and "Read-only file system" in one_sentence(proc)
    proc = zstest(tmp_path, "decode", res, "--json", tmp_path / "missing" / "d.json")
    assert proc.returncode == 2 and "No such file or directory" in one_sentence(proc)
    # a device is written in place, never replaced by a regular file
    proc = zstest(tmp_path, "decode", res, "--json", "/dev/null")
    assert proc.returncode == 0 and Path("/dev/null").is_char_device()


def test_outputs_to_a_full_disk_are_exit_6(tmp_path, mount_tmpfs):
    """Finding 5: decode --json and compare --json on a full filesystem."""
    full = mount_tmpfs("full", size="64k")
    fill(full, 0)
    res = results_dir(tmp_path / "results", tests=[passed("t1")])
    proc = zstest(tmp_path, "decode", res, "--json", full / "d.json")
    assert proc.returncode == 6 and "no space left on device" in one_sentence(proc)
    proc = zstest(tmp_path, "compare", res, res, "--json", full / "c.json")
    assert proc.returncode == 6 and "no space left on device" in one_sentence(proc)
    proc = zstest(tmp_path, "report", res, "--out", full / "r.txt")
    assert proc.returncode == 6 and "no space left on device" in one_sentence(proc)
    assert not list(p for p in full.iterdir() if p.name != "filler")


def test_a_full_disk_part_way_through_apply_keeps_apply_json(tmp_path, mount_tmpfs):
    """Finding 5: a full disk after many applied patches left no apply.json (a traceback)."""
    kernel = tiny_kernel(tmp_path / "linux")
    mbox = long_series(tmp_path, kernel, 40)
    full = mount_tmpfs("full", size="128k")
    fill(full, 24 * 1024)
    proc = zstest(tmp_path, "series", "apply", mbox, "--kernel", kernel, "--out", full / "out",
                  timeout=300)
    assert proc.returncode == 6, proc.stderr
    assert "no space left on device" in one_sentence(proc)
    kept = json.loads((full / "out" / "apply.json").read_text())
    assert kept["status"] == "running" and 0 < len(kept["patches"]) < 40


def test_series_fetch_out_to_read_only_or_full(tmp_path, mount_tmpfs):
    """Finding 5: series fetch --out into a read-only or full filesystem."""
    from lore_server import LocalLore
    kernel = tiny_kernel(tmp_path / "linux")
    mbox = long_series(tmp_path, kernel, 2).read_bytes()
    ro = mount_tmpfs("ro", readonly=True)
    full = mount_tmpfs("full", size="64k")
    fill(full, 0)
    with LocalLore() as lore:
        lore.serve("x@example.org", mbox)
        for out, code, said in ((ro / "t.mbox", 2, "Read-only file system"),
                                (full / "t.mbox", 6, "no space left on device"),
                                (tmp_path / "nodir" / "t.mbox", 2, "does not exist")):
            proc = zstest(tmp_path, "series", "fetch", "<x@example.org>", "--lore-url", lore.url,
                          "--out", out)
            assert proc.returncode == code, proc.stderr
            assert said in one_sentence(proc)
    assert not (full / "t.mbox").exists()


# ---------------------------------------------------------------- finding 8: SIGTERM in apply

def handles_sigterm(pid: int) -> bool:
    """The process has its SIGTERM handler installed (zstest's main() has started)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(l for l in status.splitlines() if l.startswith("SigCgt:")).split()[1], 16)
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def generated_series(path: Path, count: int) -> Path:
    """An mbox of `count` patches, each adding its own file: long to read and check."""
    mails = []
    for i in range(1, count + 1):
        mails.append(f"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
                     f"From: T <t@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
                     f"Message-ID: <p{i}@example.org>\n"
                     f"Subject: [PATCH {i}/{count}] mm: add f{i}\n\n---\n"
                     f"diff --git a/mm/f{i}.c b/mm/f{i}.c\nnew file mode 100644\n"
                     f"--- /dev/null\n+++ b/mm/f{i}.c\n@@ -0,0 +1 @@\n+int f{i};\n--\n2.39.5\n\n")
    path.write_text("".join(mails))
    return path


@pytest.mark.parametrize("delay", [0.0, 0.3, 0.6, 1.0, 1.5])
def test_sigterm_early_in_series_apply_leaves_an_interrupted_apply_json(tmp_path, delay):
    """Finding 8: SIGTERM 0.3 s into `series apply` exited 130 with no apply.json (reading and
    checking the series, before the worktree).

    The clock starts when zstest's SIGTERM handler is in place (/proc's SigCgt) and the command
    has made its --out directory (its first act): before that, Python's default action kills
    the process, or click is still parsing, and there is no command to answer (on a loaded host
    interpreter start-up alone takes seconds). From then on, at any delay (reading the series,
    checking it, between reading and applying), apply.json must say interrupted.
    """
    kernel = tiny_kernel(tmp_path / "linux")
    mbox = generated_series(tmp_path / "long.mbox", 1500)
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-m", "zstest.cli", "series", "apply",
                              str(mbox), "--kernel", str(kernel), "--out", str(out)],
                             env=cli_env(tmp_path), cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (handles_sigterm(child.pid) and out.is_dir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "Traceback" not in err
    state = json.loads((out / "apply.json").read_text())
    assert state["status"] == "interrupted"
    assert len(state["patches"]) < 1500


def test_sigterm_mid_apply_lists_the_patches_done(tmp_path):
    """SIGTERM once apply.json shows applied patches: interrupted, with those patches."""
    kernel = tiny_kernel(tmp_path / "linux")
    mbox = long_series(tmp_path, kernel, 60)
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-m", "zstest.cli", "series", "apply", str(mbox),
                              "--kernel", str(kernel), "--out", str(out)],
                             env=cli_env(tmp_path), cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        try:
            if len(json.loads((out / "apply.json").read_text())["patches"]) >= 2:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    state = json.loads((out / "apply.json").read_text())
    assert state["status"] == "interrupted" and 2 <= len(state["patches"]) < 60
    assert all(p["status"] == "applied" for p in state["patches"])


# ---------------------------------------------------------------- recorded decodings, generated

def test_a_recorded_decoding_of_any_shape_is_refused_or_printed():
    """Finding 5, the class: results.json's splat["decoded"] is either refused (ValueError,
    then decoded again) or printed; never another exception."""
    from hypothesis import given, settings, strategies as st
    from zstest.decode import Decoded, format_decoded
    scalars = st.none() | st.booleans() | st.integers(-2, 2 ** 70) | st.text(max_size=8)
    json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                             | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                             max_leaves=12)
    frame_keys = st.sampled_from(["kind", "text", "function", "offset", "size", "module",
                                  "reliable", "address", "file", "line", "source",
                                  "inline_function", "inlined", "note"])
    frames = st.lists(st.dictionaries(frame_keys, json_like, max_size=8), max_size=3)
    decoded = st.fixed_dictionaries({}, optional={
        "kind": json_like, "title": json_like, "frames": frames | json_like,
        "patches": st.lists(st.dictionaries(st.sampled_from(
            ["index", "subject", "how", "frame", "function", "location"]), json_like), max_size=2),
        "notes": json_like, "build_dir": json_like, "commit": json_like})

    @settings(max_examples=100, deadline=None, database=None)
    @given(decoded)
    def check(d):
        try:
            result = Decoded.from_dict(d)
        except ValueError:
            return
        format_decoded(result)
    check()


def test_compare_of_any_generated_results_is_a_verdict_or_one_sentence(tmp_path):
    """Findings 5 and 6, the class: results.json of any generated shape is BadInput (exit 2) or a
    comparison that renders as text and JSON and counts a test that did not pass as not passing."""
    from hypothesis import given, settings, strategies as st
    from zstest import compare as cmp
    from zstest.errors import BadInput
    statuses = st.sampled_from(["passed", "failed", "error", "interrupted", "skipped", "weird"])
    scalars = st.none() | st.booleans() | st.integers(-3, 5) | statuses | st.just("")
    json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                             | st.dictionaries(st.sampled_from(["a", "before", "after", "x"]),
                                               inner, max_size=3), max_leaves=8)
    # mostly well-formed (a verdict to check), sometimes anything (one sentence to check)
    test = st.fixed_dictionaries({"name": st.sampled_from(["t1", "t2"]), "status": statuses},
                                 optional={"passes": st.integers(-1, 3) | json_like,
                                           "runs": st.lists(statuses, max_size=3) | json_like,
                                           "splats": json_like, "metrics": json_like,
                                           "details": json_like})
    side = st.lists(test, max_size=4)
    count = iter(range(10 ** 6))

    @settings(max_examples=100, deadline=None, database=None)
    @given(side, side)
    def check(a_tests, b_tests):
        n = next(count)
        a = results_dir(tmp_path / f"a{n}", tests=a_tests)
        b = results_dir(tmp_path / f"b{n}", tests=b_tests)
        try:
            comparison = cmp.compare(cmp.load_side(a), cmp.load_side(b))
        except BadInput:
            return
        cmp.render_text(comparison)
        json.dumps(cmp.comparison_json(comparison), default=str)
        for t in comparison.tests:
            if t.b is not None and t.b.status not in ("passed", "skipped"):
                assert t.verdict not in ("passing", "fixed"), t
    check()
