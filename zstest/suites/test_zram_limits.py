"""zram's memory limit and discard (issue 28, part 4).

mem_limit: writes past it fail, the blocks written before it read back, and lifting it
makes the device whole again. Discard (blkdiscard) and fstrim on ext4 free the slots
they cover: orig_data_size and mem_used_total fall, notify_free counts each page; a
discard covering only part of a page (64K-page kernels) frees nothing.
"""

import pytest

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fixtures import guest_tools, zram  # noqa: F401  (fixtures)
from zstest.suites.lib.tools import parse_tool_output, zsfill_command

BLOCKS = 1024
MNT = "/mnt/zram-trim"


def _write(guest, dev, blocks, seed, mix=(5, 3, 2), start=0):
    return check_data_intact(parse_tool_output(guest.check(
        zsfill_command("write", dev.path, blocks, seed=seed, mix=mix, start=start))),
        "write", blocks)


def _verify(guest, dev, blocks, seed, what, mix=(5, 3, 2), start=0):
    return check_data_intact(parse_tool_output(guest.run(zsfill_command(
        "verify", dev.path, blocks, seed=seed, mix=mix, start=start)).stdout), what, blocks)


def _need(guest, tool):
    if guest.run(f"command -v {tool}").exit_status != 0:
        pytest.skip(f"{tool} is not in the guest image")


def _written_sectors(guest, dev) -> int:
    """Sectors written to the device so far (/sys/block/zramN/stat, its 7th field)."""
    return int(guest.check(f"cat {dev.sysfs}/stat").split()[6])


def test_mem_limit_stops_writes(guest, guest_tools, zram, record):
    zram.setup(32 << 20)
    limit = 1 << 20
    zram.set("mem_limit", limit)
    assert zram.mm_stat()["mem_limit"] == limit
    incompressible = (0, 1, 0)     # one zsmalloc page per block: the limit is reached quickly
    out = guest.run(zsfill_command("write", zram.path, BLOCKS, seed=61, mix=incompressible))
    report = parse_tool_output(out.stdout)
    mm, io = zram.mm_stat(), zram.io_stat()
    record.metric(mm_stat_at_limit=mm, io_stat_at_limit=io)
    assert out.exit_status != 0 and report is not None and report.values.get("status") == "error", \
        f"writing {BLOCKS * 4} KiB into a {limit >> 10} KiB limit did not fail: {out.stdout}"
    assert io["failed_writes"] > 0, f"failed_writes did not count the refused writes: {io}"
    assert mm["mem_used_total"] <= limit, \
        f"mem_used_total {mm['mem_used_total']} is past mem_limit {limit}"
    done = report.int("blocks")
    record.detail("blocks_written_before_limit", done)
    assert done > 0, "no block fitted under the limit"
    _verify(guest, zram, done, 61, "blocks written before the limit", mix=incompressible)
    # lifting the limit: the same writes now succeed, every block reads back
    zram.set("mem_limit", 0)
    _write(guest, zram, BLOCKS, 61, mix=incompressible)
    _verify(guest, zram, BLOCKS, 61, "after lifting the limit", mix=incompressible)
    assert zram.io_stat()["failed_writes"] == io["failed_writes"]


