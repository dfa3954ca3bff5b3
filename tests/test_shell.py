"""`zstest shell` on the real test build under real QEMU: one command, a script on stdin, an
interactive session through a pseudo-terminal, --gdb, and --vmcore after a sysrq panic.
Every test checks that no QEMU of its run is left."""

from __future__ import annotations

import os
import re
import sys

import pexpect
import pytest

from conftest import REPO, run_zstest
from fixtures_vm import qemu_pids_for

pytestmark = pytest.mark.slow


def shell(build, out, *args, input=None):
    r = run_zstest("shell", "--build", build, "--out", out, *args, input=input, timeout=600)
    assert "Traceback" not in r.stderr, r.stderr
    assert qemu_pids_for(out) == [], "a QEMU of this run is still alive"
    return r


def test_command_prints_and_exits_with_its_status(kernel_build, kernel_build_manifest, tmp_path):
    r = shell(kernel_build, tmp_path / "a", "--command", "uname -r")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == kernel_build_manifest["kernel"]["version"]
    r = shell(kernel_build, tmp_path / "b", "--command", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, "err" in r.stderr) == (7, "out\n", True)


def test_script_on_stdin(kernel_build, tmp_path):
    r = shell(kernel_build, tmp_path / "s", input="echo one\ncat /proc/sys/kernel/ostype\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["one", "Linux"]


def test_interactive_session_on_a_pty(kernel_build, tmp_path):
    out = tmp_path / "i"
    child = pexpect.spawn(sys.executable, ["-m", "zstest.cli", "shell", "--build", str(kernel_build),
                                           "--out", str(out)],
                          cwd=str(REPO), env={**os.environ, "TERM": "dumb"}, encoding="utf-8",
                          timeout=120, dimensions=(40, 120))
    try:
        child.expect(r"guest up in")
        child.expect(r"[#$] ")                        # the guest's prompt
        child.sendline("echo hi-$((40+2))")
        child.expect("hi-42")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    assert qemu_pids_for(out) == []


def test_gdb_stub_on_a_free_localhost_port(kernel_build, tmp_path):
    out = tmp_path / "g"
    child = pexpect.spawn(sys.executable, ["-m", "zstest.cli", "shell", "--build", str(kernel_build),
                                           "--out", str(out), "--gdb", "--command",
                                           "cat /proc/cmdline; sleep 3"],
                          cwd=str(REPO), encoding="utf-8", timeout=120)
    try:
        child.expect(r"gdb: gdb (\S+/vmlinux) -ex 'target remote 127\.0\.0\.1:(\d+)'")
        vmlinux, port = child.match.group(1), int(child.match.group(2))
        assert os.path.isfile(vmlinux)
        child.expect("nokaslr")
        # the stub listens on 127.0.0.1 (connecting would halt the guest's CPUs, as gdb does)
        listening = [l.split() for l in open("/proc/net/tcp").read().splitlines()[1:]]
        assert any(f[1] == f"0100007F:{port:04X}" and f[3] == "0A" for f in listening)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert qemu_pids_for(out) == []


def test_vmcore_after_sysrq_panic(kernel_build, tmp_path):
    out = tmp_path / "v"
    vmcore = out / "vmcore"
    r = shell(kernel_build, out, "--vmcore", vmcore, "--command",
              "echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger")
    assert r.returncode == 1, r.stderr
    assert "the guest kernel panicked:" in r.stderr and "sysrq triggered crash" in r.stderr
    assert f"zstest: vmcore: {vmcore}" in r.stderr
    head = vmcore.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and head[16] == 4          # ET_CORE
    assert vmcore.stat().st_size > 512 << 20                  # the guest's RAM, 1 GiB
    assert "Kernel panic - not syncing: sysrq triggered crash" in (out / "console.log").read_text()
    if os.path.exists("/usr/bin/file"):        # file(1) may be missing: the magic is enough
        import subprocess
        described = subprocess.run(["file", str(vmcore)], capture_output=True, text=True).stdout
        assert re.search(r"ELF 64-bit LSB core file", described), described


def test_bad_build_dir_is_one_sentence(tmp_path):
    r = run_zstest("shell", "--build", tmp_path, "--command", "true", timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("zstest: error: ") and len(r.stderr.strip().splitlines()) == 1
