"""The architecture record: what zstest knows about one target architecture, as data.

One file per arch, zstest/arches/<name>.toml (each field commented there), read into a frozen
ArchSpec by arch_spec(); kconfig (ARCH), build (image target and path, the tree's arch dir),
vm (QEMU binary, machine, CPU, accel, console, firmware, memory hotplug) and doctor read it
instead of knowing x86_64 themselves. x86_64 is the only record and the default everywhere.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from . import resources
from .errors import BadInput

DEFAULT_ARCH = "x86_64"


@dataclass(frozen=True)
class ArchSpec:
    name: str
    kernel_arch: str                # make ARCH=
    kernel_srcarch: str             # the tree's arch/<dir>
    image_target: str               # make target of the bootable image
    image_path: str                 # that image, relative to the object dir
    cross_compile: str              # make CROSS_COMPILE=; "" for the host's compiler
    page_size: int
    qemu_binary: str
    qemu_package: str               # the Debian package of qemu_binary
    machine: str                    # -machine
    kvm_accel: str                  # -accel under KVM
    kvm_cpu: str                    # -cpu under KVM
    tcg_accel: str                  # -accel under TCG
    tcg_cpu: str                    # -cpu under TCG
    console_device: str             # the serial console's device, e.g. ttyS0
    console_arg: str                # the console= argument every guest boots with
    firmware: tuple[str, ...]       # -bios candidates, first installed wins; () QEMU's own
    firmware_debug_device: str      # -device that shows the firmware's output (KVM probe)
    memory_hotplug: str             # the hot-pluggable memory device; "" when none
    static_libc: str                # the guest tools' static libc
    static_libc_package: str

    @property
    def apt_packages(self) -> tuple[str, ...]:
        """The arch's own packages `zstest doctor` checks for."""
        return (self.qemu_package, self.static_libc_package)


_KINDS = {"str": str, "int": int, "tuple[str, ...]": list}


def known_arches() -> list[str]:
    return sorted(p.stem for p in resources.arches_dir().glob("*.toml"))


@functools.cache
def arch_spec(name: str = DEFAULT_ARCH) -> ArchSpec:
    """The record of arch `name`; BadInput naming the known ones when there is none."""
    path = resources.arches_dir() / f"{name}.toml"
    if not path.is_file():
        raise BadInput(f"unknown architecture {name!r}; known: {', '.join(known_arches())}.")
    return read_arch_record(path)


def read_arch_record(path: Path) -> ArchSpec:
    """One arches/<name>.toml: every ArchSpec field present with its type, nothing else."""
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path} is not valid TOML ({exc}); reinstall zstest.") from None
    values = {}
    for f in fields(ArchSpec):
        kind, value = _KINDS[f.type], data.get(f.name)
        if not isinstance(value, kind) or isinstance(value, bool) \
                or (kind is list and not all(isinstance(v, str) for v in value)):
            raise BadInput(f"{path}: field {f.name!r} is missing or not {f.type}; "
                           f"reinstall zstest.")
        values[f.name] = tuple(value) if kind is list else value
    unknown = sorted(set(data) - set(values))
    if unknown:
        raise BadInput(f"{path}: unknown field {unknown[0]!r}; reinstall zstest.")
    if values["name"] != path.stem:
        raise BadInput(f"{path} names itself {values['name']!r}; reinstall zstest.")
    return ArchSpec(**values)
