"""--keep-vm-on-failure on the real test build under real QEMU: a failed test (and an oops that
leaves the guest answering) keeps the guest, the printed ssh command reaches it with the
system's ssh, and Ctrl-C (or SIGTERM) ends zstest with 130 and no QEMU left behind; results.json
keeps the run's own verdict. A run that passes keeps nothing."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys

import pexpect
import pytest

from conftest import REPO, run_zstest
from fixtures_vm import pid_alive, qemu_pids_for

pytestmark = pytest.mark.slow

SSH_LINE = re.compile(r"log in with:\r?\n\s*(ssh [^\r\n]+)\r?\n")
STOP_LINE = re.compile(r"to stop it: Ctrl-C here, or `kill -INT (\d+)` \(zstest\); "
                       r"QEMU \(pid (\d+)\)")


def keep_run(build, out, *args) -> pexpect.spawn:
    """boot-and-run --keep-vm-on-failure on a pseudo-terminal, as a developer types it."""
    return pexpect.spawn(sys.executable,
                         ["-m", "zstest.cli", "boot-and-run", "--build", str(build), "--out",
                          str(out), "--keep-vm-on-failure", *args],
                         cwd=str(REPO), env={**os.environ, "TERM": "dumb"}, encoding="utf-8",
                         timeout=600, dimensions=(50, 400))


def ssh_into(ssh_line: str, command: str) -> subprocess.CompletedProcess:
    """The printed command as printed, plus BatchMode (no password prompt if the key failed)."""
    argv = shlex.split(ssh_line)
    argv[-1:-1] = ["-o", "BatchMode=yes"]
    return subprocess.run(argv + [command], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def held_guest(build, out, *args):
    """A kept run waiting with its guest: yields (child, ssh command, QEMU pid) as printed;
    the child is closed (forced) whatever the test did."""
    child = keep_run(build, out, *args)
    try:
        child.expect(SSH_LINE)
        ssh_line = child.match.group(1).strip()
        child.expect(STOP_LINE)
        assert int(child.match.group(1)) == child.pid
        yield child, ssh_line, int(child.match.group(2))
    finally:
        child.close(force=True)


def test_failed_test_keeps_the_guest_until_ctrl_c(vm_build, tmp_path):
    out = tmp_path / "res"
    with held_guest(vm_build, out, "--suite", "failure-probe",
                    "-k", "test_probe_missing_migration") as (child, ssh_line, qemu_pid):
        # the results are final before the guest is handed over
        data = json.loads((out / "results.json").read_text())
        assert (data["status"], data["exit_code"]) == ("failed", 1)
        assert qemu_pid in qemu_pids_for(out)
        assert f"-p {data['vm']['ssh_port']} " in ssh_line and ssh_line.endswith("root@127.0.0.1")
        key = re.search(r"-i (\S+)", ssh_line).group(1)
        assert oct(os.stat(key).st_mode & 0o777) == "0o600"
        r = ssh_into(ssh_line, "uname -r; cat /proc/sys/kernel/ostype")
        assert r.returncode == 0, r.stderr
        version = json.loads((vm_build / "build.json").read_text())["kernel"]["version"]
        assert r.stdout.split() == [version, "Linux"]
        # the guest is still held: a second session works too
        assert ssh_into(ssh_line, "echo still-here").stdout.strip() == "still-here"
        child.sendintr()                       # Ctrl-C on zstest's terminal
        child.expect(pexpect.EOF, timeout=60)
    assert child.exitstatus == 130, child.before
    assert "zstest: interrupted" in child.before
    assert not pid_alive(qemu_pid) and qemu_pids_for(out) == []
    assert not os.path.exists(key), "the key of the kept guest is left behind"
    # Ctrl-C ended the hold, not the run: its verdict stays
    data = json.loads((out / "results.json").read_text())
    assert (data["status"], data["exit_code"]) == ("failed", 1)
    assert data["tests"][0]["status"] == "failed"
    assert "guest kept for debugging" in (out / "console.log").read_text(errors="replace")


def test_oops_keeps_the_answering_guest_and_sigterm_ends_it(vm_build, tmp_path):
    out = tmp_path / "res"
    with held_guest(vm_build, out, "--suite", "faults",
                    "-k", "(test_lkdtm_oops and not cleanup) or test_after") \
            as (child, ssh_line, qemu_pid):
        # the oopsed kernel still serves a shell: the developer can read its log
        r = ssh_into(ssh_line, "dmesg | grep -c -e 'Oops' -e 'BUG: kernel NULL pointer'")
        assert r.returncode == 0 and int(r.stdout) >= 1, r.stdout + r.stderr
        data = json.loads((out / "results.json").read_text())
        assert data["kernel_crashed"] is True and data["status"] == "failed"
        # the run stopped at the kept guest: no fresh guest for the test after the oops
        assert data["not_run"] == ["faults_guest.py::test_after"]
        assert "--keep-vm-on-failure" in data["message"]
        os.kill(child.pid, signal.SIGTERM)
        child.expect(pexpect.EOF, timeout=60)
    assert child.exitstatus == 130, child.before
    assert not pid_alive(qemu_pid) and qemu_pids_for(out) == []


def test_poweroff_in_the_kept_guest_ends_the_wait_with_the_runs_exit_code(vm_build, tmp_path):
    out = tmp_path / "res"
    with held_guest(vm_build, out, "--suite", "failure-probe",
                    "-k", "test_probe_missing_migration") as (child, ssh_line, _):
        ssh_into(ssh_line, "poweroff -f")
        child.expect("QEMU exited: the kept guest is gone", timeout=60)
        child.expect(pexpect.EOF, timeout=60)
    assert child.exitstatus == 1, child.before
    assert qemu_pids_for(out) == []


def test_a_passing_run_keeps_nothing(vm_build, tmp_path):
    out = tmp_path / "res"
    r = run_zstest("boot-and-run", "--build", vm_build, "--out", out, "--suite", "boot",
                   "-k", "test_kernel_is_the_one_built", "--keep-vm-on-failure", timeout=600)
    assert r.returncode == 0, r.stderr
    assert "log in with" not in r.stderr
    assert qemu_pids_for(out) == []
