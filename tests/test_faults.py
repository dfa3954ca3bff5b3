"""The fault matrix of issue 9 in one place: every fault, and what zstest promises for it.

Each test asserts, for its fault: the documented exit code (zstest/errors.py); exactly one
`zstest: error:` sentence on stderr (for 130: the one `zstest: interrupted` line) and no
Python traceback; the evidence written (results.json/summary.txt/console.log, build.json/
build.log or apply.json); no qemu-system process left (by PID, fixtures_vm.qemu_pids_for);
and, for commands given a kernel tree, the tree unchanged (a content hash).

Where each fault is tested (faults already checked completely elsewhere are not repeated):

| fault                                   | test                                                        |
|-----------------------------------------|-------------------------------------------------------------|
| kernel panic mid-test (sysrq c)         | test_boot_and_run.py::test_kernel_panic_mid_test_fails_fast_with_the_panic |
| panic at boot / bad init                | test_faults.py::test_bad_init_is_exit_5_through_the_cli, test_vm_guest.py::test_kernel_panicking_at_boot_is_boot_failed_quickly |
| guest hang (SIGSTOP to QEMU)            | here: test_frozen_qemu_is_stopped_by_the_run_deadline; API: test_vm_guest.py::test_frozen_guest_cannot_hang_run_or_teardown |
| long test past the run limit            | test_boot_and_run.py::test_run_timeout_stops_a_hung_run     |
| sshd killed mid-test                    | test_boot_and_run.py::test_lost_sshd_is_reported_not_waited_on; test_vm_guest.py::test_killed_command_vs_killed_sshd |
| OOM killer ends the test's process      | here: test_oom_kill_fails_the_test_and_the_run_goes_on      |
| garbage bzImage                         | here: test_garbage_bzimage_is_exit_5_through_the_cli; API: test_vm_guest.py::test_garbage_bzimage_is_boot_failed |
| sshd never starting                     | test_vm_guest.py::test_sshd_never_starting_is_boot_failed_at_the_deadline |
| patch that does not apply               | here: test_conflict_is_exit_3_with_apply_json; test_tree_apply.py::test_conflict_exit_3_names_file_and_hunk |
| build error                             | here: test_build_break_is_exit_4_with_build_log; test_build_cli.py::test_each_build_break_names_patch_and_location |
| config drift                            | here: test_config_drift_is_exit_4_with_build_json; test_build_cli.py::test_config_drift_names_unmet_dependency |
| bad mbox                                | here: test_bad_mbox_is_exit_2_for_apply_and_build; test_series_badinput.py (each kind of bad input) |
| missing host tool                       | here: test_missing_qemu_is_exit_6_with_the_apt_line; test_doctor.py::test_missing_tools_exit_6_with_the_apt_line |
| Ctrl-C / SIGTERM during apply           | here: test_interrupted_apply_is_130_and_the_worktree_stays_usable |
| Ctrl-C / SIGTERM during build           | here: test_interrupted_build_is_130_and_the_worktree_stays_usable; test_build_cli.py::test_rebuild_is_incremental_and_interrupt_records_state |
| Ctrl-C / SIGTERM during boot            | test_boot_and_run.py::test_interrupt_during_boot_exits_130_and_kills_qemu |
| Ctrl-C / SIGTERM during a test          | test_boot_and_run.py::test_interrupt_during_a_test_exits_130_and_kills_qemu |
| two runs at once on one build           | test_boot_and_run.py::test_two_runs_at_once_do_not_interfere |
| disk full while writing results         | here: test_full_disk_is_one_enospc_sentence_and_no_qemu      |
| SSH forward on 127.0.0.1 only           | here: test_ssh_forward_listens_on_loopback_only             |
| changed guest host key refused          | here: test_changed_host_key_is_refused_exit_5               |
| shell metacharacters in a series source | here: test_shell_metacharacters_never_reach_a_shell, test_metacharacter_directory_applies_without_a_shell |
| patch writing outside the tree          | here: test_patch_writing_outside_the_tree_is_refused_by_the_cli; test_series_badinput.py, test_tree_apply.py |
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from fixtures_vm import qemu_pids_for
from test_tree_apply import plain_61, small_plain_tree, tree_state  # noqa: F401 (plain_61: a fixture)
from zstest.cache import default_kernel_tree
from zstest.errors import (EXIT_APPLY, EXIT_BOOT, EXIT_BUILD, EXIT_INTERRUPTED, EXIT_PREREQ,
                           EXIT_TEST_FAILED, EXIT_USAGE)
from zstest.tree import forget_tree

FIXTURES = REPO / "kernel-patches" / "fixtures"
# The files the fixture series touch: the part of the 75k-file default tree worth hashing.
TOUCHED = ("mm/zsmalloc.c", "drivers/block/zram/zram_drv.c", "mm", "drivers/block/zram", ".")


# ---------------------------------------------------------------- what every fault must give

def error_lines(stderr: str) -> list:
    return [ln for ln in stderr.splitlines() if ln.startswith("zstest: error:")]


def assert_fault(proc, code: int, *needles: str, out: "Path | None" = None, files=()) -> str:
    """The common promise: exit code, one sentence (with needles), no traceback, evidence, no QEMU."""
    assert proc.returncode == code, f"exit {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    if code == EXIT_INTERRUPTED:
        said = [ln for ln in proc.stderr.splitlines()
                if ln.startswith("zstest: interrupted") or ln.startswith("zstest: error:")]
    else:
        said = error_lines(proc.stderr)
    assert len(said) == 1, f"want one sentence, got {said}:\n{proc.stderr}"
    for needle in needles:
        assert needle in said[0], (needle, said[0])
    for name in files:
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, f"{path} missing or empty"
        if name.endswith(".json"):
            json.loads(path.read_text())
    if out is not None:
        assert not qemu_pids_for(out), "a QEMU outlived the run"
    return said[0]


def default_tree_state(tree: Path) -> str:
    """The default 6.1 tree (75k files): the files and dirs the fixture series touch."""
    h = hashlib.sha256()
    for rel in TOUCHED:
        path = tree / rel
        st = path.stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        if path.is_file():
            h.update(hashlib.sha256(path.read_bytes()).digest())
        else:
            h.update("\0".join(sorted(os.listdir(path))).encode())
    return h.hexdigest()


@pytest.fixture
def small_tree(plain_61, tmp_path):
    """A small real plain tree holding what the fixture series touch; forgotten afterwards."""
    tree = small_plain_tree(plain_61, tmp_path / "linux")
    shutil.copytree(plain_61 / "drivers/block/zram", tree / "drivers/block/zram", symlinks=True)
    yield tree
    forget_tree(tree)


@pytest.fixture
def default_tree():
    tree = default_kernel_tree("6.1")
    before = default_tree_state(tree)
    yield tree
    assert default_tree_state(tree) == before, "the default 6.1 tree was modified"


def spawn(*args, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zstest.cli", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, **kw)


def wait_for(predicate, timeout: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def interrupt(proc: subprocess.Popen, sig: int) -> None:
    """Ctrl-C goes to the terminal's whole process group; SIGTERM (CI, systemd) to zstest only."""
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)


