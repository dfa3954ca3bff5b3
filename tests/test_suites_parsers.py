"""The suites' parsers and checks on data recorded from a real zstest guest (tests/data/guest/).

The recordings come from the base-profile 6.1 kernel booted by zstest with a 256 MiB
movable DIMM: zram filled with the zsfill mix, then the DIMM's blocks offlined.
"""

from pathlib import Path

import pytest

from zstest.suites.lib.checks import (check_compaction, check_migrated, check_mm_stat_sane,
                                      check_no_zspages, check_swapped, check_zspages_in_movable)
from zstest.suites.lib.kselftest import parse_selftest_output
from zstest.suites.lib.memory_blocks import parse_memory_blocks
from zstest.suites.lib.metrics import (movable_zspages, parse_io_stat, parse_meminfo,
                                       parse_mm_stat, parse_snapshot, parse_vmstat,
                                       parse_zoneinfo, split_sections, zone_counter)
from zstest.suites.lib.zram import parse_comp_algorithms, selected_algorithm

DATA = Path(__file__).parent / "data" / "guest"


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_mm_stat_fields_by_name():
    mm = parse_mm_stat(read("mm_stat.txt"))
    assert list(mm)[:3] == ["orig_data_size", "compr_data_size", "mem_used_total"]
    assert len(mm) == 9
    assert mm["orig_data_size"] == 2048 * 4096          # 2048 blocks written
    assert 0 < mm["compr_data_size"] < mm["orig_data_size"]
    assert mm["same_pages"] > 0 and mm["huge_pages"] > 0


def test_io_stat_fields_by_name():
    io = parse_io_stat(read("io_stat.txt"))
    assert set(io) == {"failed_reads", "failed_writes", "invalid_io", "notify_free"}
    assert io["failed_reads"] == 0 and io["failed_writes"] == 0


def test_mm_stat_sanity_on_the_recorded_write():
    mm = parse_mm_stat(read("mm_stat.txt"))
    kinds = {k: int(v) for k, v in (kv.split("=") for kv in read("mm_stat.kinds").split())}
    check_mm_stat_sane(mm, kinds)
    wrong = dict(kinds, same=kinds["same"] + 1, compressible=kinds["compressible"] - 1)
    with pytest.raises(AssertionError, match="same_pages"):
        check_mm_stat_sane(mm, wrong)
    with pytest.raises(AssertionError, match="huge_pages"):
        check_mm_stat_sane(mm, dict(kinds, incompressible=mm["huge_pages"] + 1,
                                    compressible=kinds["compressible"] - (mm["huge_pages"] + 1 - kinds["incompressible"])))
    with pytest.raises(AssertionError, match="compr_data_size"):
        check_mm_stat_sane(dict(mm, compr_data_size=mm["orig_data_size"]), kinds)


def test_vmstat_keeps_the_counters_the_suites_use():
    stats = parse_vmstat(read("vmstat.txt"))
    for name in ("pgmigrate_success", "pgmigrate_fail", "compact_stall", "nr_zspages",
                 "pswpin", "pswpout"):
        assert name in stats
    assert "nr_dirty" not in stats
    assert "nr_dirty" in parse_vmstat(read("vmstat.txt"), keep_all=True)


def test_zoneinfo_per_zone_zspages():
    zones = parse_zoneinfo(read("zoneinfo.txt"))
    assert {"Node0/DMA32", "Node0/Movable"} <= set(zones)
    per_zone = zone_counter(zones, "nr_zspages")
    assert per_zone["Node0/Movable"] > 0
    assert movable_zspages(zones) == per_zone["Node0/Movable"]
    # the per-node block under the first zone is not taken for that zone's counters
    assert "nr_inactive_anon" not in zones["Node0/DMA32"]
    assert zones["Node0/Movable"]["managed"] > 0
    assert check_zspages_in_movable(zones) == per_zone["Node0/Movable"]


def test_meminfo():
    info = parse_meminfo(read("meminfo.txt"))
    assert info["MemTotal"] > info["MemFree"] > 0


def test_comp_algorithm():
    text = read("comp_algorithm.txt")
    algs = parse_comp_algorithms(text)
    assert {"lzo", "lzo-rle", "lz4", "zstd"} <= set(algs)
    assert selected_algorithm(text) in algs


