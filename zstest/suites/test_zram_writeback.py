"""zram writeback to a backing device (issue 28, part 1).

The backing device is a second zram device: a real block device every zram kernel has
(no loop driver needed), whose own mm_stat counts what writeback sent it. Each test
proves the path ran with bd_stat (4 KiB units) and mm_stat, and reads every block
back byte for byte, written-back pages through the backing device (bd_reads rises).
"""

from contextlib import contextmanager

import pytest

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fault_inject import DEBUGFS, FaultKnobs
from zstest.suites.lib.fixtures import guest_tools  # noqa: F401  (fixture)
from zstest.suites.lib.tools import parse_tool_output, zsfill_command
from zstest.suites.lib.zram import ZramDevice, ensure_zram_control
from zstest.suites.lib.zram_state import (page_counter_loop, pages_kept, units_per_page,
                                          with_flags)

BLOCKS = 1024          # 4 MiB of the default mix: compressible, incompressible (huge), same
# then this many incompressible blocks: huge pages on any page size (a 64K page of the mix
# compresses, its incompressible blocks are not the whole page)
HUGE_BLOCKS = 256
INCOMPRESSIBLE = (0, 1, 0)
DISKSIZE = 8 << 20
BACKING_SIZE = 16 << 20
SEED = 31


class Pair:
    """A front zram device writing back to a backing zram device."""

    def __init__(self, guest, front: ZramDevice, backing: ZramDevice, page_size: int):
        self.guest, self.front, self.backing = guest, front, backing
        self.unit = units_per_page(page_size)
        self.page_size = page_size

    def write(self, blocks=BLOCKS, seed=SEED, start=0, mix=(5, 3, 2)):
        return check_data_intact(parse_tool_output(self.guest.check(zsfill_command(
            "write", self.front.path, blocks, seed=seed, start=start, mix=mix))),
            f"write seed {seed}", blocks)

    def verify(self, what, blocks=BLOCKS, seed=SEED, start=0, mix=(5, 3, 2)):
        return check_data_intact(parse_tool_output(self.guest.run(zsfill_command(
            "verify", self.front.path, blocks, seed=seed, start=start, mix=mix)).stdout),
            what, blocks)

    def fill(self):
        """The mix, then the incompressible blocks after it."""
        self.write()
        self.write(blocks=HUGE_BLOCKS, seed=SEED, start=BLOCKS, mix=INCOMPRESSIBLE)

    def verify_all(self, what):
        self.verify(what)
        self.verify(what + " (incompressible blocks)", blocks=HUGE_BLOCKS, start=BLOCKS,
                    mix=INCOMPRESSIBLE)

    def writeback(self, mode: str):
        return self.front.try_set("writeback", mode)

    def pages(self, mm) -> int:
        return mm["orig_data_size"] // self.page_size


def _block_state_or_skip(dev: ZramDevice):
    if not dev.guest.exists(dev.block_state_path):
        pytest.skip(f"no {dev.block_state_path}: the kernel lacks CONFIG_ZRAM_MEMORY_TRACKING "
                    f"(or debugfs), so slots' flags cannot be read")
    return dev.block_state()


@pytest.fixture
def pair(guest, guest_tools, page_size):
    ensure_zram_control(guest)
    backing = ZramDevice.add(guest)
    front = None
    try:
        front = ZramDevice.add(guest)
        if not front.has("backing_dev"):
            pytest.skip("this kernel's zram has no backing_dev attribute (CONFIG_ZRAM_WRITEBACK off)")
        backing.setup(BACKING_SIZE)
        front.set("backing_dev", backing.path)
        front.setup(DISKSIZE)
        yield Pair(guest, front, backing, page_size)
    finally:
        if front is not None:
            front.remove()      # releases the backing device first
        backing.remove()


