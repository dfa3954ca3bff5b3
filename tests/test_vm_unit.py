"""vm stage pieces without a kernel: QEMU command line, console monitor on recorded
console logs, QMP against a real (firmware-only) QEMU, the accelerator probe's cache."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import time
from pathlib import Path

import pytest

from zstest.splats import find_splats
from zstest.target import Target
from zstest.vm.accel import AccelChoice, host_boot_id, probe_accel
from zstest.vm.console import ConsoleMonitor
from zstest.vm.qemu import free_port, kernel_cmdline, qemu_argv
from zstest.vm.qmp import QMPClient, QMPError

DATA = Path(__file__).parent / "data" / "console"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEuuEQwTK8nnKaR2vOXq45dLAdi1mMYTMrh2NIZmf1RQ"


def test_cmdline_carries_key_marker_and_dimm_option():
    line = kernel_cmdline(KEY, "READY", dimm=True, extra="zstest.nosshd  quiet")
    words = line.split()
    assert "console=ttyS0,115200" in words and "panic=-1" in words
    assert "zstest.authkey=ssh-ed25519:" + KEY.split()[1] in words
    assert "zstest.marker=READY" in words and "memhp_default_state=online_movable" in words
    assert words[-2:] == ["zstest.nosshd", "quiet"]
    assert "memhp_default_state" not in kernel_cmdline(KEY, "READY")


def test_qemu_argv_tcg_with_dimm(tmp_path):
    argv = qemu_argv("qemu", Path("/k"), Path("/i"), "c", "tcg", 12345, tmp_path / "q.sock",
                     memory_mb=1024, cpus=2, dimm_mb=512)
    s = " ".join(argv)
    assert "-accel tcg,thread=multi" in s and "-accel kvm" not in s
    assert "-m 1024M,slots=2,maxmem=2048M" in s
    assert "memory-backend-ram,id=dimm0mem,size=512M" in s and "pc-dimm,id=dimm0" in s
    assert "hostfwd=tcp:127.0.0.1:12345-:22" in s          # bound to loopback only
    assert f"unix:{tmp_path / 'q.sock'},server=on,wait=off" in s
    assert "-no-reboot" in argv and "-nodefaults" in argv
    kvm = qemu_argv("qemu", Path("/k"), Path("/i"), "c", "kvm", 1, tmp_path / "q")
    assert "kvm" in kvm and "-m" in kvm and kvm[kvm.index("-m") + 1] == "1024M"


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def feed_in_random_chunks(monitor: ConsoleMonitor, data: bytes, seed: int = 1) -> None:
    rng = random.Random(seed)
    i = 0
    while i < len(data):
        n = rng.randint(1, 700)
        monitor.feed(data[i:i + n])
        i += n
    monitor.finish()


@pytest.mark.parametrize("name", ["hung-task-debian-6.1.log", "panic-sysrq-debian-6.1.log"])
def test_monitor_fed_in_chunks_finds_what_the_parser_finds(tmp_path, name):
    data = (DATA / name).read_bytes()
    monitor = ConsoleMonitor(tmp_path / "console.log")
    feed_in_random_chunks(monitor, data)
    monitor.join()
    assert (tmp_path / "console.log").read_bytes() == data        # every byte kept
    offline = find_splats(data.decode(errors="replace").splitlines())
    live = monitor.splats
    assert [(s.kind, s.title, s.line_no) for s in live] == \
        [(s.kind, s.title, s.line_no) for s in offline]
    assert all(s.wall is not None for s in live)


def test_monitor_marks_panics_and_splats_since(tmp_path):
    data = (DATA / "panic-sysrq-debian-6.1.log").read_bytes()
    cut = data.index(b"sysrq: Trigger a crash")
    monitor = ConsoleMonitor(tmp_path / "console.log")
    monitor.feed(data[:cut])
    mark = monitor.mark()
    assert not monitor.panicked and monitor.splats_since(mark) == []
    assert monitor.wait_for(r"Trigger a crash", timeout=0.2, since=mark) is None
    monitor.feed(data[cut:])
    assert monitor.panicked and "sysrq triggered crash" in monitor.panic_line
    assert monitor.wait_for(r"Trigger a crash", timeout=0.2, since=mark)
    monitor.finish()
    assert [s.kind for s in monitor.splats_since(mark)] == ["panic"]
    assert monitor.splats_since(monitor.mark()) == []
    assert "Kernel Offset" in monitor.tail(3)
    monitor.join()


def test_wait_for_gives_up_at_eof(tmp_path):
    monitor = ConsoleMonitor(tmp_path / "c.log")
    monitor.feed(b"hello\n")
    monitor.finish()
    start = time.monotonic()
    assert monitor.wait_for("never printed", timeout=10) is None
    assert time.monotonic() - start < 1
    monitor.join()


def test_qmp_against_real_qemu(tmp_path):
    sock = tmp_path / "qmp.sock"
    proc = subprocess.Popen(["qemu-system-x86_64", "-S", "-nodefaults", "-display", "none",
                             "-machine", "pc", "-accel", "tcg", "-m", "64",
                             "-qmp", f"unix:{sock},server=on,wait=off"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        qmp = QMPClient(sock).connect(deadline_s=10)
        assert qmp.execute("query-status")["status"] == "prelaunch"
        with pytest.raises(QMPError, match="CommandNotFound"):
            qmp.execute("no-such-command")
        qmp.execute("quit")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_accel_probe_forced_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSTEST_CACHE", str(tmp_path))
    monkeypatch.setenv("ZSTEST_ACCEL", "tcg")
    arch = Target.default().arch
    assert probe_accel(arch=arch) == AccelChoice("tcg", "forced by ZSTEST_ACCEL=tcg")
    monkeypatch.delenv("ZSTEST_ACCEL")
    # a verdict already cached for this host boot is returned without booting anything
    (tmp_path / "accel").mkdir()
    (tmp_path / "accel" / "verdicts.json").write_text(json.dumps(
        {host_boot_id() + "-firmware": {"name": "tcg", "reason": "cached verdict"}}))
    import os
    if os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert probe_accel(arch=arch).reason == "cached verdict"


def test_accel_probe_firmware_never_hangs(tmp_path, monkeypatch):
    """A real KVM start of the firmware, with a deadline: whatever KVM does, an answer comes."""
    monkeypatch.setenv("ZSTEST_CACHE", str(tmp_path))
    start = time.monotonic()
    arch = Target.default().arch
    choice = probe_accel(timeout=8, arch=arch)
    assert choice.name in ("kvm", "tcg") and choice.reason
    assert time.monotonic() - start < 15
    again = probe_accel(timeout=8, arch=arch)
    assert again == choice


def test_firmware_choice(tmp_path):
    from zstest.vm.qemu import QBOOT_PATHS, find_firmware
    assert find_firmware("seabios") is None
    auto = find_firmware("auto")
    assert auto is None or str(auto) in QBOOT_PATHS
    argv = qemu_argv("qemu", Path("/k"), Path("/i"), "c", "tcg", 1, tmp_path / "q",
                     firmware=Path("/fw.rom"))
    assert argv[argv.index("-bios") + 1] == "/fw.rom"
    assert "-bios" not in qemu_argv("qemu", Path("/k"), Path("/i"), "c", "tcg", 1, tmp_path / "q")


def test_marks_are_offsets_in_the_log_file(tmp_path):
    log = tmp_path / "console.log"
    log.write_bytes(b"a previous guest's log\n")
    monitor = ConsoleMonitor(log)
    monitor.feed(b"[    1.000000] first line\n")
    mark = monitor.mark()
    monitor.feed(b"[    2.000000] second line\n")
    monitor.join()
    assert log.read_bytes()[mark:] == b"[    2.000000] second line\n"


def test_tcg_raises_the_rcu_stall_limit_kvm_does_not():
    # A debug kernel under TCG holds a CPU > 21 s during init: an emulator artefact, not a stall.
    assert "rcupdate.rcu_cpu_stall_timeout=120" in kernel_cmdline(KEY, "READY", accel="tcg")
    assert "rcu_cpu_stall_timeout" not in kernel_cmdline(KEY, "READY", accel="kvm")


def test_console_pump_never_reaps_qemu_so_no_waitpid_race(tmp_path):
    """CI once printed a traceback from the console thread: on EOF pexpect's
    read_nonblocking waitpid()s the child, and the main thread had just reaped the same
    QEMU ("Did someone else call waitpid() on our process?"). Provoked here for certain:
    the child is reaped behind pexpect's back before the pump reads its last bytes and
    its EOF. The pump must log every byte, end, and raise nothing."""
    import os
    import threading
    import pexpect

    child = pexpect.spawn("/bin/sh", ["-c", "printf 'one\\ntwo\\n'"])
    os.waitpid(child.pid, 0)                     # someone else reaped it
    raised = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: raised.append(args.exc_value)
    try:
        monitor = ConsoleMonitor(tmp_path / "console.log")
        monitor.start(child)
        assert monitor.closed.wait(10), "the pump never saw the pty's end"
        monitor.join()
    finally:
        threading.excepthook = old_hook
        child.ptyproc.terminated = True          # pexpect would ask waitpid() again
        child.close(force=True)
    assert raised == []
    assert (tmp_path / "console.log").read_bytes() == b"one\ntwo\n"


def test_qemu_alive_asked_from_two_threads_after_someone_reaped_says_no(tmp_path):
    """Guest.qemu_alive is asked from the main thread and from SSH/keep worker threads; each
    isalive() may waitpid(). A child reaped behind pexpect's back (what the loser of two
    concurrent isalive() calls sees) is "not alive", never an exception in some thread."""
    import os
    import threading
    import pexpect
    from zstest.image import Image
    from zstest.vm.accel import AccelChoice
    from zstest.vm.guest import Guest, GuestSpec

    spec = GuestSpec(kernel=tmp_path / "k", image=Image(tmp_path / "i", "", "x", 1, False))
    guest = Guest(spec, tmp_path, ConsoleMonitor(tmp_path / "console.log"),
                  AccelChoice("tcg", "test"))
    guest.child = pexpect.spawn("/bin/true")
    os.waitpid(guest.child.pid, 0)
    answers, raised = [], []

    def ask():
        try:
            answers.append(guest.qemu_alive)
        except Exception as exc:      # the bug: pexpect's ExceptionPexpect escaped
            raised.append(exc)
    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    guest._kill()                      # and the teardown copes as well
    assert raised == [] and answers == [False] * 4
