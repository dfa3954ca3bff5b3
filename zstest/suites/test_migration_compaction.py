"""zsmalloc page migration by memory compaction while I/O runs (issue 5, test 5)."""

from zstest.suites.lib.background import BackgroundIO
from zstest.suites.lib.checks import check_data_intact, check_migrated
from zstest.suites.lib.fixtures import guest_tools, require_config, zram  # noqa: F401
from zstest.suites.lib.metrics import take_snapshot, zone_counter
from zstest.suites.lib.tools import parse_tool_output, zsfill_command

READ_BLOCKS = 8192     # 32 MiB verified over and over while compaction runs
WRITE_BLOCKS = 2048    # 8 MiB rewritten over and over after it
ROUNDS = 3


def test_compaction_migrates_under_io(guest, guest_tools, zram, kernel_config, record):
    require_config(kernel_config, "CONFIG_COMPACTION", "CONFIG_MIGRATION")
    zram.setup(64 << 20)
    check_data_intact(parse_tool_output(guest.check(
        zsfill_command("write", zram.path, READ_BLOCKS, seed=31))), "fill")
    check_data_intact(parse_tool_output(guest.check(
        zsfill_command("write", zram.path, WRITE_BLOCKS, start=READ_BLOCKS, seed=32))), "fill")
    # Free the page cache, so compaction has room to move zspages into.
    guest.check("sync && echo 3 > /proc/sys/vm/drop_caches")
    before = take_snapshot(guest, zram.sysfs)

    io = BackgroundIO(guest, "compaction-io")
    io.start(zsfill_command("verify", zram.path, READ_BLOCKS, seed=31))
    io.start(zsfill_command("write", zram.path, WRITE_BLOCKS, start=READ_BLOCKS, seed=32))
    try:
        for _ in range(ROUNDS):
            guest.check("echo 1 > /proc/sys/vm/compact_memory", timeout=300)
    finally:
        reader, writer = io.stop()
    after = take_snapshot(guest, zram.sysfs)
    record.metric(before=before, after=after)

    during = check_data_intact(reader, "reads while compacting")
    check_data_intact(writer, "writes while compacting")
    final = check_data_intact(parse_tool_output(guest.run(zsfill_command(
        "verify", zram.path, READ_BLOCKS, seed=31)).stdout),
        "read back after compaction", READ_BLOCKS)
    final += check_data_intact(parse_tool_output(guest.run(zsfill_command(
        "verify", zram.path, WRITE_BLOCKS, start=READ_BLOCKS, seed=32)).stdout),
        "rewritten blocks after compaction", WRITE_BLOCKS)
    rise = check_migrated(before["vmstat"], after["vmstat"])
    record.detail("pgmigrate_success_delta", rise)
    record.detail("compact_rounds", ROUNDS)
    record.detail("io_passes", {"reader": reader.int("passes"), "writer": writer.int("passes")})
    record.detail("bytes_verified", during + final)
    record.detail("zspages_per_zone_before", zone_counter(before["zoneinfo"], "nr_zspages"))
    record.detail("zspages_per_zone_after", zone_counter(after["zoneinfo"], "nr_zspages"))