def descendants(pid: int) -> list:
    """(pid, argv) of every live descendant of pid (zstest's commands run in their own sessions)."""
    children, argv = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found.append((p, argv.get(p, [])))
        todo += children.get(p, [])
    return found


def git_am_running(pid: int) -> bool:
    return any(a and a[0].endswith(b"git") and b"am" in a for _, a in descendants(pid))


def alive(pids) -> list:
    from fixtures_vm import pid_alive
    return [p for p in pids if pid_alive(p)]


def load(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


# ---------------------------------------------------------------- guest faults (real QEMU)

@pytest.mark.slow
def test_oom_kill_fails_the_test_and_the_run_goes_on(kernel_build, tmp_path):
    out = tmp_path / "res"
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "faults",
                      "-k", "oom or after", "--out", out, timeout=600)
    assert_fault(proc, EXIT_TEST_FAILED, "test_oom_killed", "killed by the kernel's OOM killer",
                 out=out, files=("results.json", "summary.txt", "junit.xml", "console.log"))
    data = load(out)
    tests = {t["name"].split("::")[-1]: t for t in data["tests"]}
    oom = tests["test_oom_killed"]
    assert oom["status"] == "failed"
    assert "killed by the kernel's OOM killer" in oom["message"]
    assert "Killed process" in oom["message"] and "(memtouch)" in oom["message"]
    assert tests["test_after"]["status"] == "passed"      # the run went on
    # the kernel's whole OOM report is in the test's own log and in the console log
    log = (out / oom["log"]).read_text(errors="replace")
    assert "invoked oom-killer" in log and "Memory cgroup out of memory" in log
    assert "invoked oom-killer" in (out / "console.log").read_text(errors="replace")


