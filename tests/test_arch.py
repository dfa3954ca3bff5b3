"""The architecture record (zstest/arches/*.toml -> arch.ArchSpec): its fields, an unknown
arch, a broken record, and every field read by a stage."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from conftest import REPO
from zstest import resources
from zstest.arch import DEFAULT_ARCH, ArchSpec, arch_spec, known_arches, read_arch_record
from zstest.errors import EXIT_USAGE, BadInput

# Fields no stage reads yet: the record carries them for the arches that come next.
NOT_READ_YET = {"page_size"}


def test_x86_64_record():
    arch = arch_spec()
    assert DEFAULT_ARCH == "x86_64" and arch == arch_spec("x86_64")
    assert (arch.name, arch.kernel_arch, arch.kernel_srcarch) == ("x86_64", "x86_64", "x86")
    assert (arch.image_target, arch.image_path) == ("bzImage", "arch/x86/boot/bzImage")
    assert (arch.qemu_binary, arch.qemu_package) == ("qemu-system-x86_64", "qemu-system-x86")
    assert (arch.machine, arch.kvm_cpu, arch.tcg_cpu) == ("pc", "host", "max")
    assert (arch.kvm_accel, arch.tcg_accel) == ("kvm", "tcg,thread=multi")
    assert (arch.console_device, arch.console_arg) == ("ttyS0", "console=ttyS0,115200")
    assert "/usr/share/qemu/qboot.rom" in arch.firmware and isinstance(arch.firmware, tuple)
    assert arch.memory_hotplug == "pc-dimm" and arch.page_size == 4096
    assert arch.cross_compile == ""
    assert arch.apt_packages == ("qemu-system-x86", "libc6-dev")
    assert known_arches() == ["x86_64"]


def test_unknown_arch_is_bad_input_naming_the_known_ones():
    with pytest.raises(BadInput) as err:
        arch_spec("sparc64")
    assert err.value.exit_code == EXIT_USAGE
    assert err.value.message == "unknown architecture 'sparc64'; known: x86_64."


def test_every_field_is_in_the_record_and_read_by_a_stage():
    path = resources.arches_dir() / "x86_64.toml"
    names = {f.name for f in fields(ArchSpec)}
    assert set(tomllib.loads(path.read_text())) == names
    # one comment per field: the data file explains itself
    text = path.read_text()
    for name in names:
        before = text[:text.index(f"\n{name} = ")].rstrip().splitlines()[-1]
        assert before.startswith("#") or re.match(r"^\w+ = ", before), name
    code = "\n".join(p.read_text() for p in (REPO / "zstest").rglob("*.py")
                     if p.name != "arch.py")
    unread = {n for n in names if not re.search(rf"\.{n}\b", code)}
    assert unread == NOT_READ_YET


def test_a_record_with_a_missing_or_unknown_field_is_refused(tmp_path):
    good = (resources.arches_dir() / "x86_64.toml").read_text()
    broken = tmp_path / "x86_64.toml"
    broken.write_text(good.replace('machine = "pc"\n', ""))
    with pytest.raises(BadInput, match="field 'machine' is missing"):
        read_arch_record(broken)
    broken.write_text(good + 'arch_colour = "blue"\n')
    with pytest.raises(BadInput, match="unknown field 'arch_colour'"):
        read_arch_record(broken)
    broken.write_text(good.replace("page_size = 4096", 'page_size = "4K"'))
    with pytest.raises(BadInput, match="'page_size' is missing or not int"):
        read_arch_record(broken)
    other = tmp_path / "arm64.toml"
    other.write_text(good)
    with pytest.raises(BadInput, match="names itself 'x86_64'"):
        read_arch_record(other)
    assert read_arch_record(Path(resources.arches_dir() / "x86_64.toml")) == arch_spec()
