"""Host prerequisites: what the pipeline needs, and the apt package for each."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from .arch import arch_spec
from .cache import debian_source_tarball
from .proc import run, which
from .target import Target


@dataclass
class Check:
    name: str              # what is checked, e.g. "qemu-system-x86_64"
    package: str           # the Debian package that provides it
    needed_for: str        # the stage that needs it
    found: bool = False
    where: str = ""        # path or version when found


@dataclass
class DoctorReport:
    checks: List[Check] = field(default_factory=list)
    accel: Optional[object] = None   # zstest.vm.accel.AccelChoice

    @property
    def missing(self) -> List[Check]:
        return [c for c in self.checks if not c.found]

    @property
    def apt_line(self) -> str:
        pkgs = sorted({c.package for c in self.missing if not c.package.startswith("dpkg ")})
        return "apt-get install -y " + " ".join(pkgs) if pkgs else ""


def _tool(name: str, package: str, needed_for: str) -> Check:
    path = which(name)
    return Check(name, package, needed_for, found=path is not None, where=path or "")


def _file(path: str, package: str, needed_for: str, label: Optional[str] = None) -> Check:
    found = os.path.exists(path)
    return Check(label or path, package, needed_for, found=found, where=path if found else "")


def _static_busybox() -> Check:
    path = which("busybox")
    check = Check("busybox (static)", "busybox-static", "image")
    if path:
        check.found = not _has_interp(Path(path))
        check.where = path if check.found else f"{path} is dynamically linked"
    return check


def _has_interp(binary: Path) -> bool:
    """True when an ELF binary asks for a dynamic loader (PT_INTERP)."""
    try:
        data = binary.read_bytes()[:4096]
    except OSError:
        return True
    return b"/lib64/ld-linux" in data or b"/lib/ld-linux" in data


HOST_CHECKS: List[Callable[[], Check]] = [
    lambda: _tool("git", "git", "series"),
    lambda: _tool("gcc", "gcc", "build"),
    lambda: _tool("make", "make", "build"),
    lambda: _tool("flex", "flex", "build"),
    lambda: _tool("bison", "bison", "build"),
    lambda: _tool("bc", "bc", "build"),
    lambda: _tool("perl", "perl", "build"),
    lambda: _tool("ld", "binutils", "build"),
    lambda: _tool("ccache", "ccache", "build"),
    lambda: _tool("lz4", "lz4", "build (CONFIG_KERNEL_LZ4)"),
    lambda: _file(Target.default().arch.static_libc, Target.default().arch.static_libc_package,
                  "build, guest tools", "static libc"),
    lambda: _file("/usr/include/libelf.h", "libelf-dev", "build", "libelf headers"),
    lambda: _file("/usr/include/openssl/ssl.h", "libssl-dev", "build", "openssl headers"),
    lambda: _file(str(debian_source_tarball()), "linux-source-6.1", "build (default tree)",
                  "linux-source-6.1 tarball"),
    lambda: _tool("cpio", "cpio", "image"),
    _static_busybox,
    lambda: _tool("dropbear", "dropbear-bin", "image"),
    lambda: _tool("dropbearkey", "dropbear-bin", "image"),
    lambda: _tool("fio", "fio", "image"),
    lambda: _tool("mkfs.ext4", "e2fsprogs", "image"),
    lambda: _tool(Target.default().arch.qemu_binary, Target.default().arch.qemu_package, "vm"),
]


def _foreign_packages(arch) -> Check:
    """apt knows the arch's packages (dpkg --add-architecture): its guest userland."""
    check = Check(f"dpkg architecture {arch.debian_arch}", f"dpkg --add-architecture "
                  f"{arch.debian_arch} && apt-get update", "image")
    res = run(["dpkg", "--print-foreign-architectures"], timeout=30, check=False) \
        if which("dpkg") else None
    check.found = res is not None and arch.debian_arch in res.stdout.split()
    check.where = "apt has its package lists" if check.found else ""
    return check


def arch_checks(name: str) -> List[Check]:
    """What building and booting arch `name` needs beyond the host checks: its compiler,
    static libc (guest tools), QEMU, and for a foreign arch Debian's packages of it."""
    from .sysroot import is_foreign
    arch = arch_spec(name)
    checks = [_tool(arch.compiler, arch.compiler_package, f"build ({arch.name})"),
              _file(arch.static_libc, arch.static_libc_package, f"guest tools ({arch.name})",
                    f"static libc ({arch.name})"),
              _tool(arch.qemu_binary, arch.qemu_package, f"vm ({arch.name})")]
    if is_foreign(arch):
        checks.append(_foreign_packages(arch))
    return checks


def toolchain_checks(name: str, target: Target) -> List[Check]:
    """What --toolchain NAME needs to build for target: its compiler and linker, one package
    line (the apt line names every package of the toolchain)."""
    from .toolchain import resolve
    toolchain = resolve(name)
    packages = " ".join(toolchain.apt_packages(target))
    return [_tool(toolchain.compiler(target), packages, f"build (--toolchain {name})"),
            _tool(toolchain.linker(target), packages, f"build (--toolchain {name})")]


def run_doctor(probe_accel: bool = True, arch: Optional[str] = None,
               toolchain: Optional[str] = None) -> DoctorReport:
    report = DoctorReport(checks=[check() for check in HOST_CHECKS])
    target = Target.from_options(arch)
    if target.arch != Target.default().arch:
        report.checks += arch_checks(target.name)
    if toolchain is not None:
        report.checks += toolchain_checks(toolchain, target)
    spec = target.arch
    if probe_accel and which(spec.qemu_binary):
        from .vm.accel import probe_accel as probe
        report.accel = probe(arch=spec)
    return report