@pytest.mark.slow
def test_frozen_qemu_is_stopped_by_the_run_deadline(kernel_build, tmp_path):
    out = tmp_path / "res"
    start = time.monotonic()
    proc = spawn("boot-and-run", "--build", kernel_build, "--suite", "faults", "-k", "sleep",
                 "--out", out, "--run-timeout", "20")
    console = out / "console.log"
    wait_for(lambda: console.exists() and b"zstest: begin" in console.read_bytes(), 120,
             "the sleep test to start")
    pids = qemu_pids_for(out)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)      # the guest stops answering: no console, no SSH
    try:
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    took = time.monotonic() - start
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    said = assert_fault(proc, EXIT_BOOT, out=out,
                        files=("results.json", "summary.txt", "console.log"))
    # Frozen before `sleep` reached the guest, SSH's own deadline notices first; after, the run's.
    assert "time limit" in said or "stopped answering" in said, said
    assert load(out)["status"] == "error"
    assert took < 75, f"a frozen guest held the run {took:.0f} s"


@pytest.mark.slow
def test_garbage_bzimage_is_exit_5_through_the_cli(kernel_build, tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    for entry in kernel_build.iterdir():
        if entry.name != "bzImage":
            (build / entry.name).symlink_to(entry)
    (build / "bzImage").write_bytes(os.urandom(2_000_000))
    out = tmp_path / "res"
    start = time.monotonic()
    proc = run_zstest("boot-and-run", "--build", build, "--suite", "boot", "--out", out,
                      "--boot-timeout", "30", timeout=300)
    assert_fault(proc, EXIT_BOOT, "did not boot", out=out,
                 files=("results.json", "summary.txt", "junit.xml"))
    assert (out / "console.log").exists()
    assert load(out)["status"] == "error"
    assert time.monotonic() - start < 90


@pytest.mark.slow
def test_bad_init_is_exit_5_through_the_cli(kernel_build, tmp_path):
    # The kernel boots but has no init to run: it panics; the run says so within seconds.
    out = tmp_path / "res"
    start = time.monotonic()
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "boot", "--out", out,
                      "--append", "rdinit=/nonexistent", "--boot-timeout", "60", timeout=300)
    assert_fault(proc, EXIT_BOOT, out=out, files=("results.json", "summary.txt", "console.log"))
    console = (out / "console.log").read_text(errors="replace")
    assert "Kernel panic" in console and "rdinit=/nonexistent" in console
    assert load(out)["status"] == "error"
    assert time.monotonic() - start < 60


@pytest.mark.slow
def test_missing_qemu_is_exit_6_with_the_apt_line(kernel_build, tmp_path):
    # Every tool of /usr/bin but QEMU: what a host without qemu-system-x86 looks like.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for d in ("/usr/local/bin", "/usr/bin"):
        for entry in os.scandir(d):
            if not entry.name.startswith("qemu-system") and not (bin_dir / entry.name).exists():
                (bin_dir / entry.name).symlink_to(entry.path)
    out = tmp_path / "res"
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "boot", "--out", out,
                      env={"PATH": str(bin_dir)}, timeout=300)
    assert_fault(proc, EXIT_PREREQ, "qemu-system-x86_64 is missing",
                 "apt-get install qemu-system-x86", out=out,
                 files=("results.json", "summary.txt", "junit.xml"))
    data = load(out)
    assert data["status"] == "error" and "qemu-system-x86_64 is missing" in data["message"]