def test_memory_blocks_find_the_movable_dimm():
    size, blocks = parse_memory_blocks(read("memory_blocks.txt"))
    assert size == 128 << 20
    movable = [b for b in blocks if b.movable]
    assert len(movable) == 2                              # 256 MiB DIMM / 128 MiB blocks
    assert all(not b.movable for b in blocks if b not in movable)


def test_snapshot_sections():
    raw = read("snapshot_before_offline.txt")
    assert set(split_sections(raw)) == {"vmstat", "zoneinfo", "meminfo", "mm_stat", "io_stat"}
    snap = parse_snapshot(raw)
    assert snap["zoneinfo"]["Node0/Movable"]["nr_zspages"] > 0
    assert snap["mm_stat"]["orig_data_size"] > 0


def test_hotunplug_checks_on_the_recorded_run():
    before = parse_snapshot(read("snapshot_before_offline.txt"))
    after = parse_snapshot(read("snapshot_after_offline.txt"))
    in_movable = check_zspages_in_movable(before["zoneinfo"])
    assert check_migrated(before["vmstat"], after["vmstat"], at_least=in_movable) >= in_movable
    assert movable_zspages(after["zoneinfo"]) == 0
    reset = parse_snapshot(read("snapshot_after_reset.txt"))
    check_no_zspages(reset["zoneinfo"], reset["vmstat"])


def test_a_missing_migration_fails():
    before = parse_snapshot(read("snapshot_before_offline.txt"))
    with pytest.raises(AssertionError, match="pgmigrate_success rose by 0"):
        check_migrated(before["vmstat"], before["vmstat"])
    after = parse_snapshot(read("snapshot_after_offline.txt"))
    short = dict(after["vmstat"], pgmigrate_success=before["vmstat"]["pgmigrate_success"] + 1)
    with pytest.raises(AssertionError, match="not migrated"):
        check_migrated(before["vmstat"], short, at_least=check_zspages_in_movable(before["zoneinfo"]))


def test_no_zspages_in_movable_fails():
    after = parse_snapshot(read("snapshot_after_offline.txt"))
    with pytest.raises(AssertionError, match="no zspages in ZONE_MOVABLE"):
        check_zspages_in_movable(after["zoneinfo"])


def test_leaked_zone_accounting_fails():
    # The recorded zoneinfo with zspages, as if zram had been reset and a count stayed behind.
    zones = parse_zoneinfo(read("zoneinfo.txt"))
    with pytest.raises(AssertionError, match="not 0 after reset"):
        check_no_zspages(zones)
    negative = read("zoneinfo.txt").replace(
        f"nr_zspages   {zones['Node0/Movable']['nr_zspages']}", "nr_zspages   -3", 1)
    assert any(v < 0 for v in zone_counter(parse_zoneinfo(negative), "nr_zspages").values())
    with pytest.raises(AssertionError, match="not 0 after reset"):
        check_no_zspages(parse_zoneinfo(negative))


def test_compaction_and_swap_checks():
    mm = parse_mm_stat(read("mm_stat.txt"))
    with pytest.raises(AssertionError, match="pages_compacted did not rise"):
        check_compaction(mm, mm)
    assert check_compaction(mm, dict(mm, pages_compacted=mm["pages_compacted"] + 5)) == 5
    vm = parse_vmstat(read("vmstat.txt"))
    with pytest.raises(AssertionError, match="nothing was swapped out"):
        check_swapped(vm, vm)


def test_kselftest_output_of_the_real_run():
    report = parse_selftest_output(read("kselftest_zram.txt"))
    assert [c.name for c in report.cases] == ["zram01", "zram02"]
    assert report.passed, report.as_dict()


def test_kselftest_failures_and_tap():
    text = read("kselftest_zram.txt").replace("zram01 : [PASS]", "zram01 : [FAIL]")
    assert not parse_selftest_output(text).passed
    tap = "TAP version 13\n1..3\nok 1 a\nnot ok 2 b\nok 3 c # SKIP no bc\n"
    report = parse_selftest_output(tap)
    assert [c.status for c in report.cases] == ["passed", "failed", "skipped"]
    assert not report.passed
    assert not parse_selftest_output("FAIL can't set 'lzo' to x\n").passed
