"""The suites' verdicts as pure functions over parsed data: each raises AssertionError.

Kept apart from the guest so the project's own tests can feed them recorded data
with a corrupted block, a missing migration or wrong accounting and see them fail.
"""

from __future__ import annotations

from typing import Dict, Optional

from .metrics import zone_counter
from .tools import BLOCK_SIZE, ToolReport


def check_data_intact(report: Optional[ToolReport], what: str, expect_blocks: int = 0) -> int:
    """The tool ran, compared every block and found none different; returns bytes verified."""
    assert report is not None, f"{what}: the tool printed no summary line"
    assert report.int("bad") == 0 and report.values.get("status") == "ok", \
        f"{what}: data differs after the operation:\n{report.describe()}"
    if expect_blocks:
        seen = report.int("blocks") or report.int("pages")
        assert seen >= expect_blocks, f"{what}: only {seen} of {expect_blocks} blocks were checked"
    return report.bytes


def check_mm_stat_sane(mm: Dict[str, int], kinds: Dict[str, int], page_size: int = BLOCK_SIZE,
                       same_pages: Optional[int] = None) -> None:
    """mm_stat after writing a fresh device, from block 0 on, with the given mix of block
    kinds. With pages larger than a block (arm64's 64K), zram stores whole pages: same_pages
    is what tools.expected_same_pages says, and huge pages are bounded by the pages."""
    stored = kinds["compressible"] + kinds["incompressible"] + kinds["same"]
    if page_size != BLOCK_SIZE:
        pages = -(-stored * BLOCK_SIZE // page_size)
        assert mm["orig_data_size"] == pages * page_size, \
            f"orig_data_size {mm['orig_data_size']} != {pages} pages of {page_size} written"
        assert mm["compr_data_size"] < mm["orig_data_size"], \
            f"compr_data_size {mm['compr_data_size']} is not below orig_data_size {mm['orig_data_size']}"
        if same_pages is not None:
            assert mm["same_pages"] == same_pages, \
                f"same_pages {mm['same_pages']} != {same_pages} same-filled {page_size}-byte pages written"
        assert mm.get("huge_pages", 0) <= pages - mm["same_pages"], \
            f"huge_pages {mm.get('huge_pages')} exceeds the {pages} pages written"
        assert mm["mem_used_total"] > 0, "mem_used_total is 0 after writing real objects"
        return
    assert mm["orig_data_size"] == stored * BLOCK_SIZE, \
        f"orig_data_size {mm['orig_data_size']} != {stored} blocks written * 4096"
    assert mm["compr_data_size"] < mm["orig_data_size"], \
        f"compr_data_size {mm['compr_data_size']} is not below orig_data_size {mm['orig_data_size']}"
    assert mm["same_pages"] == kinds["same"], \
        f"same_pages {mm['same_pages']} != {kinds['same']} same-filled blocks written"
    if "huge_pages" in mm:
        assert mm["huge_pages"] >= kinds["incompressible"], \
            f"huge_pages {mm['huge_pages']} < {kinds['incompressible']} incompressible blocks written"
        assert mm["huge_pages"] <= kinds["incompressible"] + kinds["compressible"], \
            f"huge_pages {mm['huge_pages']} exceeds the non-same blocks written"
    assert mm["mem_used_total"] > 0, "mem_used_total is 0 after writing real objects"


def check_compaction(before: Dict[str, int], after: Dict[str, int]) -> int:
    """zram's own compact moved objects: pages_compacted rose. Returns the rise."""
    rise = after["pages_compacted"] - before["pages_compacted"]
    assert rise > 0, (f"pages_compacted did not rise ({before['pages_compacted']} -> "
                      f"{after['pages_compacted']}) after compacting a fragmented pool")
    return rise


def check_migrated(before_vmstat: Dict[str, int], after_vmstat: Dict[str, int],
                   at_least: int = 1) -> int:
    """pgmigrate_success rose by at least `at_least`; returns the rise."""
    rise = after_vmstat.get("pgmigrate_success", 0) - before_vmstat.get("pgmigrate_success", 0)
    assert rise >= max(at_least, 1), (
        f"pgmigrate_success rose by {rise}, expected at least {max(at_least, 1)}: "
        f"the pages were not migrated")
    return rise


def check_pages_migrated(before_mm: Dict[str, int], after_mm: Dict[str, int],
                         pgmigrate_rise: int) -> int:
    """zram's pages_migrated (when the kernel has it) rose, by no more than the kernel migrated."""
    rise = after_mm["pages_migrated"] - before_mm["pages_migrated"]
    assert 0 < rise <= pgmigrate_rise, (
        f"mm_stat pages_migrated rose by {rise} while pgmigrate_success rose by "
        f"{pgmigrate_rise}: the per-pool migration count is wrong")
    return rise


def check_zspages_in_movable(zones: Dict[str, Dict[str, int]]) -> int:
    """zspages sit in ZONE_MOVABLE (else offlining proves nothing); returns how many pages."""
    movable = {z: n for z, n in zone_counter(zones, "nr_zspages").items() if z.endswith("/Movable")}
    total = sum(movable.values())
    assert total > 0, (f"no zspages in ZONE_MOVABLE before offlining (per-zone nr_zspages: "
                       f"{zone_counter(zones, 'nr_zspages')}); the test would prove nothing")
    return total


def check_mm_stat(mm_stat: Dict[str, int], when: str) -> None:
    """zram's mm_stat reads whole and says data is stored (a test that reads its columns
    must not skip its checks because the file came back empty: mutation testing found that)."""
    assert len(mm_stat) >= 7, f"{when}: mm_stat has {len(mm_stat)} columns: {mm_stat}"
    assert mm_stat["orig_data_size"] > 0 and mm_stat["mem_used_total"] > 0, \
        f"{when}: mm_stat says nothing is stored: {mm_stat}"


def check_zone_accounting(zones: Dict[str, Dict[str, int]], vmstat: Dict[str, int],
                          when: str) -> None:
    """Per-zone nr_zspages add up to the global count, none negative, none above it.

    Migration moves a zspage page between zones (ZONE_MOVABLE -> Normal when a block goes
    offline) and must move its NR_ZSPAGES count too; a kernel that skips that leaves one zone
    over-counted and another negative (mutation testing found this unchecked)."""
    if "nr_zspages" not in vmstat:
        return
    per_zone = zone_counter(zones, "nr_zspages")
    total = vmstat["nr_zspages"]
    wrong = {z: n for z, n in per_zone.items() if n < 0 or n > total}
    assert not wrong, (f"{when}: per-zone nr_zspages {per_zone} do not fit the global "
                       f"nr_zspages {total}: {wrong} (migration moved zspages without their "
                       f"zone accounting)")
    assert sum(per_zone.values()) == total, (
        f"{when}: per-zone nr_zspages {per_zone} sum to {sum(per_zone.values())}, the global "
        f"nr_zspages is {total}")


def check_no_zspages(zones: Dict[str, Dict[str, int]], vmstat: Optional[Dict[str, int]] = None) -> None:
    """After every zram device is reset, nr_zspages is 0 in every zone (and globally)."""
    left = {z: n for z, n in zone_counter(zones, "nr_zspages").items() if n != 0}
    assert not left, f"nr_zspages is not 0 after reset: {left} (per-zone accounting leaked)"
    if vmstat is not None and "nr_zspages" in vmstat:
        assert vmstat["nr_zspages"] == 0, f"global nr_zspages is {vmstat['nr_zspages']} after reset"


def check_swapped(before_vmstat: Dict[str, int], after_vmstat: Dict[str, int]) -> Dict[str, int]:
    out = {k: after_vmstat.get(k, 0) - before_vmstat.get(k, 0) for k in ("pswpout", "pswpin")}
    assert out["pswpout"] > 0, f"nothing was swapped out (pswpout delta {out['pswpout']})"
    assert out["pswpin"] > 0, f"nothing was swapped back in (pswpin delta {out['pswpin']})"
    return out