def _private_ns(pid: int) -> bool:
    """pid runs in another mount namespace than this test (gone: not ours to count)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False


@pytest.mark.slow
def test_full_disk_is_one_enospc_sentence_and_no_qemu(kernel_build, tmp_path):
    """The results dir on a 64 KiB tmpfs that fills up during the boot (a private mount)."""
    if not shutil.which("unshare"):
        pytest.skip("unshare (util-linux) is not installed")
    mnt, keep = tmp_path / "small", tmp_path / "kept"
    mnt.mkdir()
    out = mnt / "res"
    # A private mount namespace (as root, or as a user through -r): nothing leaks to the host.
    # 40 kB of filler leaves room for the first results and part of the boot's console.
    script = ('mount -t tmpfs -o size=64k zstest-full "$1" || exit 97; '
              'head -c 40000 /dev/zero > "$1/filler"; m=$1; k=$2; shift 2; '
              '"$@"; rc=$?; cp -a "$m/res" "$k"; exit $rc')
    argv = ["unshare", "-rm", "sh", "-c", script, "sh", str(mnt), str(keep), sys.executable,
            "-m", "zstest.cli", "boot-and-run", "--build", str(kernel_build), "--suite", "boot",
            "--out", str(out)]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    if proc.returncode == 97 or "unshare failed" in proc.stderr:
        pytest.skip(f"cannot mount a private tmpfs here (not root, no user namespaces): "
                    f"{proc.stderr.strip()[:200]}")
    assert_fault(proc, EXIT_PREREQ, "no space left on device (ENOSPC)", str(out))
    # This run's QEMU lived in the private mount namespace; the other pytest worker's guests boot
    # the same shared bzImage in ours, and must not count (CI saw one at this very moment).
    assert not qemu_pids_for(out)
    assert not [pid for pid in qemu_pids_for(kernel_build / "bzImage") if _private_ns(pid)]
    # whatever fit was kept: the first results, valid JSON (atomic writes), and the console's start
    assert json.loads((keep / "results.json").read_text())["suite"] == "boot"
    assert (keep / "summary.txt").is_file()
    assert b"Linux version" in (keep / "console.log").read_bytes()
    assert time.monotonic() - start < 90


def listening_sockets_of(pid: int) -> list:
    """(family, local address hex, port) of every TCP socket pid listens on."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for family in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{family}") as fh:
            next(fh)
            for line in fh:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if state == "0A" and inode in inodes:     # 0A: LISTEN
                    addr, port = local.split(":")
                    found.append((family, addr, int(port, 16)))
    return found


@pytest.mark.slow
def test_ssh_forward_listens_on_loopback_only(boot_guest, tmp_path):
    with boot_guest("g") as guest:
        listening = listening_sockets_of(guest.pid)
        port = guest.ssh_port
        assert guest.run("echo up").stdout == "up\n"
    assert ("tcp", "0100007F", port) in listening, listening      # 127.0.0.1, little endian
    assert all(fam == "tcp" and addr == "0100007F" for fam, addr, _ in listening), listening
    assert not qemu_pids_for(tmp_path)


@pytest.mark.slow
def test_changed_host_key_is_refused_exit_5(boot_guest, guest_image, tmp_path):
    from zstest.errors import BootFailed
    from zstest.vm.ssh import new_client_key
    # The client pins another key than the one baked into the image: a man in the middle.
    tampered = dataclasses.replace(guest_image, host_key_pub=new_client_key().public_line)
    start = time.monotonic()
    with pytest.raises(BootFailed) as exc:
        with boot_guest("g", image=tampered):
            pytest.fail("connected to a guest whose host key is not the pinned one")
    assert exc.value.exit_code == EXIT_BOOT
    assert "host key changed" in exc.value.message and "\n" not in exc.value.message
    assert time.monotonic() - start < 60          # refused at once, not retried to the deadline
    assert (tmp_path / "g" / "console.log").stat().st_size > 0
    assert not qemu_pids_for(tmp_path)


