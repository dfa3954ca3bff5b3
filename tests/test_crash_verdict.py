"""The crash path, end to end: a real kernel made to fail by its own LKDTM, a real QEMU, SSH.

What a developer must be able to trust when the kernel under test breaks (issue 18):
exit 1 with the splat named (never 5, the code of infrastructure trouble), the failing
test named with the splat's title, every splat in results.json / junit.xml / summary.txt /
the report, the remaining tests run in a fresh guest, no long cleanup on a dead kernel,
Ctrl-C after an oops keeps the oops, and no QEMU left behind.
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

from conftest import REPO, run_zstest
from fixtures_vm import qemu_pids_for
from test_faults import assert_fault
from zstest.errors import EXIT_INTERRUPTED, EXIT_TEST_FAILED

pytestmark = pytest.mark.slow

EVIDENCE = ("results.json", "summary.txt", "junit.xml", "console.log")
CRASH_SERIES = REPO / "kernel-patches" / "fixtures" / "crash-migrate"


def load(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def by_test_name(data: dict) -> dict:
    return {t["name"].split("::")[-1]: t for t in data["tests"]}


def assert_splat_everywhere(out: Path, test: str, title_part: str) -> None:
    """The splat is in results.json (with its test), junit.xml, summary.txt and the report."""
    data = load(out)
    t = by_test_name(data)[test]
    assert t["status"] == "failed", t
    assert any(title_part in s["title"] for s in t["splats"]), t["splats"]
    assert title_part in t["message"].splitlines()[0], t["message"]
    junit = ET.parse(out / "junit.xml").getroot()
    case = next(c for c in junit.iter("testcase") if c.get("name") == test)
    failure = case.find("failure")
    assert failure is not None and title_part in (failure.text or ""), ET.tostring(case)
    summary = (out / "summary.txt").read_text()
    first = summary.splitlines()[0]
    assert "FAILED" in first and "kernel under test" in first, first
    assert title_part in summary
    report = run_zstest("report", out)
    assert report.returncode == 0, report.stderr
    assert title_part in report.stdout.replace("\n", " "), report.stdout


@pytest.mark.parametrize("provoke,title_part,kind", [
    ("lkdtm_oops", "NULL pointer dereference", "oops"),
    ("lkdtm_bug", "kernel BUG at", "bug"),
    ("lkdtm_softlockup", "soft lockup", "soft_lockup"),
    ("lkdtm_hung_task", "blocked for more than", "hung_task"),
])
def test_fatal_splat_fails_the_test_and_the_rest_runs_in_a_fresh_guest(
        kernel_build, tmp_path, provoke, title_part, kind):
    out = tmp_path / "res"
    start = time.monotonic()
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "faults",
                      "-k", f"test_{provoke} and not then or test_after", "--out", out,
                      timeout=900)
    elapsed = time.monotonic() - start
    said = assert_fault(proc, EXIT_TEST_FAILED, "the kernel under test logged", out=out,
                        files=EVIDENCE)
    assert title_part in said
    data = load(out)
    assert data["status"] == "failed" and data["cause"] == "kernel"
    assert data["kernel_crashed"] is True
    names = by_test_name(data)
    assert list(names) == [f"test_{provoke}", "test_after"]
    assert names["test_after"]["status"] == "passed"          # ... in a fresh guest
    boots = data["vm"]["boots"]
    assert len(boots) == 2 and title_part in boots[1]["reason"], boots
    crashed = [s for s in names[f"test_{provoke}"]["splats"] if s["fatal"]]
    assert crashed and crashed[0]["kind"] == kind
    assert_splat_everywhere(out, f"test_{provoke}", title_part)
    # the fresh guest's console follows the first one's in the same console.log
    console = (out / "console.log").read_text(errors="replace")
    assert console.count("Linux version") == 2 and "zstest: guest 2:" in console
    # fast: from the first fatal report to the verdict, one boot and one small test
    assert 0 < data["verdict_after_splat_s"] < 90, data["verdict_after_splat_s"]
    assert elapsed < 300
    assert not qemu_pids_for(out)


def test_warning_fails_its_test_and_the_guest_goes_on(kernel_build, tmp_path):
    out = tmp_path / "res"
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "faults",
                      "-k", "test_lkdtm_warning and not wait or test_after", "--out", out,
                      timeout=600)
    assert_fault(proc, EXIT_TEST_FAILED, "WARNING", out=out, files=EVIDENCE)
    data = load(out)
    names = by_test_name(data)
    assert names["test_after"]["status"] == "passed"
    assert len(data["vm"]["boots"]) == 1                      # a WARN does not end the guest
    assert data["kernel_crashed"] is False
    assert_splat_everywhere(out, "test_lkdtm_warning", "WARNING")
    decode = run_zstest("decode", out)
    assert decode.returncode == 0, decode.stderr
    assert "lkdtm" in decode.stdout.lower(), decode.stdout


def test_cleanup_after_an_oops_is_not_waited_for(kernel_build, tmp_path):
    """The test's `finally` runs `sleep 600`: on a crashed kernel it is refused at once."""
    out = tmp_path / "res"
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "faults",
                      "-k", "oops_then_slow_cleanup", "--out", out, timeout=900)
    assert_fault(proc, EXIT_TEST_FAILED, "NULL pointer dereference", out=out, files=EVIDENCE)
    t = by_test_name(load(out))["test_lkdtm_oops_then_slow_cleanup"]
    assert t["status"] == "failed" and t["duration_s"] < 60, t
    assert "sleep 600" in (out / t["log"]).read_text()     # it was asked for, and refused


