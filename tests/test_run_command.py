"""results.json's `command`: the command line that made the results (as typed, with what a
config file supplied made explicit), and the report's reproducer built from it: the same -k
selection and run options, none of this machine's paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from fixtures_vm import qemu_pids_for
from zstest.options import command_line
from zstest.runner import BootRunRequest

DATA = REPO / "tests" / "data" / "decode"


def results_with_command(tmp_path: Path, command) -> Path:
    """A recorded real run (tests/data/decode/failure-probe) given a command."""
    results = tmp_path / "res"
    shutil.copytree(DATA / "failure-probe", results)
    data = json.loads((results / "results.json").read_text())
    data["command"] = command
    # its build: the recorded build.json, never whatever build this host has at the recorded
    # path (the shared test build, remade with another reproducer by today's zstest)
    build = tmp_path / "build"
    build.mkdir()
    shutil.copy(DATA / "failure-probe" / "build.json", build / "build.json")
    data["kernel"]["build_dir"] = str(build)
    (results / "results.json").write_text(json.dumps(data))
    return results


def reproducer(results: Path, tmp_path: Path) -> str:
    r = run_zstest("report", results, cwd=tmp_path, timeout=120,
                   env={"XDG_CONFIG_HOME": str(tmp_path / "xdg"),
                        "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    repro = r.stdout.split("How to reproduce:\n", 1)[1].split("\n\n", 1)[0]
    return " ".join(repro.replace("\\\n", " ").split())


def test_reproducer_takes_the_commands_selection_and_run_options(tmp_path):
    results = results_with_command(tmp_path, [
        "zstest", "boot-and-run", "--build", "/srv/ci/build", "--out", "/srv/ci/res",
        "--suite", "failure-probe", "-k", "test_probe_splat or test_probe_corrupted_block",
        "--repeat", "3", "--memory=640", "--append", "zsmalloc.dyndbg=+p", "--stop-on-oops",
        "--keep-vm-on-failure", "--vmcore", "/srv/ci/core", "-q", "--junit", "/srv/j.xml"])
    assert reproducer(results, tmp_path) == (
        "zstest run --suite failure-probe "
        "-k 'test_probe_splat or test_probe_corrupted_block' --repeat 3 --memory=640 "
        "--append zsmalloc.dyndbg=+p --stop-on-oops")


def test_without_a_command_the_failing_tests_are_selected(tmp_path):
    results = results_with_command(tmp_path, [])
    assert reproducer(results, tmp_path) == (
        "zstest run --suite failure-probe -k 'test_probe_corrupted_block or "
        "test_probe_missing_migration or test_probe_splat'")


def test_a_command_that_is_not_words_is_exit_2(tmp_path):
    results = results_with_command(tmp_path, ["zstest", 7])
    r = run_zstest("report", results, cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "command[1] is a number, not a string" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_run_no_user_typed_records_the_equivalent_boot_and_run_line(tmp_path):
    req = BootRunRequest(build_dir=tmp_path / "b", out=tmp_path / "r", suite="quick",
                         keyword="lz4 and not zstd", timeout=30.0, memory_mb=640,
                         stop_on_oops=True)
    assert command_line("boot-and-run", boot=req) == [
        "zstest", "boot-and-run", "--build", str(tmp_path / "b"), "--out", str(tmp_path / "r"),
        "--suite", "quick", "-k", "lz4 and not zstd", "--timeout", "30", "--memory", "640",
        "--stop-on-oops"]


@pytest.mark.slow
def test_boot_and_run_records_its_command_line(vm_build, tmp_path):
    """As typed, plus the config file's memory; the report's reproducer repeats the -k."""
    xdg = tmp_path / "xdg"
    (xdg / "zstest").mkdir(parents=True)
    (xdg / "zstest" / "config.toml").write_text("memory = 640\n")
    out = tmp_path / "res"
    typed = ["boot-and-run", "--build", str(vm_build), "--suite", "boot",
             "-k", "test_kernel_is_the_one_built or test_zram_control_exists", "--out", str(out)]
    r = run_zstest(*typed, cwd=tmp_path, env={"XDG_CONFIG_HOME": str(xdg)}, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads((out / "results.json").read_text())
    # every value explicit (the config file's memory too), in zstest.options' order
    assert data["command"] == ["zstest", "boot-and-run", "--build", str(vm_build), "--out",
                               str(out), "--suite", "boot", "-k", typed[6], "--memory", "640"]
    assert sorted(t["name"].split("::")[-1] for t in data["tests"]) == [
        "test_kernel_is_the_one_built", "test_zram_control_exists"]
    assert qemu_pids_for(out) == []
    words = reproducer(out, tmp_path)
    assert words.endswith("--suite boot -k 'test_kernel_is_the_one_built or "
                          "test_zram_control_exists' --memory 640"), words
    assert str(vm_build) not in words and str(out) not in words
