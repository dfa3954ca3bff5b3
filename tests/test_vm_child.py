"""vm/child.py: the one pre-exec step of every QEMU zstest starts (the guest's, the KVM
probe's): the child dies with the process that launched it, even when that one is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import REPO

LAUNCHER = """
import subprocess, sys, time
from zstest.vm.child import die_with_parent
child = subprocess.Popen(["sleep", "600"], preexec_fn=die_with_parent, start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_child_dies_when_its_launcher_is_sigkilled():
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
    child = int(launcher.stdout.readline())
    try:
        assert _alive(child)
        launcher.send_signal(signal.SIGKILL)     # no cleanup code of the launcher runs
        launcher.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the child outlived its SIGKILLed launcher"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