# ---------------------------------------------------------------- series, apply and build faults

@pytest.mark.parametrize("template", ["$(touch {p})", "x;touch {p}", "`touch {p}`",
                                      "HEAD..$(touch {p})", "<$(touch {p})@example.org>"])
def test_shell_metacharacters_never_reach_a_shell(small_tree, default_tree, tmp_path, template):
    pwned = tmp_path / "pwned"
    src = template.format(p=pwned)
    before = tree_state(small_tree)
    for args in (["series", "show", src, "--lore-url", "http://127.0.0.1:9/"],
                 ["series", "apply", src, "--kernel", small_tree, "--lore-url", "http://127.0.0.1:9/"],
                 ["build", "--series", src, "--out", tmp_path / "b"]):
        proc = run_zstest(*args, timeout=300)
        assert_fault(proc, EXIT_USAGE, "is no file, directory, git range A..B, message-id")
        assert not pwned.exists(), f"{args[:2]} ran {src!r} through a shell"
    assert tree_state(small_tree) == before


def test_metacharacter_directory_applies_without_a_shell(small_tree, tmp_path):
    pwned = tmp_path / "pwned"
    series = tmp_path / f"good;$(touch {pwned});`touch {pwned}`"
    shutil.copytree(FIXTURES / "good-3", series)
    before = tree_state(small_tree)
    out = tmp_path / "out"
    proc = run_zstest("series", "apply", series, "--kernel", small_tree, "--out", out, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "apply.json").read_text())["status"] == "ok"
    assert not pwned.exists()
    assert tree_state(small_tree) == before


def test_patch_writing_outside_the_tree_is_refused_by_the_cli(small_tree, default_tree, tmp_path):
    text = sorted((FIXTURES / "good-3").glob("*.patch"))[0].read_text()
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "0001-evil.patch").write_text(text.replace(" a/mm/zsmalloc.c", " a/../../escaped.c")
                                          .replace(" b/mm/zsmalloc.c", " b/../../escaped.c"))
    before = tree_state(small_tree)
    for args in (["series", "apply", evil, "--kernel", small_tree, "--out", tmp_path / "out"],
                 ["build", "--series", evil, "--out", tmp_path / "b"]):
        proc = run_zstest(*args, timeout=300)
        assert_fault(proc, EXIT_USAGE, "writes outside the tree (../../escaped.c)")
    assert not list(tmp_path.rglob("escaped.c")) and not (small_tree.parent.parent / "escaped.c").exists()
    assert tree_state(small_tree) == before


def test_conflict_is_exit_3_with_apply_json(small_tree, tmp_path):
    before = tree_state(small_tree)
    out = tmp_path / "out"
    proc = run_zstest("series", "apply", FIXTURES / "conflict", "--kernel", small_tree,
                      "--out", out, timeout=600)
    assert_fault(proc, EXIT_APPLY, "does not apply", "drivers/block/zram/zram_drv.c", out=out,
                 files=("apply.json", "apply.log"))
    assert json.loads((out / "apply.json").read_text())["status"] == "failed"
    assert tree_state(small_tree) == before


