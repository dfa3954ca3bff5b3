"""zram's per-slot state and backing-device counters, parsed (issue 28).

bd_stat: "bd_count bd_reads bd_writes", each in 4 KiB units whatever the page size.
block_state (debugfs, CONFIG_ZRAM_MEMORY_TRACKING): one line per allocated slot,
"index seconds.micros flags", the flags a fixed row of letters or '.':
s same-filled, w written back, h huge, i idle (6.1); r recompressed, n incompressible (6.2+).
The page allocator's counters over a loop of stores: what the loop kept (a leak per store).
Pure functions over the text, tested on recorded real output (tests/data/guest/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List

from .metrics import parse_fields, parse_vmstat

BD_STAT_FIELDS = ("bd_count", "bd_reads", "bd_writes")
UNIT = 4096   # bd_stat's and writeback_limit's unit


def parse_bd_stat(text: str) -> Dict[str, int]:
    return parse_fields(text, BD_STAT_FIELDS)


@dataclass(frozen=True)
class Slot:
    index: int
    ac_time: float          # seconds since boot of the last access (0 when never tracked)
    flags: FrozenSet[str]   # the letters shown, e.g. {"h", "i"}


def parse_block_state(text: str) -> Dict[int, Slot]:
    """block_state's lines as index -> Slot; lines that are not slot lines are skipped."""
    slots: Dict[int, Slot] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        try:
            ac_time = float(parts[1])
        except ValueError:
            continue
        index = int(parts[0])
        slots[index] = Slot(index, ac_time, frozenset(c for c in parts[2] if c != "."))
    return slots


def with_flags(slots: Dict[int, Slot], have: Iterable[str] = (), lack: Iterable[str] = ()) -> List[int]:
    """Indexes of the slots that have every flag in `have` and none in `lack`, sorted."""
    have, lack = set(have), set(lack)
    return sorted(i for i, s in slots.items() if have <= s.flags and not (lack & s.flags))


def units_per_page(page_size: int) -> int:
    """bd_stat counts one written-back page as this many 4 KiB units."""
    return max(1, page_size // UNIT)



# /proc/vmstat's page allocator counters: pgalloc_<zone> counts every page handed out (per-cpu
# lists included), pgfree every page given back, both in base pages whatever the order
PAGE_COUNTERS = r"^(pgalloc_|pgfree )"
LOOP_MARK = "=="


def page_counter_loop(path: str, value: str, times: int) -> str:
    """Guest shell: the page counters, `times` stores of value to path, the counters again,
    in one shell (builtins only between the readings: only the stores move them)."""
    counters = f"grep -E '{PAGE_COUNTERS}' /proc/vmstat"
    return (f"{counters}; echo {LOOP_MARK}; i=0; while [ $i -lt {times} ]; do "
            f"echo {value} > {path} || exit 1; i=$((i + 1)); done; echo {LOOP_MARK}; {counters}")


def pages_kept(loop_output: str) -> Dict[str, int]:
    """page_counter_loop's output as pages allocated, freed, and kept (allocated - freed)
    over the loop."""
    before, _, after = (parse_vmstat(part, keep_all=True) for part in loop_output.split(LOOP_MARK))

    def allocated(stats: Dict[str, int]) -> int:
        return sum(n for name, n in stats.items() if name.startswith("pgalloc_"))
    alloc = allocated(after) - allocated(before)
    freed = after["pgfree"] - before["pgfree"]
    return {"allocated": alloc, "freed": freed, "kept": alloc - freed}