def test_panic_with_stop_on_oops_and_a_vmcore(kernel_build, tmp_path):
    out = tmp_path / "res"
    vmcore = tmp_path / "vmcore"
    proc = run_zstest("boot-and-run", "--build", kernel_build, "--suite", "faults",
                      "-k", "test_panic or test_after", "--out", out, "--stop-on-oops",
                      "--vmcore", vmcore, timeout=600)
    assert_fault(proc, EXIT_TEST_FAILED, "Kernel panic", out=out, files=EVIDENCE)
    data = load(out)
    # the panicked guest's memory, as an ELF core for `crash`
    assert data["vm"]["vmcores"] == [str(vmcore)]
    with open(vmcore, "rb") as fh:
        assert fh.read(4) == b"\x7fELF"
    assert vmcore.stat().st_size > 256 << 20
    vmcore.unlink()
    assert [t["name"].split("::")[-1] for t in data["tests"]] == ["test_panic"]
    assert [n.split("::")[-1] for n in data["not_run"]] == ["test_after"]
    assert "not run" in (out / "summary.txt").read_text()
    assert not qemu_pids_for(out)


def interrupt_when(kernel_build, out: Path, keyword: str, ready, what: str):
    """Start a faults-suite run, wait until ready(console bytes), then Ctrl-C it: exit 130."""
    proc = subprocess.Popen([sys.executable, "-m", "zstest.cli", "boot-and-run", "--build",
                             str(kernel_build), "--suite", "faults", "-k", keyword,
                             "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    console = out / "console.log"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if ready(console.read_bytes() if console.exists() else b""):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail(f"{what} never showed on the console")
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=120)
    assert_fault(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, err),
                 EXIT_INTERRUPTED, "interrupted", out=out, files=EVIDENCE)
    return load(out)


def test_ctrl_c_after_a_warning_keeps_the_warning(kernel_build, tmp_path):
    """The run is stopped while the test that made the kernel complain still runs."""
    out = tmp_path / "res"
    data = interrupt_when(kernel_build, out, "warning_then_wait",
                          lambda text: b"WARNING: CPU" in text, "the WARNING")
    assert data["status"] == "interrupted"
    t = by_test_name(data)["test_lkdtm_warning_then_wait"]
    assert t["status"] == "interrupted" and t["splats"], t
    assert "WARNING" in t["splats"][0]["title"]
    assert "WARNING" in (out / "summary.txt").read_text()
    assert "WARNING" in (out / "junit.xml").read_text()
    report = run_zstest("report", out)
    assert "WARNING" in report.stdout and "none in the console log" not in report.stdout
    assert not qemu_pids_for(out)


def test_ctrl_c_after_an_oops_keeps_the_oops(kernel_build, tmp_path):
    """An oops ends guest 1; guest 2 runs a long test; Ctrl-C there keeps guest 1's oops."""
    # (faults_guest.py's order: test_lkdtm_oops, then test_lkdtm_warning_then_wait)
    out = tmp_path / "res"
    data = interrupt_when(
        kernel_build, out, "test_lkdtm_oops and not then or warning_then_wait",
        lambda text: b"zstest: guest 2:" in text and
        b"begin faults_guest.py::test_lkdtm_warning_then_wait" in text,
        "the second guest's waiting test")
    assert data["status"] == "interrupted" and data["kernel_crashed"] is True
    tests = by_test_name(data)
    assert tests["test_lkdtm_oops"]["status"] == "failed"
    assert "NULL pointer dereference" in tests["test_lkdtm_oops"]["splats"][0]["title"]
    assert tests["test_lkdtm_warning_then_wait"]["status"] == "interrupted"
    assert "NULL pointer dereference" in (out / "summary.txt").read_text()
    decode = run_zstest("decode", out)
    assert decode.returncode == 0 and "lkdtm_EXCEPTION" in decode.stdout, decode.stdout
    assert not qemu_pids_for(out)


