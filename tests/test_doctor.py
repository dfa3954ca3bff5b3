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


def test_doctor_arch_checks_the_cross_toolchain_qemu_and_foreign_packages():
    proc = run_zstest("doctor", "--json", "--arch", "arm64")
    report = json.loads(proc.stdout)
    names = {c["name"] for c in report["checks"]}
    assert {"aarch64-linux-gnu-gcc", "static libc (arm64)", "qemu-system-aarch64",
            "dpkg architecture arm64"} <= names
    assert proc.returncode == 0, report["missing"]          # ci/setup installed all of it
    assert report["accel"]["name"] == "tcg" and "cannot use KVM" in report["accel"]["reason"]
    # without the cross compiler on PATH: exit 6 and the package to install
    proc = run_zstest("doctor", "--json", "--no-accel-probe", "--arch", "i386",
                      env={"PATH": "/usr/sbin:/sbin"})
    report = json.loads(proc.stdout)
    assert proc.returncode == 6 and "i686-linux-gnu-gcc" in report["missing"]
    assert "gcc-i686-linux-gnu" in report["apt"]
    proc = run_zstest("doctor", "--arch", "sparc64")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_doctor_toolchain_option_checks_that_toolchain_and_names_its_packages():
    # /usr/bin hidden: clang-16 and ld.lld-16 are missing whatever this host has installed
    proc = run_zstest("doctor", "--json", "--no-accel-probe", "--toolchain", "clang-16",
                      env={"PATH": "/usr/sbin:/sbin"})
    report = json.loads(proc.stdout)
    assert proc.returncode == 6
    assert {"clang-16", "ld.lld-16"} <= set(report["missing"])
    assert "clang-16 lld-16 llvm-16" in report["apt"]
    proc = run_zstest("doctor", "--no-accel-probe", "--toolchain", "gcc-9")
    assert proc.returncode == 2 and "'gcc-9' is not one of" in proc.stderr
