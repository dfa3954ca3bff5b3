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

# Fields a stage reads through one of ArchSpec's own methods (field -> method).
READ_THROUGH = {"kvm_host": "kvm_possible", "page_sizes": "page_size_config",
                "min_memory_mb": "memory_floor_mb"}


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
    assert arch.cross_compile == "" and arch.compiler == "gcc"
    assert arch.apt_packages == ("gcc", "qemu-system-x86", "libc6-dev")
    assert known_arches() == ["arm64", "i386", "x86_64"]
    assert arch.cmdline == ("8250.nr_uarts=1", "unknown_nmi_panic", "panic_print=0x1") and arch.min_memory_mb == 0
    assert (arch.debian_arch, arch.debian_multiarch) == ("amd64", "x86_64-linux-gnu")


def test_arm64_and_i386_records():
    arm = arch_spec("arm64")
    assert (arm.kernel_arch, arm.image_target, arm.image_path) == \
        ("arm64", "Image", "arch/arm64/boot/Image")
    assert arm.compiler == "aarch64-linux-gnu-gcc" and arm.console_device == "ttyAMA0"
    assert arm.machine == "virt" and arm.memory_hotplug == "" and arm.firmware == ()
    assert arm.apt_packages == ("gcc-aarch64-linux-gnu", "qemu-system-arm",
                                "libc6-dev-arm64-cross")
    i386 = arch_spec("i386")
    assert (i386.kernel_arch, i386.kernel_srcarch, i386.debian_multiarch) == \
        ("i386", "x86", "i386-linux-gnu")
    # more RAM than the 896 MB of lowmem, and no memory hotplug on 32-bit
    assert i386.min_memory_mb > 896 and i386.memory_hotplug == ""


def test_page_size_choices():
    arm = arch_spec("arm64")
    assert arm.page_size_config(None) == ([("ARM64_4K_PAGES", "y"), ("ARM64_16K_PAGES", "n"),
                                           ("ARM64_64K_PAGES", "n")], 4096)
    for spelled in ("64k", "64K", "65536"):
        choice, size = arm.page_size_config(spelled)
        assert size == 65536 and dict(choice)["ARM64_64K_PAGES"] == "y"
        assert dict(choice)["ARM64_4K_PAGES"] == "n"
    with pytest.raises(BadInput) as err:
        arm.page_size_config("8k")
    assert err.value.message == "--page-size 8k: arm64 offers 4k, 16k, 64k."
    assert arch_spec().page_size_config(None) == ([], 4096)
    with pytest.raises(BadInput, match="x86_64 offers 4k"):
        arch_spec().page_size_config("64k")


def test_an_arch_name_from_an_artifact_cannot_name_another_file():
    for name in ("../arches/x86_64", "x86_64/../x86_64", ""):
        with pytest.raises(BadInput, match="unknown architecture"):
            arch_spec(name)


def test_kvm_only_where_the_host_can_run_the_arch(monkeypatch):
    import platform
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    assert arch_spec("x86_64").kvm_possible and arch_spec("i386").kvm_possible
    assert not arch_spec("arm64").kvm_possible
    from zstest.vm.accel import probe_accel
    choice = probe_accel(None, arch=arch_spec("arm64"))
    assert choice.name == "tcg" and "arm64 guests cannot use KVM" in choice.reason


def test_unknown_arch_is_bad_input_naming_the_known_ones():
    with pytest.raises(BadInput) as err:
        arch_spec("sparc64")
    assert err.value.exit_code == EXIT_USAGE
    assert err.value.message == "unknown architecture 'sparc64'; known: arm64, i386, x86_64."


def test_every_field_is_in_the_record_and_read_by_a_stage():
    path = resources.arches_dir() / "x86_64.toml"
    names = {f.name for f in fields(ArchSpec)}
    for name in known_arches():
        other = resources.arches_dir() / f"{name}.toml"
        assert set(tomllib.loads(other.read_text())) == names, name
        assert read_arch_record(other) == arch_spec(name)
    # one comment per field: the data file explains itself
    text = path.read_text()
    for name in names:
        before = text[:text.index(f"\n{name} = ")].rstrip().splitlines()[-1]
        assert before.startswith("#") or re.match(r"^\w+ = ", before), name
    code = "\n".join(p.read_text() for p in (REPO / "zstest").rglob("*.py")
                     if p.name != "arch.py")
    unread = {n for n in names if not re.search(rf"\.{READ_THROUGH.get(n, n)}\b", code)}
    assert unread == set()


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