def test_a_crashing_zsmalloc_patch_fails_fast_with_exit_1(tmp_path, kernel_build):
    """A one-line zs_page_migrate() bug, run as a user would: `zstest run --series`."""
    out, build_out = tmp_path / "res", tmp_path / "build"
    start = time.monotonic()
    proc = run_zstest("run", "--series", CRASH_SERIES, "--suite", "migration",
                      "--out", out, "--build-out", build_out, timeout=1800)
    elapsed = time.monotonic() - start
    said = assert_fault(proc, EXIT_TEST_FAILED, "the kernel under test logged", out=out,
                        files=EVIDENCE)
    assert "mm/zsmalloc.c" in said, said
    data = load(out)
    assert data["cause"] == "kernel" and data["kernel_crashed"] is True
    # the first zsmalloc migration hits the inverted check: by compaction or by hot-unplug
    crashed = [t for t in data["tests"] if any(s["fatal"] for s in t["splats"])]
    assert crashed and all(t["status"] == "failed" for t in crashed), data["tests"]
    fatal = [s for s in crashed[0]["splats"] if s["fatal"]]
    assert "mm/zsmalloc.c" in fatal[0]["text"]
    # decode names the patch that touched the line
    decoded = fatal[0].get("decoded") or {}
    assert any(p.get("index") == 1 for p in decoded.get("patches", [])), decoded
    assert data["verdict_after_splat_s"] < 120
    assert elapsed < 900, elapsed
    assert not qemu_pids_for(out)


HANG_SERIES = REPO / "kernel-patches" / "fixtures" / "boot-hang"


def test_a_kernel_that_hangs_in_its_init_is_exit_1_naming_where(tmp_path, kernel_build):
    """zs_init() sleeps forever: no splat, no panic, no /init. After the boot deadline zstest
    asks the kernel (SysRq-T over the serial line) where PID 1 is: in zs_init, mm/zsmalloc.c,
    the line patch 1 added. The kernel is to blame (exit 1), not the machine (5)."""
    out, build_out = tmp_path / "res", tmp_path / "build"
    start = time.monotonic()
    proc = run_zstest("run", "--series", HANG_SERIES, "--suite", "boot", "--boot-timeout", "30",
                      "--out", out, "--build-out", build_out, timeout=1800)
    elapsed = time.monotonic() - start
    said = assert_fault(proc, EXIT_TEST_FAILED, "hung while booting", "zs_init", out=out,
                        files=("results.json", "summary.txt", "console.log"))
    data = load(out)
    assert data["cause"] == "kernel", data
    assert [b["ended"] for b in data["vm"]["boots"]] == ["did not boot"], data["vm"]
    hang = [s for s in data["splats"] if s["kind"] == "boot_hang"]
    assert len(hang) == 1 and hang[0]["fatal"], data["splats"]
    assert "zs_init" in hang[0]["title"] and "do_one_initcall" in hang[0]["text"], hang[0]
    console = (out / "console.log").read_text(errors="replace").splitlines()
    # asked by an NMI (the serial port takes no input before /init); its panic is zstest's
    assert any(line.startswith("zstest: boot deadline passed: an NMI") for line in console)
    assert "Kernel panic - not syncing: NMI: Not continuing" in "\n".join(console)
    assert [s["kind"] for s in data["splats"]] == ["boot_hang"], data["splats"]
    # line_no is console.log's line of PID 1's entry
    assert "pid:1 " in console[hang[0]["line_no"] - 1] + " ", console[hang[0]["line_no"] - 1]
    # decoded to the file, and to the patch that added the wait
    decoded = hang[0].get("decoded") or {}
    frames = {f["function"]: f for f in decoded.get("frames", [])}
    assert frames["zs_init"]["file"] == "mm/zsmalloc.c", frames
    assert any(p.get("index") == 1 for p in decoded.get("patches", [])), decoded
    assert "zs_init" in (out / "summary.txt").read_text()
    assert elapsed < 900, elapsed
    assert not qemu_pids_for(out), said
