"""Pure parsers of the guest's memory statistics, and one-command snapshots of them.

Every parser takes the text a guest file held and returns plain dicts, so they
are tested on recorded real data (tests/data/guest/) and the snapshots go into
results.json as they are.
"""

from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional

# /sys/block/zramN/mm_stat and io_stat, in the kernel's order (Documentation/admin-guide/blockdev/zram.rst).
MM_STAT_FIELDS = ("orig_data_size", "compr_data_size", "mem_used_total", "mem_limit",
                  "mem_used_max", "same_pages", "pages_compacted", "huge_pages",
                  "huge_pages_since",
                  # Not upstream: the 10th column of the demo series (kernel-patches/demo-migrated).
                  "pages_migrated")
IO_STAT_FIELDS = ("failed_reads", "failed_writes", "invalid_io", "notify_free")

# The /proc/vmstat counters the suites reason about (prefixes and names).
VMSTAT_PREFIXES = ("pgmigrate_", "compact_", "thp_migration_")
VMSTAT_NAMES = ("nr_zspages", "pswpin", "pswpout", "nr_free_pages", "nr_anon_pages",
                "nr_file_pages", "pgfault", "pgmajfault", "nr_isolated_anon",
                "nr_isolated_file", "swap_ra", "swap_ra_hit")

MEMINFO_NAMES = ("MemTotal", "MemFree", "MemAvailable", "Cached", "AnonPages", "SwapTotal",
                 "SwapFree", "Zswap", "Zswapped")


def _numbers(text: str) -> List[int]:
    return [int(tok) for tok in text.split()]


def parse_fields(text: str, fields: Iterable[str]) -> Dict[str, int]:
    """Whitespace-separated numbers named in order; extra or missing columns are tolerated."""
    values = _numbers(text)
    return dict(zip(fields, values))


def parse_mm_stat(text: str) -> Dict[str, int]:
    return parse_fields(text, MM_STAT_FIELDS)


def parse_io_stat(text: str) -> Dict[str, int]:
    return parse_fields(text, IO_STAT_FIELDS)


def parse_vmstat(text: str, keep_all: bool = False) -> Dict[str, int]:
    """/proc/vmstat as name -> value; by default only the counters the suites use."""
    stats: Dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            continue
        name = parts[0]
        if keep_all or name in VMSTAT_NAMES or name.startswith(VMSTAT_PREFIXES):
            stats[name] = int(parts[1])
    return stats


def parse_meminfo(text: str, keep_all: bool = False) -> Dict[str, int]:
    """/proc/meminfo as name -> kB (or count for the HugePages_ lines)."""
    info: Dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_()]+):\s+(\d+)", line)
        if m and (keep_all or m.group(1) in MEMINFO_NAMES):
            info[m.group(1)] = int(m.group(2))
    return info


_ZONE_HEADER = re.compile(r"^Node\s+(\d+),\s+zone\s+(\S+)")


def parse_zoneinfo(text: str) -> Dict[str, Dict[str, int]]:
    """/proc/zoneinfo as "Node0/Movable" -> the zone's counters (nr_zspages, managed, ...).

    The "per-node stats" block printed under a node's first zone belongs to the node,
    not to that zone, and is left out; zone lines are "name value" pairs, and "pages
    free N" is stored as "free".
    """
    zones: Dict[str, Dict[str, int]] = {}
    current: Optional[Dict[str, int]] = None
    in_node_stats = False
    for line in text.splitlines():
        header = _ZONE_HEADER.match(line)
        if header:
            current = zones.setdefault(f"Node{header.group(1)}/{header.group(2)}", {})
            in_node_stats = False
            continue
        if current is None:
            continue
        stripped = line.strip()
        if stripped == "per-node stats":
            in_node_stats = True
            continue
        if stripped.startswith("pages free"):
            in_node_stats = False
            current["free"] = int(stripped.split()[-1])
            continue
        if in_node_stats or stripped.startswith(("pagesets", "cpu:")):
            continue
        parts = stripped.replace(":", " ").split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            current[parts[0]] = int(parts[1])
    return zones


def zone_counter(zones: Dict[str, Dict[str, int]], name: str) -> Dict[str, int]:
    """One counter per zone, e.g. {"Node0/Normal": 120, "Node0/Movable": 3000}."""
    return {zone: stats[name] for zone, stats in zones.items() if name in stats}


def movable_zspages(zones: Dict[str, Dict[str, int]]) -> int:
    return sum(v for zone, v in zone_counter(zones, "nr_zspages").items()
               if zone.endswith("/Movable"))


# -- one-command snapshots ------------------------------------------------------------
_SECTION = "=====zstest-section "


def snapshot_command(zram_sysfs: Optional[str] = None) -> str:
    """A guest shell command printing every file a snapshot needs, with section markers."""
    files = {"vmstat": "/proc/vmstat", "zoneinfo": "/proc/zoneinfo", "meminfo": "/proc/meminfo"}
    if zram_sysfs:
        files["mm_stat"] = f"{zram_sysfs}/mm_stat"
        files["io_stat"] = f"{zram_sysfs}/io_stat"
    # stat_refresh folds the per-cpu counter deltas, so zone counters are exact, not lagging
    return "echo 1 > /proc/sys/vm/stat_refresh 2>/dev/null; " + "; ".join(
        f"echo '{_SECTION}{name}'; cat {path}" for name, path in files.items())


def split_sections(text: str) -> Dict[str, str]:
    sections: Dict[str, List[str]] = {}
    current: Optional[List[str]] = None
    for line in text.splitlines():
        if line.startswith(_SECTION):
            current = sections.setdefault(line[len(_SECTION):].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) + "\n" for name, lines in sections.items()}


def parse_snapshot(text: str) -> Dict[str, Dict]:
    """The output of snapshot_command() as {"vmstat": {...}, "zoneinfo": {zone: {...}}, ...}.

    zoneinfo keeps only nr_zspages, free and managed per zone: enough to follow zspages
    across zones without filling results.json with every zone counter.
    """
    raw = split_sections(text)
    snap: Dict[str, Dict] = {}
    if "vmstat" in raw:
        snap["vmstat"] = parse_vmstat(raw["vmstat"])
    if "zoneinfo" in raw:
        zones = parse_zoneinfo(raw["zoneinfo"])
        snap["zoneinfo"] = {z: {k: s[k] for k in ("nr_zspages", "free", "managed") if k in s}
                            for z, s in zones.items()}
    if "meminfo" in raw:
        snap["meminfo"] = parse_meminfo(raw["meminfo"])
    if "mm_stat" in raw:
        snap["mm_stat"] = parse_mm_stat(raw["mm_stat"])
    if "io_stat" in raw:
        snap["io_stat"] = parse_io_stat(raw["io_stat"])
    return snap


def take_snapshot(guest, zram_sysfs: Optional[str] = None) -> Dict[str, Dict]:
    """Everything in one SSH round trip (each costs tens of ms under TCG)."""
    return parse_snapshot(guest.check(snapshot_command(zram_sysfs)))


def delta(before: Dict[str, Dict], after: Dict[str, Dict], section: str, name: str) -> int:
    return after.get(section, {}).get(name, 0) - before.get(section, {}).get(name, 0)