def test_writeback_huge_page_idle(guest, pair, record):
    """huge, then page_index=N, then idle after `idle all`: each moves what it should, and
    every block reads back, the written-back ones from the backing device."""
    front, unit = pair.front, pair.unit
    assert front.attr("backing_dev") == pair.backing.path
    pair.fill()
    mm0 = front.mm_stat()
    huge, same, stored = mm0["huge_pages"], mm0["same_pages"], pair.pages(mm0)
    assert huge > 0, f"no huge page after writing incompressible blocks: {mm0}"
    assert front.bd_stat() == {"bd_count": 0, "bd_reads": 0, "bd_writes": 0}

    res = pair.writeback("huge")
    assert res.exit_status == 0, f"writeback huge failed: {res.stderr}"
    bd1, mm1 = front.bd_stat(), front.mm_stat()
    record.detail("huge_written_back", huge)
    assert bd1["bd_writes"] == bd1["bd_count"] == huge * unit, \
        f"writeback huge of {huge} huge pages: bd_stat {bd1}"
    assert mm1["huge_pages"] == 0, f"huge_pages {mm1['huge_pages']} after writing them all back"
    assert mm1["orig_data_size"] == mm0["orig_data_size"], "writeback changed orig_data_size"
    assert mm0["compr_data_size"] - mm1["compr_data_size"] == huge * pair.page_size, \
        f"compr_data_size fell by {mm0['compr_data_size'] - mm1['compr_data_size']}, " \
        f"not by the {huge} huge pages written back"
    landed = pair.backing.mm_stat()["orig_data_size"]
    assert landed == huge * pair.page_size, \
        f"the backing device stores {landed} bytes after {huge} pages were written back"

    written = huge
    if guest.exists(front.block_state_path):
        slots = front.block_state()
        assert len(with_flags(slots, have="w")) == huge
        index = with_flags(slots, lack="swh")[0]
        res = pair.writeback(f"page_index={index}")
        assert res.exit_status == 0, f"writeback page_index={index} failed: {res.stderr}"
        assert "w" in front.block_state()[index].flags, f"slot {index} is not written back"
        written += 1
        assert front.bd_stat()["bd_writes"] == written * unit, "page_index= wrote back no page"
        record.detail("page_index_written_back", index)
        past = DISKSIZE // pair.page_size     # the first index past the device's end
        res = pair.writeback(f"page_index={past}")
        assert res.exit_status != 0 and "invalid argument" in res.stderr.lower(), \
            f"writeback page_index={past} past the last slot: exit {res.exit_status}, {res.stderr!r}"
        assert front.bd_stat()["bd_writes"] == written * unit
        # a slot never written: nothing to write back (no zero page lands on the backing device)
        empty = past - 1
        assert empty not in slots, f"precondition: slot {empty} was never written"
        assert pair.writeback(f"page_index={empty}").exit_status == 0
        assert front.bd_stat()["bd_writes"] == written * unit, \
            f"writeback page_index={empty} of a slot never written wrote a page back"

    front.set("idle", "all")
    res = pair.writeback("idle")
    assert res.exit_status == 0, f"writeback idle failed: {res.stderr}"
    bd2, mm2 = front.bd_stat(), front.mm_stat()
    expect = stored - same
    record.detail("pages_written_back", expect)
    assert bd2["bd_writes"] == bd2["bd_count"] == expect * unit, \
        f"after idle all + writeback idle: bd_stat {bd2}, expected every one of the " \
        f"{expect} stored pages that are not same-filled"
    assert mm2["compr_data_size"] == 0 and mm2["mem_used_total"] == 0, \
        f"zsmalloc still holds data after every object was written back: {mm2}"
    assert mm2["same_pages"] == same and pair.pages(mm2) == stored

    pair.verify_all("read back from the backing device")
    bd3 = front.bd_stat()
    assert bd3["bd_reads"] >= expect * unit, \
        f"reading {expect} written-back pages read {bd3['bd_reads']} units from the backing device"
    record.metric(bd_stat=bd3, mm_stat_before=mm0, mm_stat_after=mm2)

    # Overwriting written-back blocks frees their backing blocks; the rest still read back.
    half = BLOCKS // 2
    pair.write(blocks=half, seed=SEED + 1)
    bd4 = front.bd_stat()
    assert bd4["bd_count"] < bd3["bd_count"], \
        f"overwriting written-back blocks freed no backing block: {bd3} -> {bd4}"
    pair.verify("overwritten half", blocks=half, seed=SEED + 1)
    pair.verify("half still on the backing device", blocks=BLOCKS - half, start=half)
    pair.verify("incompressible blocks on the backing device", blocks=HUGE_BLOCKS, start=BLOCKS,
                mix=INCOMPRESSIBLE)
    # the rewritten slots are ordinary again: marked idle and written back like the first time
    front.set("idle", "all")
    res = pair.writeback("idle")
    assert res.exit_status == 0, f"second writeback idle failed: {res.stderr}"
    mm5 = front.mm_stat()
    assert mm5["compr_data_size"] == 0, \
        f"slots rewritten after their writeback were not written back again: {mm5}"
    pair.verify("overwritten half, written back", blocks=half, seed=SEED + 1)


