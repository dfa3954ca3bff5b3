"""Accelerator probe: KVM when a short real KVM boot works, TCG otherwise.

/dev/kvm exists on machines where KVM aborts or hangs, so its presence proves
nothing: QEMU is started under KVM with a deadline and must reach a marker
(the kernel getting through early boot, or SeaBIOS when no kernel is given).
The verdict is cached per host boot (boot_id), so the probe costs once.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ..arch import ArchSpec
from ..cache import cache_dir, file_lock
from ..proc import which
from ..target import Target
from .child import die_with_parent

KERNEL_MARKER = re.compile(rb"Freeing unused kernel|Kernel panic - not syncing|Run /")
BIOS_MARKER = re.compile(rb"No bootable device|Booting from")


@dataclass
class AccelChoice:
    name: str     # "kvm" or "tcg"
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def host_boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def probe_accel(kernel: "Path | None" = None, timeout: float = 10.0, *,
                arch: ArchSpec) -> AccelChoice:
    """KVM if a short KVM boot of arch's QEMU (of kernel, or of the firmware) reaches its
    marker in time; TCG at once for an arch this host's KVM cannot run (arm64 on x86_64).
    arch is the caller's resolved target's (Target.arch): never a default that could be wrong."""
    if not arch.kvm_possible:
        return AccelChoice("tcg", f"{arch.name} guests cannot use KVM on this "
                                  f"{platform.machine()} host")
    forced = os.environ.get("ZSTEST_ACCEL", "").strip()
    if forced in ("kvm", "tcg"):
        return AccelChoice(forced, f"forced by ZSTEST_ACCEL={forced}")
    if not os.path.exists("/dev/kvm"):
        return AccelChoice("tcg", "/dev/kvm does not exist")
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as exc:
        return AccelChoice("tcg", f"/dev/kvm cannot be opened ({exc.strerror})")
    suffix = Target.from_options(arch.name).arch_cache_suffix
    key = host_boot_id() + ("-kernel" if kernel else "-firmware") + (f"-{suffix}" if suffix else "")
    cache_file = cache_dir("accel") / "verdicts.json"
    with file_lock(cache_dir("locks") / "accel.lock"):
        verdicts = _load(cache_file)
        cached = verdicts.get(key)
        if isinstance(cached, dict) and set(cached) == {"name", "reason"} \
                and cached["name"] in ("kvm", "tcg"):
            return AccelChoice(**cached)
        choice = _probe_kvm(Path(kernel) if kernel else None, timeout, arch)
        verdicts = {k: v for k, v in verdicts.items() if k.startswith(host_boot_id())}
        verdicts[key] = asdict(choice)
        from ..fsutil import write_text_atomic
        write_text_atomic(cache_file, json.dumps(verdicts, indent=2) + "\n")
    return choice


def _load(path: Path) -> dict:
    """The cached verdicts; a file of another shape (hand-edited, truncated) is no verdict."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _probe_kvm(kernel: Optional[Path], timeout: float, arch: ArchSpec) -> AccelChoice:
    qemu = which(arch.qemu_binary)
    if qemu is None:
        return AccelChoice("tcg", f"{arch.qemu_binary} not found")
    with tempfile.TemporaryDirectory(prefix="zstest-accel-") as tmp:
        out = Path(tmp) / "out.txt"
        argv = [qemu, "-accel", arch.kvm_accel, "-cpu", arch.kvm_cpu, "-m", "256", "-nodefaults",
                "-no-user-config", "-display", "none", "-no-reboot", "-monitor", "none"]
        if kernel is not None:
            # no initrd, no root: the kernel boots, panics at mount time, QEMU exits
            argv += ["-kernel", str(kernel), "-serial", f"file:{out}",
                     "-append", f"console={arch.console_device} panic=-1 root=/dev/zstest-none"]
            marker, what = KERNEL_MARKER, f"the kernel {kernel.name}"
        else:
            argv += ["-serial", "none", "-chardev", f"file,id=dbg,path={out}",
                     "-device", f"{arch.firmware_debug_device},chardev=dbg"]
            marker, what = BIOS_MARKER, "the firmware"
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=die_with_parent)
        try:
            while time.monotonic() - start < timeout:
                seen = out.read_bytes() if out.exists() else b""
                if marker.search(seen):
                    took = time.monotonic() - start
                    return AccelChoice("kvm", f"a KVM boot of {what} reached its marker "
                                              f"in {took:.1f} s")
                if proc.poll() is not None:
                    err = proc.stdout.read().decode(errors="replace").strip().splitlines()
                    why = err[-1] if err else f"exit status {proc.returncode}"
                    return AccelChoice("tcg", f"QEMU under KVM stopped before booting "
                                              f"{what}: {why}")
                time.sleep(0.1)
            return AccelChoice("tcg", f"a KVM boot of {what} hung (no progress in {timeout:g} s)")
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
            proc.stdout.close()
