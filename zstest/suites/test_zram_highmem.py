"""zsmalloc with highmem (32-bit kernels with CONFIG_HIGHMEM: zstest's i386 arch).

zram allocates zspage pages with __GFP_HIGHMEM, so on a guest with more RAM than lowmem they
land in the HighMem zone; zsmalloc then maps them with kmap, and an object that spans two
pages takes zs_map_object's copy path (and zs_obj_write's split copy). The zone's own
nr_zspages counter says where the zspages are; the data must read back intact. Skipped on
kernels without CONFIG_HIGHMEM (every 64-bit one).
"""

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fixtures import guest_tools, require_config, zram  # noqa: F401  (fixtures)
from zstest.suites.lib.metrics import parse_zoneinfo, zone_counter
from zstest.suites.lib.tools import parse_tool_output, zsfill_command

BLOCKS = 8192            # 32 MiB of the mixed data: every size class, objects spanning pages
DISKSIZE = 64 << 20
# at least this share of the zspages the fill created must sit in HighMem
HIGHMEM_SHARE = 0.5


def _zspages(guest) -> dict:
    return zone_counter(parse_zoneinfo(guest.read("/proc/zoneinfo")), "nr_zspages")


def test_zspages_live_in_highmem(guest, guest_tools, kernel_config, record, zram):
    require_config(kernel_config, "CONFIG_HIGHMEM", "CONFIG_ZRAM")
    meminfo = dict(line.split(":", 1) for line in guest.read("/proc/meminfo").splitlines()
                   if ":" in line)
    high_total_kb = int(meminfo.get("HighTotal", "0 kB").split()[0])
    record.detail("high_total_kb", high_total_kb)
    assert high_total_kb > 0, ("the guest has no highmem (HighTotal 0): it needs more RAM "
                               "than lowmem for this test to mean anything")
    zram.setup(DISKSIZE, "lzo")
    before = _zspages(guest)
    wrote = parse_tool_output(guest.check(zsfill_command("write", zram.path, BLOCKS, seed=29)))
    check_data_intact(wrote, "write", BLOCKS)
    after = _zspages(guest)
    read = parse_tool_output(guest.run(zsfill_command("verify", zram.path, BLOCKS,
                                                      seed=29)).stdout)
    check_data_intact(read, "read back from highmem zspages", BLOCKS)
    grown = {zone: after.get(zone, 0) - before.get(zone, 0) for zone in after}
    record.detail("zspages_per_zone_before", before)
    record.detail("zspages_per_zone_after", after)
    total = sum(v for v in grown.values() if v > 0)
    high = sum(v for zone, v in grown.items() if zone.endswith("/HighMem") and v > 0)
    record.metric(zspages_created=total, zspages_in_highmem=high)
    assert total > 0, "the fill created no zspage: the data did not reach zsmalloc"
    assert high >= HIGHMEM_SHARE * total, (
        f"only {high} of the {total} zspages the fill created are in HighMem "
        f"(per zone: {grown}): zsmalloc's highmem paths were not exercised")