def test_writeback_huge_idle(guest, pair, record):
    """huge_idle writes back exactly the huge slots still idle: reading clears idle."""
    front, unit = pair.front, pair.unit
    pair.fill()
    _block_state_or_skip(front)
    front.set("idle", "all")
    pair.verify("reads that clear idle", blocks=HUGE_BLOCKS // 2, start=BLOCKS,
                mix=INCOMPRESSIBLE)
    slots = front.block_state()
    target = with_flags(slots, have="hi", lack="w")
    kept = with_flags(slots, have="h", lack="iw")
    assert target and kept, \
        f"precondition: idle and non-idle huge slots both exist (idle {len(target)}, " \
        f"read since {len(kept)})"
    res = pair.writeback("huge_idle")
    assert res.exit_status == 0, f"writeback huge_idle failed: {res.stderr}"
    after = front.block_state()
    assert front.bd_stat()["bd_writes"] == len(target) * unit
    assert with_flags(after, have="w") == target, "huge_idle wrote back other slots than idle huge ones"
    assert all("h" in after[i].flags and "w" not in after[i].flags for i in kept), \
        "huge slots read since `idle all` were written back by huge_idle"
    record.detail("huge_idle_written_back", len(target))
    record.detail("huge_not_idle_kept", len(kept))
    pair.verify_all("read back after huge_idle")


def test_writeback_limit(guest, pair, record):
    """writeback_limit_enable + writeback_limit stop writeback at the limit, exactly."""
    front, unit = pair.front, pair.unit
    if not front.has("writeback_limit"):
        pytest.skip("this kernel's zram has no writeback_limit attribute")
    pair.fill()
    huge = front.mm_stat()["huge_pages"]
    allowed = 2
    assert huge > allowed, f"precondition: more than {allowed} huge pages ({huge})"
    front.set("writeback_limit_enable", 1)
    front.set("writeback_limit", allowed * unit)
    assert int(front.attr("writeback_limit")) == allowed * unit
    res = pair.writeback("huge")
    bd = front.bd_stat()
    record.detail("limited_writeback_exit", res.exit_status)
    assert bd["bd_writes"] == allowed * unit, \
        f"writeback_limit {allowed * unit} let {bd['bd_writes']} units through"
    assert int(front.attr("writeback_limit")) == 0, "the limit was not used up"
    assert res.exit_status != 0, "writeback that hit its limit did not say so"
    res = pair.writeback("huge")
    assert front.bd_stat()["bd_writes"] == allowed * unit, "an exhausted limit let more through"

    front.set("writeback_limit_enable", 0)
    res = pair.writeback("huge")
    assert res.exit_status == 0, f"writeback huge without limit failed: {res.stderr}"
    assert front.bd_stat()["bd_writes"] == huge * unit, "lifting the limit did not write the rest back"
    record.detail("huge_pages", huge)
    pair.verify_all("read back after limited writeback")


