"""The guest data tools (zsfill, memtouch): command lines and their summary lines, parsed."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Optional

BLOCK_SIZE = 4096

# Default mix: compressible : incompressible (huge class) : same-filled.
DEFAULT_MIX = (5, 3, 2)


@dataclass
class ToolReport:
    """One zsfill/memtouch run: its summary counters and the bad blocks it named."""
    tool: str
    values: Dict[str, str] = field(default_factory=dict)
    bad_lines: List[str] = field(default_factory=list)

    def int(self, key: str) -> int:
        return int(self.values.get(key, "0"))

    @property
    def ok(self) -> bool:
        return self.values.get("status") == "ok" and self.int("bad") == 0

    @property
    def bytes(self) -> int:
        return self.int("bytes")

    def describe(self) -> str:
        head = " ".join(f"{k}={v}" for k, v in self.values.items())
        return head + ("\n" + "\n".join(self.bad_lines) if self.bad_lines else "")


def parse_tool_output(text: str, tool: str = "zsfill") -> Optional[ToolReport]:
    """The last `<tool> k=v ...` summary line and the `bad ...` lines before it; None if absent."""
    report: Optional[ToolReport] = None
    bad: List[str] = []
    for line in text.splitlines():
        if line.startswith("bad "):
            bad.append(line.strip())
        elif line.startswith(tool + " "):
            values = dict(re.findall(r"(\w+)=(\S+)", line))
            report = ToolReport(tool=tool, values=values, bad_lines=bad)
            bad = []
    return report


def zsfill_command(op: str, target: str, blocks: int, *, start: int = 0, stride: int = 1,
                   phase: int = 0, seed: int = 1, mix=DEFAULT_MIX, until: Optional[str] = None,
                   direct: Optional[bool] = None, group: int = 1) -> str:
    argv = ["zsfill", op, target, "--blocks", str(blocks), "--seed", str(seed),
            "--mix", ":".join(map(str, mix))]
    if start:
        argv += ["--start", str(start)]
    if stride != 1:
        argv += ["--stride", str(stride), "--phase", str(phase)]
        if group != 1:
            argv += ["--group", str(group)]
    if until:
        argv += ["--until", until]
    if direct is True:
        argv.append("--direct")
    elif direct is False:
        argv.append("--buffered")
    return shlex.join(argv)


def expected_kinds(blocks: int, seed: int, mix=DEFAULT_MIX, start: int = 0, stride: int = 1,
                   phase: int = 0, group: int = 1) -> Dict[str, int]:
    """The kind counts zsfill will produce, computed on the host (mirrors pattern.h)."""
    counts = {"compressible": 0, "incompressible": 0, "same": 0}
    total = sum(mix)
    for i in range(blocks):
        if (i // group) % stride != phase:
            continue
        r = _splitmix64((seed * 0x100000001b3 & _M64) ^ (start + i)) % total
        kind = "compressible" if r < mix[0] else "incompressible" if r < mix[0] + mix[1] else "same"
        counts[kind] += 1
    return counts


def expected_same_pages(blocks: int, seed: int, mix=DEFAULT_MIX, page_size: int = BLOCK_SIZE) -> int:
    """zram pages (of page_size) that zram keeps as same-filled after zsfill wrote blocks
    0..blocks-1: every 4 KiB block of the page same-filled with one and the same word
    (mirrors pattern.h). With 4 KiB pages: the same-filled blocks; with 64 KiB pages a page
    is same-filled only when its 16 blocks are (in practice: all zero)."""
    per_page = max(1, page_size // BLOCK_SIZE)
    total = sum(mix)
    count = 0
    for first in range(0, blocks - per_page + 1, per_page):
        values = set()
        for block in range(first, first + per_page):
            r = _splitmix64((seed * 0x100000001b3 & _M64) ^ block) % total
            if r < mix[0] + mix[1]:
                break
            state = _splitmix64(seed ^ ((block * 0x9e3779b97f4a7c15) & _M64) ^ 0x5a5a)
            values.add((((state | 1) & 0xffffffff) * 0x100000001) if state & 3 else 0)
        else:
            count += len(values) == 1
    return count


_M64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9e3779b97f4a7c15) & _M64
    x = ((x ^ (x >> 30)) * 0xbf58476d1ce4e5b9) & _M64
    x = ((x ^ (x >> 27)) * 0x94d049bb133111eb) & _M64
    return x ^ (x >> 31)
