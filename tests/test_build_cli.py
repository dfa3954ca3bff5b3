"""`zstest build` end to end: the shared build, bad input, drift, interrupt, --each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, run_zstest

FIXTURES = REPO / "kernel-patches" / "fixtures"


def manifest(build_dir: Path) -> dict:
    return json.loads((build_dir / "build.json").read_text())


# ---------------------------------------------------------------- bad input (fast)

def test_missing_tree_is_bad_input(tmp_path):
    proc = run_zstest("build", "--kernel", tmp_path / "nope", "--out", tmp_path / "b")
    assert proc.returncode == 2, proc.stderr
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_non_kernel_tree_is_bad_input(tmp_path):
    (tmp_path / "Makefile").write_text("all:\n")
    proc = run_zstest("build", "--kernel", tmp_path, "--out", tmp_path / "b")
    assert proc.returncode == 2
    assert "is not a Linux kernel tree" in proc.stderr


def test_fragment_syntax_error_names_file_line(tmp_path):
    frag = tmp_path / "my.config"
    frag.write_text("CONFIG_ZRAM=y\nCONFIG_ZSMALLOC y\n")
    proc = run_zstest("build", "--config", frag, "--out", tmp_path / "b")
    assert proc.returncode == 2
    assert f"{frag}:2:" in proc.stderr and "Traceback" not in proc.stderr


def test_each_needs_series(tmp_path):
    proc = run_zstest("build", "--each", "--out", tmp_path / "b")
    assert proc.returncode == 2 and "--each needs --series" in proc.stderr


# ---------------------------------------------------------------- the shared build

@pytest.mark.slow
def test_default_build_manifest(kernel_build, kernel_build_manifest):
    m = kernel_build_manifest
    assert m["status"] == "ok"
    assert m["kernel"]["version"].startswith("6.1")
    assert m["config"]["profiles"] == ["base"] and m["config"]["missing_options"] == []
    for key in ("bzImage", "vmlinux", "System.map", "config"):
        assert (kernel_build / m["artifacts"][key]).is_file(), key
    assert "kmod" in m["artifacts"]
    assert m["toolchain"]["gcc"].startswith("gcc") and m["toolchain"]["make"]
    assert m["ccache"]["dir"].endswith("ccache")
    assert m["reproducer"].startswith("zstest build")
    assert m["duration_s"] > 0 and "build" in m["durations"]
    config = (kernel_build / ".config").read_text()
    for opt in ("CONFIG_ZSMALLOC=y", "CONFIG_ZRAM=y", "CONFIG_ZRAM_WRITEBACK=y",
                "CONFIG_SERIAL_8250_CONSOLE=y", "CONFIG_IKCONFIG_PROC=y", "CONFIG_MEMORY_HOTREMOVE=y"):
        assert opt in config, opt
    # a bzImage, not an ELF: "HdrS" at 0x202
    with open(kernel_build / "bzImage", "rb") as fh:
        fh.seek(0x202)
        assert fh.read(4) == b"HdrS"


@pytest.mark.slow
def test_config_drift_names_unmet_dependency(kernel_build, tmp_path):
    frag = tmp_path / "drift.config"
    frag.write_text("# include: base\n# CONFIG_BLOCK is not set\n")
    proc = run_zstest("build", "--config", frag, "--out", tmp_path / "b", timeout=900)
    assert proc.returncode == 4, proc.stderr
    assert "did not survive olddefconfig" in proc.stderr
    assert "CONFIG_ZRAM=y" in proc.stderr and "BLOCK" in proc.stderr
    m = manifest(tmp_path / "b")
    assert m["status"] == "failed"
    zram = next(x for x in m["config"]["missing_options"] if x["name"] == "ZRAM")
    assert zram["reason"] == "dropped" and "BLOCK=n" in zram["unmet"]


@pytest.mark.slow
def test_rebuild_is_incremental_and_interrupt_records_state(kernel_build, tmp_path):
    """A second default build compiles (almost) nothing; Ctrl-C mid-make exits 130."""
    # The objdir is shared: a series build earlier in this run (or a run before, on a warm
    # cache) may have left its .config there, so the build that sets the reference comes first.
    proc = run_zstest("build", "--out", tmp_path / "first", timeout=1800)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "again"
    proc = run_zstest("build", "--out", out, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    m = manifest(out)
    assert m["compiled"]["build"] <= 5, m["compiled"]
    # neither kmod/ nor the kernel changed since the first build: the module is reused, not rebuilt
    kmod = m["artifacts"]["kmod"]
    assert kmod["reused"] is True and kmod["modules"] == ["zstorture.ko"], kmod
    assert (out / "zstorture.ko").read_bytes() == (tmp_path / "first" / "zstorture.ko").read_bytes()
    assert not (out / "kmod-build").exists()

    out2 = tmp_path / "intr"
    child = subprocess.Popen([sys.executable, "-m", "zstest.cli", "build", "--out", str(out2)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 600
    log = out2 / "build.log"
    while time.monotonic() < deadline:
        if log.is_file() and "### build:" in log.read_text(errors="replace"):
            break
        time.sleep(0.2)
    time.sleep(1)
    os.killpg(child.pid, signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert manifest(out2)["status"] == "interrupted"
    leftover = subprocess.run(["pgrep", "-f", f"O={m['objdir']}"], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "make still running after Ctrl-C"


# ---------------------------------------------------------------- --each on the fixtures

def fixture_series(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{path} not written yet")
    return path


@pytest.mark.slow
def test_each_good_series_builds_every_patch(kernel_build, tmp_path):
    series = fixture_series("good-3")
    proc = run_zstest("build", "--series", series, "--each", "--out", tmp_path / "b", timeout=3600)
    assert proc.returncode == 0, proc.stderr
    m = manifest(tmp_path / "b")
    patches = m["series"]["patches"]
    assert len(patches) == 3
    assert [p["build"] for p in patches] == ["ok"] * 3
    assert all(p["apply"] in ("applied", "applied-3way") for p in patches)
    assert (tmp_path / "b" / "bzImage").is_file()


@pytest.mark.slow
def test_each_build_break_names_patch_and_location(kernel_build, tmp_path):
    series = fixture_series("build-break")
    proc = run_zstest("build", "--series", series, "--each", "--out", tmp_path / "b", timeout=3600)
    assert proc.returncode == 4, proc.stderr
    m = manifest(tmp_path / "b")
    failed = [p for p in m["series"]["patches"] if p["build"] == "failed"]
    assert failed and failed[0]["index"] == 2, m["series"]["patches"]
    first_error = failed[0]["errors"][0]
    assert "patch 2/" in proc.stderr and first_error.split(":")[0] in proc.stderr
    assert first_error.split(":")[1].isdigit(), first_error   # file:line
    assert m["series"]["patches"][0]["build"] == "ok"


@pytest.mark.slow
def test_each_attributes_new_warning_to_its_patch(kernel_build, tmp_path):
    series = fixture_series("warning")
    proc = run_zstest("build", "--series", series, "--each", "--out", tmp_path / "b", timeout=3600)
    assert proc.returncode == 0, proc.stderr
    patches = manifest(tmp_path / "b")["series"]["patches"]
    with_warnings = [p["index"] for p in patches if p["new_warnings"]]
    assert len(with_warnings) == 1, patches
    warning = patches[with_warnings[0] - 1]["new_warnings"][0]
    assert ": warning: " in warning and warning.split(":")[1].isdigit()
