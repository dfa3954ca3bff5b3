"""Fixtures of the vm stage (a pytest plugin loaded by conftest.py).

`guest_image`: the default image for the shared `kernel_build`, built once per
session. `boot_guest`: a factory giving launch_guest context managers for that
kernel, each with its own workdir under tmp_path. `qemu_pids_for(path)` lists
live qemu-system processes whose command line mentions path, so tests can
prove that no QEMU outlived them.

ZSTEST_TEST_BUILD_DIR=DIR runs the vm tests on another build directory (e.g. a
developer's build) instead of the shared `kernel_build`; ZSTEST_TEST_CMDLINE adds
kernel options (e.g. `zstest.modules=virtio_pci,virtio_net` for a distro kernel).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from zstest.vm.qemu import qemu_pids_mentioning


def qemu_pids_for(path) -> list:
    return qemu_pids_mentioning(path)


def pid_alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def build_kernel_path(build_dir: Path) -> Path:
    manifest = json.loads((build_dir / "build.json").read_text())
    return build_dir / (manifest.get("artifacts", {}).get("bzImage") or "bzImage")


@pytest.fixture(scope="session")
def vm_build(request) -> Path:
    """The shared `kernel_build`; ZSTEST_TEST_BUILD_DIR points the vm tests at another build."""
    override = os.environ.get("ZSTEST_TEST_BUILD_DIR")
    if override:
        return Path(override)
    return request.getfixturevalue("kernel_build")


@pytest.fixture(scope="session")
def guest_image(vm_build):
    from zstest.image import ImageRequest, build_image
    return build_image(ImageRequest(build_dir=vm_build))


@pytest.fixture
def boot_guest(vm_build, guest_image, tmp_path):
    """boot_guest(name="g", **spec_fields) -> launch_guest(...) context manager (TCG)."""
    from zstest.vm.guest import GuestSpec, launch_guest

    def factory(name: str = "guest", **fields):
        workdir = tmp_path / name
        fields.setdefault("kernel", build_kernel_path(vm_build))
        fields.setdefault("image", guest_image)
        fields.setdefault("accel", "tcg")
        fields.setdefault("boot_timeout", 60)
        extra = os.environ.get("ZSTEST_TEST_CMDLINE", "")   # e.g. zstest.modules=... for a distro kernel
        if extra:
            fields["cmdline_extra"] = (extra + " " + fields.get("cmdline_extra", "")).strip()
        return launch_guest(GuestSpec(workdir=workdir, console_log=workdir / "console.log",
                                      **fields))
    return factory
