"""launch_guest on the real kernel build under TCG: SSH, console, splats, faults, teardown.

Every test checks by PID that no QEMU it started is left behind.
"""

from __future__ import annotations

import _thread
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fixtures_vm import build_kernel_path, pid_alive, qemu_pids_for
from zstest.cache import cache_dir, file_lock
from zstest.errors import EXIT_BOOT, EXIT_TEST_FAILED, BootFailed
from zstest.vm.ssh import GuestCommandTimeout, GuestLost, KernelCrashed

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def assert_no_qemu(path, pid=None):
    if pid is not None:
        assert not pid_alive(pid), f"QEMU {pid} outlived its guest"
    assert qemu_pids_for(path) == []


def test_boot_run_put_get_qmp_and_teardown(boot_guest, vm_build, tmp_path):
    version = json.loads((vm_build / "build.json").read_text())["kernel"]["version"]
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(300_000))
    with boot_guest("g") as guest:
        pid = guest.pid
        assert guest.accel.name == "tcg" and 0 < guest.boot_to_ssh_s < 60
        assert f"hostfwd=tcp:127.0.0.1:{guest.ssh_port}-:22" in " ".join(guest.qemu_argv)
        assert guest.run("uname -r").stdout.strip() == version
        r = guest.run("echo out; echo err >&2; exit 7")
        assert (r.exit_status, r.stdout, r.stderr) == (7, "out\n", "err\n")
        guest.put(payload, "/tmp/payload.bin")
        assert guest.run("md5sum /tmp/payload.bin").stdout.split()[0] == \
            __import__("hashlib").md5(payload.read_bytes()).hexdigest()
        guest.get("/tmp/payload.bin", tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == payload.read_bytes()
        assert guest.qmp("query-status")["status"] == "running"
        assert guest.console.splats == []
        log = guest.console.log_path
    assert_no_qemu(tmp_path, pid)
    text = log.read_text(errors="replace")
    assert "Linux version" in text and "ZSTEST-GUEST-READY sshd up" in text
    assert "Power down" in text or "reboot:" in text     # poweroff over SSH reached the kernel


def test_command_timeout_carries_output_and_guest_survives(boot_guest, tmp_path):
    with boot_guest("g") as guest:
        start = time.monotonic()
        with pytest.raises(GuestCommandTimeout) as exc:
            guest.run("echo before; echo oops >&2; sleep 60", timeout=3)
        assert time.monotonic() - start < 10
        assert exc.value.stdout == "before\n" and exc.value.stderr == "oops\n"
        assert guest.run("echo still here").stdout == "still here\n"
        pid = guest.pid
    assert_no_qemu(tmp_path, pid)


def test_panic_during_command_is_reported_at_once(boot_guest, tmp_path):
    with pytest.raises(GuestLost) as exc:
        with boot_guest("g") as guest:
            pid = guest.pid
            start = time.monotonic()
            try:
                guest.run("echo c > /proc/sysrq-trigger; sleep 100", timeout=120)
            finally:
                took = time.monotonic() - start
    assert exc.value.panicked and took < 15
    # the kernel under test is to blame: a failed test (exit 1), not a lost guest (exit 5)
    assert isinstance(exc.value, KernelCrashed) and exc.value.kind == "panic"
    assert exc.value.exit_code == EXIT_TEST_FAILED
    assert "Kernel panic - not syncing: sysrq triggered crash" in exc.value.console_tail
    assert_no_qemu(tmp_path, pid)


def build_splatmod(vm_build: Path, tmp_path: Path) -> Path:
    manifest = json.loads((vm_build / "build.json").read_text())
    objdir = Path(manifest.get("objdir") or "")
    if not (objdir / "Module.symvers").is_file() and not (objdir / "Makefile").is_file():
        pytest.skip(f"the build's object dir {objdir} is gone: cannot build the WARN module")
    src = tmp_path / "splatmod"
    shutil.copytree(REPO / "tests" / "data" / "console" / "splatmod", src)
    with file_lock(cache_dir("locks") / f"objs-{objdir.name}.lock"):
        subprocess.run(["make", "-s", "-C", str(objdir), f"M={src}", "modules"], check=True,
                       capture_output=True, timeout=600)
    return src / "splatmod.ko"


def test_warn_during_command_is_a_splat_with_its_trace(boot_guest, vm_build, tmp_path):
    from zstest.image import ImageRequest, build_image
    module = build_splatmod(vm_build, tmp_path)
    image = build_image(ImageRequest(build_dir=vm_build,
                                     extra_files={"/root/splatmod.ko": module}))
    with boot_guest("g", image=image) as guest:
        mark = guest.console.mark()
        assert guest.run("insmod /root/splatmod.ko what=warn").exit_status == 0
        assert guest.console.wait_for(r"---\[ end trace", timeout=20, since=mark)
        (splat,) = [s for s in guest.console.splats_since(mark)]
        assert splat.kind == "warning" and "splatmod.c" in splat.title
        assert "splatmod: a WARN for zstest" in splat.title
        assert "Call Trace:" in splat.text and splat.wall is not None
        assert guest.console.splats_since(guest.console.mark()) == []
        pid = guest.pid
    assert_no_qemu(tmp_path, pid)


def test_kernel_panicking_at_boot_is_boot_failed_quickly(boot_guest, tmp_path):
    start = time.monotonic()
    with pytest.raises(BootFailed) as exc:
        with boot_guest("g", cmdline_extra="rdinit=/bin/false"):
            pass
    assert time.monotonic() - start < 45
    assert exc.value.exit_code == EXIT_BOOT and "panicked during boot" in exc.value.message
    assert "Attempted to kill init" in exc.value.detail
    assert_no_qemu(tmp_path)


def test_garbage_bzimage_is_boot_failed(boot_guest, tmp_path):
    garbage = tmp_path / "bzImage"
    garbage.write_bytes(os.urandom(2_000_000))
    start = time.monotonic()
    with pytest.raises(BootFailed) as exc:
        with boot_guest("g", kernel=garbage):
            pass
    assert time.monotonic() - start < 30
    assert exc.value.exit_code == EXIT_BOOT
    assert exc.value.detail.strip(), "the console tail (QEMU's own complaint) is missing"
    assert_no_qemu(tmp_path)


def test_sshd_never_starting_is_boot_failed_at_the_deadline(boot_guest, tmp_path):
    start = time.monotonic()
    with pytest.raises(BootFailed) as exc:
        with boot_guest("g", cmdline_extra="zstest.nosshd", boot_timeout=20):
            pass
    took = time.monotonic() - start
    assert 19 < took < 35
    assert "no ready marker" in exc.value.message
    assert "not starting dropbear" in exc.value.detail
    assert_no_qemu(tmp_path)


def test_keyboard_interrupt_inside_the_block_kills_qemu(boot_guest, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with boot_guest("g") as guest:
            pid = guest.pid
            assert pid_alive(pid)
            raise KeyboardInterrupt
    assert_no_qemu(tmp_path, pid)


def test_keyboard_interrupt_during_boot_kills_qemu(boot_guest, tmp_path):
    console = tmp_path / "g" / "console.log"

    def interrupt_once_qemu_prints():
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if console.exists() and b"Linux version" in console.read_bytes():
                _thread.interrupt_main()
                return
            time.sleep(0.05)

    threading.Thread(target=interrupt_once_qemu_prints, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        with boot_guest("g"):
            pytest.fail("the guest booted before the interrupt")
    assert b"ZSTEST-GUEST-READY sshd up" not in console.read_bytes()
    assert_no_qemu(tmp_path)


DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from zstest.image import ImageRequest, build_image
from zstest.vm.guest import GuestSpec, launch_guest
build = Path({build!r})
image = build_image(ImageRequest(build_dir=build))
spec = GuestSpec(kernel=Path({kernel!r}), image=image, accel="tcg", workdir=Path({work!r}),
                 cmdline_extra={extra!r})
try:
    with launch_guest(spec) as guest:
        print("booted", flush=True)
        guest.run("sleep 600", timeout=700)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


@pytest.mark.parametrize("when", ["boot", "command"])
def test_sigint_to_a_driver_process_leaves_no_qemu(vm_build, guest_image, tmp_path, when):
    work = tmp_path / "drv"
    script = DRIVER.format(repo=str(REPO), build=str(vm_build), work=str(work),
                           kernel=str(build_kernel_path(vm_build)),
                           extra=os.environ.get("ZSTEST_TEST_CMDLINE", ""))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        if when == "boot":
            end = time.monotonic() + 60
            while not (work / "console.log").exists() or \
                    b"Linux version" not in (work / "console.log").read_bytes():
                assert time.monotonic() < end and proc.poll() is None
                time.sleep(0.05)
        else:
            assert proc.stdout.readline().strip() == "booted"
            time.sleep(1)
        assert qemu_pids_for(work), "QEMU should be running now"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 130 and "interrupted" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert_no_qemu(work)


def test_two_guests_at_once(boot_guest, tmp_path):
    # one on the default firmware (qboot when installed), one on SeaBIOS
    with boot_guest("a") as a, boot_guest("b", firmware="seabios") as b:
        assert "-bios" not in b.qemu_argv
        assert a.ssh_port != b.ssh_port and a.pid != b.pid
        a.run("echo A > /tmp/who", check=True)
        b.run("echo B > /tmp/who", check=True)
        assert a.run("cat /tmp/who").stdout == "A\n" and b.run("cat /tmp/who").stdout == "B\n"
        pids = (a.pid, b.pid)
    for pid in pids:
        assert not pid_alive(pid)
    assert_no_qemu(tmp_path)


def test_pc_dimm_is_online_movable(boot_guest, tmp_path):
    with boot_guest("g", dimm_mb=256) as guest:
        devices = guest.qmp("query-memory-devices")
        assert devices[0]["data"]["id"] == "dimm0" and devices[0]["data"]["size"] == 256 << 20
        zoneinfo = guest.run("cat /proc/zoneinfo", check=True).stdout
        movable = zoneinfo.split("zone  Movable")[1].split("zone ")[0]
        present = int(movable.split("present")[1].split()[0])
        assert present >= (256 << 20) // 4096 * 0.9
        pid = guest.pid
    assert_no_qemu(tmp_path, pid)


def test_accel_probe_with_the_kernel_never_hangs(vm_build, tmp_path, monkeypatch):
    from zstest.manifests import load_build
    from zstest.target import Target
    from zstest.vm.accel import probe_accel
    monkeypatch.setenv("ZSTEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ZSTEST_ACCEL", raising=False)
    arch = Target.from_manifest(load_build(vm_build)).arch
    start = time.monotonic()
    choice = probe_accel(build_kernel_path(vm_build), timeout=10, arch=arch)
    assert time.monotonic() - start < 20
    assert choice.name in ("kvm", "tcg") and choice.reason
    start = time.monotonic()
    assert probe_accel(build_kernel_path(vm_build), timeout=10, arch=arch) == choice
    assert time.monotonic() - start < 1          # cached for this host boot
    assert_no_qemu(tmp_path)


def test_frozen_guest_cannot_hang_run_or_teardown(boot_guest, tmp_path):
    """QMP stop freezes the vCPUs: SSH gets no answer; run() and teardown still end."""
    start = time.monotonic()
    with pytest.raises(GuestLost, match="does not answer|did not accept"):
        with boot_guest("g") as guest:
            pid = guest.pid
            guest.qmp("stop")
            start = time.monotonic()
            guest.run("true", timeout=5)
    assert time.monotonic() - start < 20
    assert_no_qemu(tmp_path, pid)


def test_killed_command_vs_killed_sshd(boot_guest, tmp_path):
    with pytest.raises(GuestLost) as exc:
        with boot_guest("g") as guest:
            pid = guest.pid
            # a command killed by a signal has no exit status, but the guest is fine
            assert guest.run("kill -9 $$").exit_status == -1
            assert guest.run("echo ok").stdout == "ok\n"
            start = time.monotonic()
            try:
                guest.run("killall dropbear; sleep 30", timeout=60)
            finally:
                took = time.monotonic() - start
    assert took < 10 and not exc.value.panicked
    assert "cut short" in exc.value.message
    assert_no_qemu(tmp_path, pid)
