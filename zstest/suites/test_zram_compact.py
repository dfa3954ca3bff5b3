"""zram's own compaction of a fragmented pool (issue 5, test 4)."""

from zstest.suites.lib.checks import check_compaction, check_data_intact
from zstest.suites.lib.fixtures import guest_tools, zram  # noqa: F401  (fixtures)
from zstest.suites.lib.metrics import take_snapshot
from zstest.suites.lib.tools import parse_tool_output, zsfill_command

BLOCKS = 4096          # 16 MiB
MIX = (8, 1, 1)        # mostly small objects: many per zspage, so holes can be compacted


def test_compact_fragmented_pool(guest, guest_tools, zram, record, page_size):
    # zram stores one object per kernel page: on a 64K-page kernel the holes are punched a
    # whole page (16 blocks) at a time, or every page would only be rewritten, never freed
    group = max(1, page_size // 4096)
    zram.setup(32 << 20)
    check_data_intact(parse_tool_output(guest.check(
        zsfill_command("write", zram.path, BLOCKS, seed=21, mix=MIX))), "fill")
    # Overwrite every other page with same-filled data: frees half the objects of each zspage.
    check_data_intact(parse_tool_output(guest.check(
        zsfill_command("write", zram.path, BLOCKS, seed=22, mix=(0, 0, 1), stride=2, phase=1,
                       group=group))),
        "punch holes")
    before = take_snapshot(guest, zram.sysfs)
    zram.compact()
    after = take_snapshot(guest, zram.sysfs)
    record.metric(before=before, after=after)
    rise = check_compaction(before["mm_stat"], after["mm_stat"])
    record.detail("pages_compacted", rise)
    record.detail("mem_used_total_freed", before["mm_stat"]["mem_used_total"] -
                  after["mm_stat"]["mem_used_total"])
    verified = check_data_intact(parse_tool_output(guest.run(zsfill_command(
        "verify", zram.path, BLOCKS, seed=21, mix=MIX, stride=2, phase=0,
        group=group)).stdout),
        "kept blocks after compact", BLOCKS // 2)
    verified += check_data_intact(parse_tool_output(guest.run(zsfill_command(
        "verify", zram.path, BLOCKS, seed=22, mix=(0, 0, 1), stride=2, phase=1,
        group=group)).stdout),
        "overwritten blocks after compact", BLOCKS // 2)
    record.detail("bytes_verified", verified)
