"""zstest doctor: every prerequisite found here; a missing one is exit 6 with the apt line."""

import json

from conftest import run_zstest


def test_doctor_finds_everything_after_ci_setup():
    proc = run_zstest("doctor", "--json")
    data = json.loads(proc.stdout)
    assert proc.returncode == 0, data["missing"]
    assert data["missing"] == [] and data["apt"] == ""
    names = {c["name"] for c in data["checks"]}
    assert {"qemu-system-x86_64", "gcc", "dropbear", "busybox (static)", "lz4"} <= names
    assert data["accel"]["name"] in ("kvm", "tcg") and data["accel"]["reason"]


def test_missing_tools_exit_6_with_the_apt_line():
    # An empty PATH hides /usr/bin: gcc, git, qemu... are then missing.
    proc = run_zstest("doctor", "--no-accel-probe", env={"PATH": "/nonexistent"})
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert "MISSING" in proc.stdout
    assert "apt-get install -y" in proc.stdout and " gcc" in proc.stdout
    assert "qemu-system-x86" in proc.stdout
    assert "Traceback" not in proc.stderr
