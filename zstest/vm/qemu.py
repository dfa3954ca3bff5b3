"""The QEMU command line, built from a guest spec (pure: tested without QEMU)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import List, Optional

from ..arch import ArchSpec, arch_spec
from ..errors import BadInput

# Kernel options every guest gets after the arch's console argument (and before the arch's
# own, e.g. x86's one UART to probe): reboot (QEMU exits: -no-reboot) at once on panic, kernel
# timestamps for attributing splats, and the RNG seeded at once from the CPU (RDRAND, arm64's
# RNDR: -cpu max) and QEMU's boot-loader seed: otherwise dropbear waits seconds for
# "crng init done" under TCG.
BASE_CMDLINE = ["panic=-1", "printk.time=1",
                "rdinit=/init", "random.trust_cpu=on", "random.trust_bootloader=on"]


# The arch's firmware: for x86_64 qboot (in Debian's qemu-system-data), which only loads
# -kernel/-initrd: faster than SeaBIOS under TCG (about 0.3 s to the first console byte,
# 0.8 s to SSH, measured here).
QBOOT_PATHS = arch_spec().firmware


def find_firmware(choice: str = "auto", arch: Optional[ArchSpec] = None) -> Optional[Path]:
    """-bios for choice: auto -> the arch's firmware when installed (qboot), seabios -> QEMU's
    default, else a path."""
    if choice == "seabios":
        return None
    if choice == "auto":
        return next((Path(p) for p in (arch or arch_spec()).firmware if Path(p).is_file()), None)
    return Path(choice)


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (QEMU binds it; a collision is retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Under TCG a CPU runs 10-50x slower: a debug kernel's (KASAN, lockdep) boot-time init holds a
# CPU past RCU's default 21 s stall limit, an emulator artefact, not a kernel bug.
TCG_RCU_STALL_TIMEOUT_S = 120


def kernel_cmdline(authorized_key: str, ready_marker: str, dimm: bool = False,
                   extra: str = "", accel: str = "tcg", arch: Optional[ArchSpec] = None) -> str:
    key_type, key_b64 = authorized_key.split()[:2]
    arch = arch or arch_spec()
    parts = [arch.console_arg] + BASE_CMDLINE + list(arch.cmdline)
    if accel != "kvm":
        parts.append(f"rcupdate.rcu_cpu_stall_timeout={TCG_RCU_STALL_TIMEOUT_S}")
    if dimm:
        parts.append("memhp_default_state=online_movable")
    parts += [f"zstest.authkey={key_type}:{key_b64}", f"zstest.marker={ready_marker}"]
    if extra.strip():
        parts += extra.split()
    return " ".join(parts)


def qemu_opt_value(value) -> str:
    """value inside a QEMU key=value,... option: a comma is written ',,' (an --out path may hold one)."""
    return str(value).replace(",", ",,")


def qemu_argv(qemu: str, kernel: Path, initrd: Path, cmdline: str, accel: str, port: int,
              qmp_socket: Path, memory_mb: int = 1024, cpus: int = 2,
              dimm_mb: Optional[int] = None, extra: Optional[List[str]] = None,
              firmware: Optional[Path] = None, arch: Optional[ArchSpec] = None) -> List[str]:
    arch = arch or arch_spec()
    argv = [qemu, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-machine", arch.machine, "-smp", str(cpus)]
    if firmware is not None:
        argv += ["-bios", str(firmware)]
    if accel == "kvm":
        argv += ["-accel", arch.kvm_accel, "-cpu", arch.kvm_cpu]
    else:
        # x86_64's -cpu max: RDRAND etc. so the guest's RNG (dropbear) is ready at once
        argv += ["-accel", arch.tcg_accel, "-cpu", arch.tcg_cpu]
    if dimm_mb:
        if not arch.memory_hotplug:
            raise BadInput(f"{arch.name} guests have no hot-pluggable memory; a suite with "
                           f"dimm_mb cannot run on them.")
        # room for the cold-plugged DIMM and one more hot-plugged through QMP
        argv += ["-m", f"{memory_mb}M,slots=2,maxmem={memory_mb + 2 * dimm_mb}M",
                 "-object", f"memory-backend-ram,id=dimm0mem,size={dimm_mb}M",
                 "-device", f"{arch.memory_hotplug},id=dimm0,memdev=dimm0mem"]
    else:
        argv += ["-m", f"{memory_mb}M"]
    argv += ["-kernel", str(kernel), "-initrd", str(initrd), "-append", cmdline,
             # a mux chardev only so that Ctrl-A b can send the serial port a BREAK: SysRq
             # for a guest that never comes up (vm/stuck.py); nothing else writes to it
             "-chardev", "stdio,id=con0,mux=on,signal=off", "-serial", "chardev:con0",
             "-monitor", "none",
             "-qmp", f"unix:{qemu_opt_value(qmp_socket)},server=on,wait=off",
             "-device", "virtio-net-pci,netdev=n0",
             "-netdev", f"user,id=n0,ipv6=off,hostfwd=tcp:127.0.0.1:{port}-:22"]
    argv += list(extra or [])
    return argv


def qemu_pids_mentioning(needle) -> List[int]:
    """Live qemu-system processes whose command line mentions needle (a path, usually)."""
    text = str(needle).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline.split(b"\0")[0] and text in cmdline:
            pids.append(int(entry))
    return pids