def test_blkdiscard_frees_slots(guest, guest_tools, zram, record, page_size):
    _need(guest, "blkdiscard")
    zram.setup(16 << 20)
    _write(guest, zram, BLOCKS, 62)
    before_mm, before_io = zram.mm_stat(), zram.io_stat()
    half_bytes = BLOCKS // 2 * 4096
    guest.check(f"blkdiscard -o 0 -l {half_bytes} {zram.path}")
    mm, io = zram.mm_stat(), zram.io_stat()
    record.metric(mm_stat_before=before_mm, mm_stat_after=mm, io_stat_after=io)
    pages = half_bytes // page_size
    assert before_mm["orig_data_size"] - mm["orig_data_size"] == pages * page_size, \
        f"discarding {pages} written pages freed {before_mm['orig_data_size'] - mm['orig_data_size']} bytes"
    assert io["notify_free"] - before_io["notify_free"] == pages, \
        f"notify_free rose by {io['notify_free'] - before_io['notify_free']}, not {pages}"
    assert mm["mem_used_total"] < before_mm["mem_used_total"], "zsmalloc memory did not fall"
    zeros = guest.check(f"dd if={zram.path} bs=4096 count={BLOCKS // 2} iflag=direct 2>/dev/null "
                        f"| tr -d '\\000' | wc -c").strip()
    assert zeros == "0", f"discarded blocks read back {zeros} non-zero bytes"
    _verify(guest, zram, BLOCKS // 2, 62, "blocks outside the discard", start=BLOCKS // 2)
    record.detail("pages_discarded", pages)


def test_partial_page_discard_left_alone(guest, guest_tools, zram, record, page_size):
    if page_size == 4096:
        pytest.skip("4 KiB pages: zram's logical block is the page, a discard cannot cover part of one")
    _need(guest, "blkdiscard")
    zram.setup(16 << 20)
    per = page_size // 4096
    _write(guest, zram, 2 * per, 63)
    before_mm, before_io = zram.mm_stat(), zram.io_stat()
    # from the second 4 KiB block of page 0 to the first of page 1: no whole page
    guest.check(f"blkdiscard -o 4096 -l {page_size} {zram.path}")
    mm, io = zram.mm_stat(), zram.io_stat()
    assert mm["orig_data_size"] == before_mm["orig_data_size"] and \
        io["notify_free"] == before_io["notify_free"], "a discard of partial pages freed a page"
    _verify(guest, zram, 2 * per, 63, "partly discarded pages")


def test_fstrim_frees_deleted_file(guest, guest_tools, zram, record, page_size):
    _need(guest, "fstrim")
    zram.setup(64 << 20)
    # nodiscard: mkfs must not trim the device itself, the test's trim is the one measured;
    # no lazy init: no kernel thread writing inode tables while the test measures
    guest.check(f"mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "
                f"{zram.path} && mkdir -p {MNT} && "
                f"mount -t ext4 {zram.path} {MNT}")
    try:
        check_data_intact(parse_tool_output(guest.check(zsfill_command(
            "write", f"{MNT}/data", BLOCKS, seed=64, mix=(1, 1, 0), direct=False))), "file")
        check_data_intact(parse_tool_output(guest.check(zsfill_command(
            "write", f"{MNT}/keep", 256, seed=65, direct=False))), "file")
        guest.check("sync")
        before_mm, before_io = zram.mm_stat(), zram.io_stat()
        sectors = _written_sectors(guest, zram)
        guest.check(f"rm {MNT}/data && sync && fstrim {MNT}")
        mm, io = zram.mm_stat(), zram.io_stat()
        # the metadata ext4 wrote meanwhile may have filled pages that were empty
        written = (_written_sectors(guest, zram) - sectors) * 512
        record.metric(mm_stat_before=before_mm, mm_stat_after=mm, io_stat_after=io)
        freed = before_mm["orig_data_size"] - mm["orig_data_size"]
        record.detail("bytes_freed_by_fstrim", freed)
        record.detail("bytes_written_meanwhile", written)
        floor = BLOCKS * 4096 - written if page_size == 4096 else 1
        assert freed >= floor, \
            f"fstrim after deleting a {BLOCKS * 4} KiB file freed {freed} bytes " \
            f"({written} bytes written meanwhile)"
        assert io["notify_free"] - before_io["notify_free"] >= freed // page_size
        assert mm["mem_used_total"] < before_mm["mem_used_total"]
        guest.check("echo 3 > /proc/sys/vm/drop_caches")
        check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", f"{MNT}/keep", 256, seed=65, direct=False)).stdout), "kept file", 256)
    finally:
        guest.run(f"umount {MNT}")
