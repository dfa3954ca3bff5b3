"""The architecture record: what zstest knows about one target architecture, as data.

One file per arch, zstest/arches/<name>.toml (each field commented there), read into a frozen
ArchSpec by arch_spec(); kconfig (ARCH, the arch's config fragment, the page size), build
(image target and path, the tree's arch dir, the cross compiler), image (the guest userland:
the host's binaries, or Debian's packages for a foreign arch), vm (QEMU binary, machine, CPU,
accel, console, firmware, memory hotplug) and doctor read it instead of knowing an arch
themselves. x86_64 is the default everywhere; arm64 and i386 are cross-built.
"""

from __future__ import annotations

import functools
import platform
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
    compiler_package: str           # the Debian package of <cross_compile>gcc
    page_size: int                  # the default page size in bytes
    page_sizes: tuple[str, ...]     # "4k:SYMBOL" per --page-size choice
    debian_arch: str                # dpkg's name: the guest userland's packages
    debian_multiarch: str           # its lib/<dir>: x86_64-linux-gnu, i386-linux-gnu
    kvm_host: str                   # uname -m of a host whose KVM runs this guest
    qemu_binary: str
    qemu_package: str               # the Debian package of qemu_binary
    machine: str                    # -machine
    kvm_accel: str                  # -accel under KVM
    kvm_cpu: str                    # -cpu under KVM
    tcg_accel: str                  # -accel under TCG
    tcg_cpu: str                    # -cpu under TCG
    console_device: str             # the serial console's device, e.g. ttyS0
    console_arg: str                # the console= argument every guest boots with
    cmdline: tuple[str, ...]        # the arch's own kernel arguments
    min_memory_mb: int              # the least guest RAM (i386: more than lowmem)
    firmware: tuple[str, ...]       # -bios candidates, first installed wins; () QEMU's own
    firmware_debug_device: str      # -device that shows the firmware's output (KVM probe)
    memory_hotplug: str             # the hot-pluggable memory device; "" when none
    static_libc: str                # the guest tools' static libc
    static_libc_package: str

    @property
    def apt_packages(self) -> tuple[str, ...]:
        """The arch's own packages `zstest doctor` checks for."""
        return tuple(dict.fromkeys((self.compiler_package, self.qemu_package,
                                    self.static_libc_package)))

    @property
    def compiler(self) -> str:
        """The C compiler for this arch's kernel and guest tools."""
        return f"{self.cross_compile}gcc"

    @property
    def kvm_possible(self) -> bool:
        """KVM can run this guest on this host at all (otherwise TCG without a probe)."""
        return bool(self.kvm_accel) and platform.machine() == self.kvm_host

    def memory_floor_mb(self, page_size: int) -> int:
        """The least guest RAM for a kernel of this arch and page size: the record's floor,
        and with 64K pages 4 GiB: a pageblock is then 512 MB, and compaction (the suites'
        migration tests) only moves pages into pageblocks of the movable type. Early kernel
        allocations claim a whole pageblock each: in 2 GiB (four blocks) a 6.12 arm64 guest had
        three unmovable ones and compaction moved nothing; in 4 GiB it keeps six movable."""
        return max(self.min_memory_mb, 4096 if page_size >= 65536 else 0)

    def page_size_choices(self) -> dict[str, tuple[str, int]]:
        """--page-size name ("4k") -> (its Kconfig choice symbol or "", bytes)."""
        out = {}
        for entry in self.page_sizes:
            size, _, symbol = entry.partition(":")
            out[size.lower()] = (symbol, int(size.lower().rstrip("k")) * 1024)
        return out

    def page_size_config(self, page_size: str | None) -> tuple[list[tuple[str, str]], int]:
        """([(SYMBOL, y|n)...], bytes) for --page-size (None: the arch's default); BadInput
        naming the choices for a size this arch does not offer."""
        choices = self.page_size_choices()
        if page_size is None:
            page_size = next((k for k, (_, b) in choices.items() if b == self.page_size), "4k")
        key = str(page_size).strip().lower()
        if key.isdigit() and int(key) % 1024 == 0:
            key = f"{int(key) // 1024}k"
        if key not in choices:
            raise BadInput(f"--page-size {page_size}: {self.name} offers "
                           f"{', '.join(choices)}.")
        symbol, size = choices[key]
        if not symbol:
            return [], size
        return [(s, "y" if s == symbol else "n") for s, _ in choices.values() if s], size


_KINDS = {"str": str, "int": int, "tuple[str, ...]": list}


def known_arches() -> list[str]:
    return sorted(p.stem for p in resources.arches_dir().glob("*.toml"))


@functools.cache
def arch_spec(name: str = DEFAULT_ARCH) -> ArchSpec:
    """The record of arch `name`; BadInput naming the known ones when there is none."""
    path = resources.arches_dir() / f"{name}.toml"
    # a name from the command line or someone's build.json: only a record's own name
    if name not in known_arches() or not path.is_file():
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
