"""boot-and-run end to end: a real kernel, a real QEMU (TCG), a real SSH session.

Every test here checks that no QEMU process it started outlives it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import run_zstest
from fixtures_vm import qemu_pids_for
from test_faults import assert_fault
from zstest.errors import EXIT_BOOT, EXIT_INTERRUPTED, EXIT_TEST_FAILED

EVIDENCE = ("results.json", "summary.txt", "junit.xml", "console.log")

pytestmark = pytest.mark.slow


def load(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def spawn(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zstest.cli", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_boot_suite_passes_on_the_built_kernel(kernel_build, tmp_path):
    out = tmp_path / "res"
    junit = tmp_path / "ci" / "junit.xml"
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "boot",
                      "--out", out, "--junit", junit, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = load(out)
    assert data["status"] == "passed"
    assert data["accel"]["name"] in ("kvm", "tcg") and data["accel"]["reason"]
    assert data["boot_to_ssh_s"] > 0
    build = json.loads((kernel_build / "build.json").read_text())
    assert data["kernel"]["uname"] == build["kernel"]["version"]
    names = {t["name"].split("::")[-1]: t for t in data["tests"]}
    assert names["test_kernel_is_the_one_built"]["status"] == "passed"
    assert names["test_zram_control_exists"]["status"] == "passed"
    for t in data["tests"]:
        assert (out / t["log"]).is_file()
    console = (out / "console.log").read_text(errors="replace")
    assert "Linux version" in console             # from the first byte ...
    assert "zstest: begin" in console and "zstest: end" in console   # ... with test boundaries
    assert ET.parse(junit).getroot().get("tests") == str(len(data["tests"]))
    assert "PASSED" in (out / "summary.txt").read_text()
    assert not qemu_pids_for(out)


def test_two_runs_at_once_do_not_interfere(kernel_build, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = [spawn("boot-and-run", "--build", kernel_build, "--suite", "boot",
                   "-k", "exit_status or uname", "--out", o) for o in outs]
    for p in procs:
        p.communicate(timeout=900)
    for p, o in zip(procs, outs):
        assert p.returncode == 0, (o, (o / "summary.txt").read_text() if (o / "summary.txt").exists() else "")
        assert load(o)["status"] == "passed"
        assert not qemu_pids_for(o)
    # each run had its own SSH port and its own console, results and per-test logs
    ports = [load(o)["vm"]["ssh_port"] for o in outs]
    assert ports[0] != ports[1] and all(ports)
    consoles = [(o / "console.log").read_text(errors="replace") for o in outs]
    assert all(c.count("Linux version") == 1 for c in consoles)
    assert consoles[0] != consoles[1]


def test_kernel_panic_mid_test_fails_fast_with_the_panic(kernel_build, tmp_path):
    out = tmp_path / "res"
    start = time.monotonic()
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "faults",
                      "-k", "panic or after", "--out", out, timeout=600)
    elapsed = time.monotonic() - start
    assert_fault(proc, EXIT_TEST_FAILED, "Kernel panic", out=out, files=EVIDENCE)
    data = load(out)
    assert data["status"] == "failed" and data["cause"] == "kernel"
    tests = {t["name"].split("::")[-1]: t for t in data["tests"]}
    assert tests["test_panic"]["status"] == "failed"
    assert "Kernel panic" in tests["test_panic"]["message"].splitlines()[0]
    # the panicked guest is gone; the rest of the selection ran in a fresh one
    assert tests["test_after"]["status"] == "passed"
    assert len(data["vm"]["boots"]) == 2
    assert "Kernel panic" in (out / "console.log").read_text(errors="replace")
    assert elapsed < 240
    assert not qemu_pids_for(out)


def test_lost_sshd_is_reported_not_waited_on(kernel_build, tmp_path):
    out = tmp_path / "res"
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "faults",
                      "-k", "sshd_killed or after", "--out", out, "--timeout", "60", timeout=600)
    assert_fault(proc, EXIT_BOOT, "the guest stopped answering during a test", out=out,
                 files=EVIDENCE)
    data = load(out)
    assert data["status"] == "error" and data["cause"] == "infrastructure"
    tests = {t["name"].split("::")[-1]: t for t in data["tests"]}
    assert tests["test_sshd_killed"]["status"] == "error"
    # no kernel evidence, still exit 5; the rest of the selection ran in a fresh guest
    assert tests["test_after"]["status"] == "passed"
    assert not qemu_pids_for(out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_during_a_test_exits_130_and_kills_qemu(kernel_build, tmp_path, sig):
    out = tmp_path / "res"
    proc = spawn("boot-and-run", "--build", kernel_build, "--suite", "faults",
                 "-k", "sleep", "--out", out)
    console = out / "console.log"
    wait_for(lambda: console.exists() and b"zstest: begin" in console.read_bytes(), 300,
             "the sleep test to start")
    assert qemu_pids_for(out)
    proc.send_signal(sig)
    stdout, err = proc.communicate(timeout=60)
    assert_fault(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, err),
                 EXIT_INTERRUPTED, "interrupted", out=out, files=EVIDENCE)
    assert load(out)["status"] == "interrupted"
    assert "zstest: begin" in console.read_text(errors="replace")
    assert not qemu_pids_for(out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_during_boot_exits_130_and_kills_qemu(kernel_build, tmp_path, sig):
    out = tmp_path / "res"
    proc = spawn("boot-and-run", "--build", kernel_build, "--suite", "boot", "--out", out)
    wait_for(lambda: qemu_pids_for(out), 120, "QEMU to start")
    time.sleep(0.5)
    proc.send_signal(sig)
    stdout, err = proc.communicate(timeout=60)
    assert_fault(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, err),
                 EXIT_INTERRUPTED, "interrupted", out=out,
                 files=("results.json", "summary.txt", "junit.xml"))
    assert (out / "console.log").exists()
    assert load(out)["status"] == "interrupted"
    assert not qemu_pids_for(out)


def test_run_timeout_stops_a_hung_run(kernel_build, tmp_path):
    out = tmp_path / "res"
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "faults", "-k", "sleep",
                      "--out", out, "--run-timeout", "25", timeout=400)
    assert_fault(proc, EXIT_BOOT, "time limit", out=out, files=EVIDENCE)
    data = load(out)
    assert data["status"] == "error" and "time limit" in data["message"]
    assert not qemu_pids_for(out)


def test_not_a_build_dir_is_one_sentence_exit_2(tmp_path):
    proc = run_zstest("boot-and-run", "--build", tmp_path, "--out", tmp_path / "res")
    assert_fault(proc, 2, "is not a zstest build directory")


def test_unknown_suite_is_exit_2(kernel_build, tmp_path):
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "nosuch",
                      "--out", tmp_path / "res")
    assert_fault(proc, 2, "unknown suite 'nosuch'")