def test_reset_releases_backing_device(guest, guest_tools, record):
    """Reset releases the backing device: of an initialised device with written-back data,
    and of one never initialised (a 2024 bug kept it held)."""
    ensure_zram_control(guest)
    with ZramDevice.add(guest) as backing, ZramDevice.add(guest) as front:
        if not front.has("backing_dev"):
            pytest.skip("this kernel's zram has no backing_dev attribute (CONFIG_ZRAM_WRITEBACK off)")
        backing.setup(BACKING_SIZE)
        # never initialised: a backing device, no disksize
        front.set("backing_dev", backing.path)
        held = backing.try_set("reset", 1)
        assert held.exit_status != 0, "the backing device could be reset while attached"
        front.set("reset", 1)
        assert front.attr("backing_dev") == "none"
        assert int(front.attr("initstate")) == 0
        assert backing.try_set("reset", 1).exit_status == 0, \
            "reset of an uninitialised device did not release its backing device"
        backing.setup(BACKING_SIZE)
        # initialised, with written-back pages
        front.set("backing_dev", backing.path)
        front.setup(DISKSIZE)
        check_data_intact(parse_tool_output(guest.check(zsfill_command(
            "write", front.path, HUGE_BLOCKS, seed=SEED, mix=INCOMPRESSIBLE))), "write", HUGE_BLOCKS)
        assert front.try_set("writeback", "huge").exit_status == 0
        wrote = front.bd_stat()["bd_writes"]
        assert wrote > 0, "nothing was written back before the reset"
        front.set("reset", 1)
        assert front.attr("backing_dev") == "none"
        assert front.bd_stat() == {"bd_count": 0, "bd_reads": 0, "bd_writes": 0}
        assert backing.try_set("reset", 1).exit_status == 0, \
            "reset of a device with written-back data did not release its backing device"
        record.detail("written_back_before_reset", wrote)
        # a device never initialised, nothing attached: reset is harmless
        assert front.try_set("reset", 1).exit_status == 0
        assert int(front.attr("disksize")) == 0


WB_LOOP_STOP = "/tmp/zram-wb-loop.stop"
WB_LOOP_DONE = "/tmp/zram-wb-loop.done"
SWAP_MB = 16
SWAP_RUNS = 3


def _writeback_loop(sysfs: str) -> str:
    """Mark everything idle and write it back, over and over, until told to stop."""
    return (f"n=0; while [ ! -e {WB_LOOP_STOP} ]; do echo all > {sysfs}/idle; "
            f"echo idle > {sysfs}/writeback; n=$((n + 1)); sleep 0.2; done; "
            f"echo $n > {WB_LOOP_DONE}")


def test_swap_with_writeback_under_pressure(guest, pair, kernel_config, record):
    """Swap on a zram that writes back while the pages are swapped out and in again (the
    2018 bug's shape: writeback I/O landing after swap freed the slot): every page reads
    back, and swap-in read pages from the backing device."""
    from zstest.suites.lib.fixtures import require_config
    from zstest.suites.lib.perf import MemoryCgroup, other_swap_off
    require_config(kernel_config, "CONFIG_SWAP", "CONFIG_MEMCG")
    front = pair.front
    guest.check(f"mkswap {front.path} > /dev/null && swapon {front.path}")
    other_swap_off(guest, front.path)
    runs = []
    try:
        with MemoryCgroup.create(guest, "zstest-wb-swap", kernel_config) as group:
            if not group.has("memory.reclaim"):
                pytest.skip("the memory cgroup has no memory.reclaim (Linux 5.19 added it)")
            group.set("memory.max", f"{2 * SWAP_MB}M")
            guest.check(f"rm -f {WB_LOOP_STOP} {WB_LOOP_DONE}; setsid sh -c "
                        f"'{_writeback_loop(front.sysfs)}' > /dev/null 2>&1 < /dev/null &")
            try:
                # bounded: until swap-in has read a written-back page
                for run in range(SWAP_RUNS):
                    out = guest.check(group.run_inside(
                        f"exec memtouch --mb {SWAP_MB} --seed {111 + run} --cycles 1 "
                        f"--reclaim {group.path}/memory.reclaim"), timeout=600)
                    check_data_intact(parse_tool_output(out, "memtouch"),
                                      f"memtouch run {run + 1}, swapped through the backing device")
                    runs.append(front.bd_stat())
                    if runs[-1]["bd_reads"] > 0:
                        break
            finally:
                guest.check(f"touch {WB_LOOP_STOP}")
                loops = guest.check(f"for i in $(seq 100); do [ -e {WB_LOOP_DONE} ] && "
                                    f"exec cat {WB_LOOP_DONE}; sleep 0.1; done; echo 0").strip()
    finally:
        guest.run(f"swapoff {front.path}")
    bd = front.bd_stat()
    record.detail("memtouch_runs", len(runs))
    record.detail("writeback_loops", int(loops))
    record.metric(bd_stat=bd, io_stat=front.io_stat())
    assert int(loops) >= 1, "the writeback loop never ran"
    assert runs and runs[-1]["bd_writes"] > 0, f"nothing was written back while swapping: {runs}"
    assert runs[-1]["bd_reads"] > 0, \
        f"in {len(runs)} runs swap-in never read a page from the backing device: {runs}"
    # (failed_reads counts each swap-in of a written-back page: rw_page declines it, then
    # the bio path reads it from the backing device)
    assert front.io_stat()["failed_writes"] == 0


