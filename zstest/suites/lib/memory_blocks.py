"""Memory blocks of /sys/devices/system/memory: which are online, in which zone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

# A kernel without memory hotplug (i386) has no /sys/devices/system/memory: no blocks, size 0.
LIST_COMMAND = ("[ -d /sys/devices/system/memory ] || exit 0; "
                "cd /sys/devices/system/memory && echo block_size $(cat block_size_bytes) && "
                "for d in memory*; do echo \"$d $(cat $d/state) $(cat $d/valid_zones 2>/dev/null)\"; done")


@dataclass
class MemoryBlock:
    name: str            # memoryN
    index: int
    state: str           # online / offline / going-offline
    zones: List[str]     # valid_zones: for an online block, the zone it is in

    @property
    def movable(self) -> bool:
        return self.state == "online" and self.zones == ["Movable"]


def parse_memory_blocks(text: str):
    """LIST_COMMAND's output -> (block size in bytes, [MemoryBlock]) sorted by index."""
    size = 0
    blocks = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "block_size":
            size = int(parts[1], 16)
        elif len(parts) >= 2 and parts[0].startswith("memory") and parts[0][6:].isdigit():
            blocks.append(MemoryBlock(parts[0], int(parts[0][6:]), parts[1], parts[2:]))
    return size, sorted(blocks, key=lambda b: b.index)


def list_memory_blocks(guest):
    return parse_memory_blocks(guest.check(LIST_COMMAND))
