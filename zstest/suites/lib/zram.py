"""A zram device in the guest: hot_add, configure, stats, compact, reset, hot_remove."""

from __future__ import annotations

import re
from typing import Dict, List, Optional

import pytest

from .metrics import parse_io_stat, parse_mm_stat
from .zram_state import Slot, parse_bd_stat, parse_block_state

CONTROL = "/sys/class/zram-control"


def parse_comp_algorithms(text: str) -> List[str]:
    """comp_algorithm's list, e.g. "lzo [lzo-rle] lz4 zstd" -> ["lzo", "lzo-rle", "lz4", "zstd"]."""
    return [tok.strip("[]") for tok in text.split() if tok.strip("[]")]


def selected_algorithm(text: str) -> Optional[str]:
    m = re.search(r"\[([^\]]+)\]", text)
    return m.group(1) if m else None


def ensure_zram_control(guest) -> None:
    if not guest.exists(CONTROL):
        guest.run("modprobe zram num_devices=0")
    if not guest.exists(CONTROL):
        pytest.skip("zram is neither built in nor loadable (no /sys/class/zram-control)")


class ZramDevice:
    """One hot-added zram device; use as a context manager to always remove it."""

    def __init__(self, guest, dev_id: int):
        self.guest = guest
        self.id = dev_id
        self.path = f"/dev/zram{dev_id}"
        self.sysfs = f"/sys/block/zram{dev_id}"
        self.removed = False

    @classmethod
    def add(cls, guest) -> "ZramDevice":
        ensure_zram_control(guest)
        dev_id = int(guest.check(f"cat {CONTROL}/hot_add").strip())
        dev = cls(guest, dev_id)
        # udev is absent: wait for devtmpfs to show the node
        guest.check(f"for i in $(seq 50); do [ -b {dev.path} ] && exit 0; sleep 0.1; done; exit 1")
        return dev

    def attr(self, name: str) -> str:
        return self.guest.check(f"cat {self.sysfs}/{name}").strip()

    def set(self, name: str, value) -> None:
        self.guest.check(f"echo {value} > {self.sysfs}/{name}")

    def algorithms(self) -> List[str]:
        return parse_comp_algorithms(self.attr("comp_algorithm"))

    def setup(self, disksize: int, algorithm: Optional[str] = None) -> None:
        if algorithm:
            self.set("comp_algorithm", algorithm)
        self.set("disksize", disksize)

    def mm_stat(self) -> Dict[str, int]:
        return parse_mm_stat(self.attr("mm_stat"))

    def io_stat(self) -> Dict[str, int]:
        return parse_io_stat(self.attr("io_stat"))

    def has(self, name: str) -> bool:
        """The device has this sysfs attribute (the kernel's version and config decide)."""
        return self.guest.exists(f"{self.sysfs}/{name}")

    def try_set(self, name: str, value):
        """Write an attribute that may refuse: the guest result (exit status, stderr)."""
        return self.guest.run(f"echo {value} > {self.sysfs}/{name}")

    def bd_stat(self) -> Dict[str, int]:
        return parse_bd_stat(self.attr("bd_stat"))

    @property
    def block_state_path(self) -> str:
        return f"/sys/kernel/debug/zram/zram{self.id}/block_state"

    def block_state(self) -> Dict[int, Slot]:
        return parse_block_state(self.guest.check(f"cat {self.block_state_path}"))

    def compact(self) -> None:
        self.set("compact", 1)

    def reset(self) -> None:
        self.guest.run(f"swapoff {self.path} 2>/dev/null; umount {self.path} 2>/dev/null")
        self.set("reset", 1)

    def remove(self) -> None:
        if self.removed:
            return
        self.reset()
        self.guest.check(f"echo {self.id} > {CONTROL}/hot_remove")
        self.removed = True

    def __enter__(self) -> "ZramDevice":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.remove()
        except Exception:
            if exc[0] is None:
                raise