def test_bad_mbox_is_exit_2_for_apply_and_build(small_tree, default_tree, tmp_path):
    bad = tmp_path / "bad.mbox"
    good = (FIXTURES / "good-3").glob("*.patch").__next__().read_text()
    bad.write_text(good[: len(good) // 2])      # cut in the middle of its diff
    before = tree_state(small_tree)
    for args in (["series", "apply", bad, "--kernel", small_tree, "--out", tmp_path / "out"],
                 ["build", "--series", bad, "--out", tmp_path / "b"]):
        proc = run_zstest(*args, timeout=300)
        assert_fault(proc, EXIT_USAGE, str(bad))
    assert tree_state(small_tree) == before


@pytest.mark.slow
def test_config_drift_is_exit_4_with_build_json(kernel_build, default_tree, tmp_path):
    frag = tmp_path / "drift.config"
    frag.write_text("# include: base\n# CONFIG_BLOCK is not set\n")
    out = tmp_path / "b"
    proc = run_zstest("build", "--config", frag, "--out", out, timeout=900)
    assert_fault(proc, EXIT_BUILD, "did not survive olddefconfig", out=out,
                 files=("build.json", "build.log"))
    assert json.loads((out / "build.json").read_text())["status"] == "failed"


@pytest.mark.slow
def test_build_break_is_exit_4_with_build_log(kernel_build, default_tree, tmp_path):
    # Patch 2 of build-break alone: it calls zs_report_layout(), which patch 3 would define.
    series = tmp_path / "break"
    series.mkdir()
    patch = next((FIXTURES / "build-break").glob("0002-*.patch")).read_text()
    (series / "0001-break.patch").write_text(patch.replace("[PATCH 2/3]", "[PATCH 1/1]"))
    out = tmp_path / "b"
    proc = run_zstest("build", "--series", series, "--out", out, timeout=1800)
    assert_fault(proc, EXIT_BUILD, "mm/zsmalloc.c", out=out, files=("build.json", "build.log"))
    m = json.loads((out / "build.json").read_text())
    assert m["status"] == "failed"
    assert "zs_report_layout" in (out / "build.log").read_text(errors="replace")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_apply_is_130_and_the_worktree_stays_usable(small_tree, tmp_path, sig):
    before = tree_state(small_tree)
    out = tmp_path / "out"
    proc = spawn("series", "apply", FIXTURES / "good-3", "--kernel", small_tree, "--out", out)
    # interrupt while git am is applying a patch
    wait_for(lambda: git_am_running(proc.pid) or proc.poll() is not None, 300,
             "git am to start", step=0.01)
    assert proc.poll() is None, "the apply ended before it could be interrupted"
    children = [p for p, _ in descendants(proc.pid)]
    interrupt(proc, sig)
    stdout, stderr = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert_fault(done, EXIT_INTERRUPTED, "interrupted", out=out, files=("apply.json",))
    data = json.loads((out / "apply.json").read_text())
    assert data["status"] == "interrupted"
    assert not alive(children), "git outlived zstest"
    assert tree_state(small_tree) == before
    # the next run finds a clean, unlocked worktree
    again = run_zstest("series", "apply", FIXTURES / "good-3", "--kernel", small_tree,
                       "--out", tmp_path / "again", timeout=600)
    assert again.returncode == 0, again.stderr
    assert tree_state(small_tree) == before


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_build_is_130_and_the_worktree_stays_usable(kernel_build, default_tree,
                                                                  tmp_path, sig):
    from zstest.tree import prepare_worktree
    out = tmp_path / "b"
    proc = spawn("build", "--out", out)
    log = out / "build.log"
    wait_for(lambda: (log.is_file() and "### build:" in log.read_text(errors="replace"))
             or proc.poll() is not None, 600, "make to start")
    assert proc.poll() is None, "the build ended before it could be interrupted"
    time.sleep(1)            # within the first seconds of make on the cached objdir
    children = [p for p, _ in descendants(proc.pid)]
    assert children, "make is not running"
    interrupt(proc, sig)
    stdout, stderr = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert_fault(done, EXIT_INTERRUPTED, "interrupted", out=out, files=("build.json", "build.log"))
    m = json.loads((out / "build.json").read_text())
    assert m["status"] == "interrupted"
    assert not alive(children), "make outlived zstest"
    # the build worktree is unlocked and clean for the next run
    with prepare_worktree(default_tree, purpose="build") as wt:
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=wt.path, capture_output=True, text=True).stdout
        assert status == ""


def test_console_on_a_full_disk_keeps_reading_in_memory():
    """/dev/full fails every write with ENOSPC: the monitor records it and keeps the console."""
    import errno
    from zstest.vm.console import ConsoleMonitor
    console = ConsoleMonitor(Path("/dev/full"))
    console.feed(b"Linux version 6.1\n")
    console.feed(b"Kernel panic - not syncing: sysrq triggered crash\n")
    console.finish()
    console.join()
    assert console.write_error is not None and console.write_error.errno == errno.ENOSPC
    assert "Linux version 6.1" in console.text() and console.panicked