def test_writeback_to_a_full_backing_device(guest, guest_tools, record, page_size):
    """A backing device smaller than what is to be written back: writeback fills every
    block but block 0 (zram never uses it), says ENOSPC, and every page still reads back."""
    ensure_zram_control(guest)
    unit = units_per_page(page_size)
    backing_pages = max(2, HUGE_BLOCKS * 4096 // page_size // 2)
    with ZramDevice.add(guest) as backing, ZramDevice.add(guest) as front:
        if not front.has("backing_dev"):
            pytest.skip("this kernel's zram has no backing_dev attribute (CONFIG_ZRAM_WRITEBACK off)")
        backing.setup(backing_pages * page_size)
        front.set("backing_dev", backing.path)
        front.setup(DISKSIZE)
        pair = Pair(guest, front, backing, page_size)
        pair.write(blocks=HUGE_BLOCKS, mix=INCOMPRESSIBLE)
        huge = front.mm_stat()["huge_pages"]
        assert huge > backing_pages, f"precondition: {huge} huge pages, {backing_pages} backing blocks"
        res = pair.writeback("huge")
        bd = front.bd_stat()
        record.detail("backing_pages", backing_pages)
        record.detail("written_back", bd["bd_writes"] // unit)
        assert res.exit_status != 0 and "no space" in res.stderr.lower(), \
            f"writeback into a full backing device: exit {res.exit_status}, {res.stderr.strip()}"
        assert bd["bd_count"] == bd["bd_writes"] == (backing_pages - 1) * unit, \
            f"a backing device of {backing_pages} blocks took {bd}"
        assert front.mm_stat()["huge_pages"] == huge - (backing_pages - 1)
        pair.verify("read back, part from a full backing device", blocks=HUGE_BLOCKS,
                    mix=INCOMPRESSIBLE)


FAIL_BUDGET = 1000000    # fail_make_request's `times`: how far it fell is how many bios failed


def _require_failing_bios(guest, dev: ZramDevice) -> None:
    FaultKnobs(guest).require("fail_make_request")
    if not dev.has("make-it-fail"):
        pytest.skip(f"no {dev.sysfs}/make-it-fail: the kernel lacks CONFIG_FAIL_MAKE_REQUEST")


@contextmanager
def _failing_bios(guest, dev: ZramDevice):
    """Every bio submitted to dev ends in EIO for the span of the `with` (fail_make_request
    through dev's make-it-fail: no other device or task is touched); yields a function that
    counts the failures so far."""
    with FaultKnobs(guest) as knobs:
        knobs.set("fail_make_request", verbose=0, space=0, interval=1, times=FAIL_BUDGET,
                  probability=100)
        try:
            dev.set("make-it-fail", 1)
            yield lambda: FAIL_BUDGET - int(guest.check(f"cat {DEBUGFS}/fail_make_request/times"))
        finally:
            guest.run(f"echo 0 > {dev.sysfs}/make-it-fail")


def test_writeback_io_failure(guest, pair, record):
    """The backing device fails every bio: writeback says EIO, writes nothing back, loses no
    slot and leaves none marked (idle or under writeback: the next writeback takes them
    all); a written-back page read while the backing device fails is EIO to the reader, and
    reads back whole once it works again."""
    front, unit = pair.front, pair.unit
    _require_failing_bios(guest, pair.backing)
    pair.write(blocks=HUGE_BLOCKS, mix=INCOMPRESSIBLE)
    mm0 = front.mm_stat()
    huge = mm0["huge_pages"]
    assert huge > 0, f"no huge page after writing incompressible blocks: {mm0}"

    with _failing_bios(guest, pair.backing) as failed:
        res = pair.writeback("huge")
        fired = failed()
    record.detail("failed_writeback_bios", fired)
    assert fired == huge, f"{fired} bios failed, one per huge page ({huge}) was due"
    assert res.exit_status != 0 and "input/output error" in res.stderr.lower(), \
        f"writeback whose every bio failed: exit {res.exit_status}, {res.stderr.strip()!r}"
    assert front.bd_stat() == {"bd_count": 0, "bd_reads": 0, "bd_writes": 0}, \
        f"failed writes counted as written back (or a backing block kept): {front.bd_stat()}"
    assert pair.backing.mm_stat()["orig_data_size"] == 0, "a failed bio reached the backing device"
    mm1 = front.mm_stat()
    assert (mm1["huge_pages"], mm1["compr_data_size"], mm1["orig_data_size"]) == \
        (huge, mm0["compr_data_size"], mm0["orig_data_size"]), \
        f"a failed writeback changed what zram holds: {mm0} -> {mm1}"
    # writeback marks its slot idle while the bio is in flight: a failure must take it back
    # (looked at before any read: reading a slot clears its idle mark)
    if guest.exists(front.block_state_path):
        slots = front.block_state()
        assert not with_flags(slots, have="i") and not with_flags(slots, have="w"), \
            "a failed writeback left slots marked idle or written back"
    assert pair.writeback("idle").exit_status == 0
    assert front.bd_stat()["bd_writes"] == 0, \
        "slots the failed writeback huge had marked idle were written back by writeback idle"
    pair.verify("read back after the failed writeback", blocks=HUGE_BLOCKS, mix=INCOMPRESSIBLE)
    res = pair.writeback("huge")
    assert res.exit_status == 0, f"writeback huge after the failure: {res.stderr}"
    assert front.bd_stat()["bd_writes"] == front.bd_stat()["bd_count"] == huge * unit, \
        f"after the failure writeback huge wrote {front.bd_stat()} back, not the {huge} huge pages"

    # a written-back page read while its backing device fails
    page_blocks = pair.page_size // 4096
    reads0 = front.bd_stat()["bd_reads"]
    read_page = zsfill_command("verify", front.path, page_blocks, seed=SEED, mix=INCOMPRESSIBLE,
                               direct=True)
    with _failing_bios(guest, pair.backing) as failed:
        res = guest.run(read_page)
        fired = failed()
    record.detail("failed_read_bios", fired)
    assert fired >= 1, "the read of a written-back page sent no bio to the backing device"
    assert res.exit_status != 0 and "input/output error" in res.stderr.lower(), \
        f"reading a written-back page from a failing backing device: exit " \
        f"{res.exit_status}, {res.stderr.strip()!r}, {res.stdout.strip()!r}"
    assert front.bd_stat()["bd_reads"] > reads0
    check_data_intact(parse_tool_output(guest.run(read_page).stdout),
                      "the page that failed to read, read again", page_blocks)
    pair.verify("read back from the backing device", blocks=HUGE_BLOCKS, mix=INCOMPRESSIBLE)


LEAK_STORES = 2000


def test_writeback_store_frees_its_page(guest, pair, record):
    """Every writeback store allocates a page for its I/O and must free it: LEAK_STORES
    stores of a slot never written (no I/O, one slot scanned) keep far fewer pages than
    the LEAK_STORES one leaked page each would (pgalloc_* - pgfree: exact, per-cpu lists
    included; a clean kernel's drift over the loop is measured in docs/PERFORMANCE.md)."""
    front = pair.front
    empty = DISKSIZE // pair.page_size - 1
    pages = pages_kept(guest.check(page_counter_loop(
        f"{front.sysfs}/writeback", f"page_index={empty}", LEAK_STORES), timeout=600))
    kept = pages["kept"]
    record.detail("stores", LEAK_STORES)
    record.detail("pages", pages)
    assert front.bd_stat() == {"bd_count": 0, "bd_reads": 0, "bd_writes": 0}, \
        f"{LEAK_STORES} writebacks of an empty slot left {front.bd_stat()}"
    assert kept < LEAK_STORES // 2, \
        f"{LEAK_STORES} writeback stores kept {kept} pages (one each would be {LEAK_STORES})"
