"""zram's idle marking (issue 28, part 2): `idle all`, access clearing it, and
`idle <seconds>` marking only the slots not accessed for that long.

Checked slot by slot in debugfs' block_state (CONFIG_ZRAM_MEMORY_TRACKING), whose access
times are on the same clock as /proc/uptime (boot time), so the test proves its own
precondition: the cutoff the kernel used lies between the old and the new slots.
"""

import time

import pytest

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fixtures import guest_tools, zram  # noqa: F401  (fixtures)
from zstest.suites.lib.tools import parse_tool_output, zsfill_command
from zstest.suites.lib.zram_state import with_flags

BLOCKS = 512
DISKSIZE = 8 << 20
GAP_S = 3              # between the old and the new writes; the cutoff is computed in the guest


def _slots(blocks_from, blocks_to, page_size):
    per = max(1, page_size // 4096)
    return set(range(blocks_from // per, blocks_to // per))


def _write(guest, dev, blocks, seed, start=0):
    check_data_intact(parse_tool_output(guest.check(
        zsfill_command("write", dev.path, blocks, seed=seed, start=start))), "write", blocks)


def _require_block_state(guest, dev):
    if not guest.exists(dev.block_state_path):
        pytest.skip(f"no {dev.block_state_path}: the kernel lacks CONFIG_ZRAM_MEMORY_TRACKING "
                    f"(or debugfs)")


def _same_filled_marked(slots) -> bool:
    """Same-filled slots are marked idle by 6.1 and skipped since 6.12 (nothing post-processes
    them): either way all alike, never some of them."""
    same = with_flags(slots, have="s")
    marked = with_flags(slots, have="si")
    assert not marked or marked == same, \
        f"`idle all` marked {len(marked)} of {len(same)} same-filled slots"
    return bool(same) and marked == same


def test_idle_all_then_access(guest, guest_tools, zram, record, page_size):
    zram.setup(DISKSIZE)
    _write(guest, zram, BLOCKS, seed=41)
    _require_block_state(guest, zram)
    assert not with_flags(zram.block_state(), have="i"), "slots idle before any marking"
    zram.set("idle", "all")
    slots = zram.block_state()
    stored = with_flags(slots, lack="s")
    assert stored and with_flags(slots, have="i", lack="s") == stored, \
        f"`idle all` left {len(with_flags(slots, lack='is'))} of {len(stored)} stored slots unmarked"
    same_marked = _same_filled_marked(slots)
    check_data_intact(parse_tool_output(guest.run(zsfill_command(
        "verify", zram.path, BLOCKS // 2, seed=41)).stdout), "read half", BLOCKS // 2)
    after = zram.block_state()
    read = _slots(0, BLOCKS // 2, page_size)
    assert set(with_flags(after, have="i")) == set(with_flags(slots, have="i")) - read, \
        "reading a slot did not clear its idle flag, or cleared another's"
    record.detail("slots_marked", len(with_flags(slots, have="i")))
    record.detail("same_filled_marked", same_marked)
    record.detail("slots_read_after", len(read & set(after)))


def test_idle_seconds_marks_only_old_slots(guest, guest_tools, zram, record, page_size):
    zram.setup(DISKSIZE)
    half = BLOCKS // 2
    _write(guest, zram, half, seed=42)
    _require_block_state(guest, zram)
    time.sleep(GAP_S)
    _write(guest, zram, half, seed=43, start=half)
    old, new = _slots(0, half, page_size), _slots(half, BLOCKS, page_size)
    slots = zram.block_state()
    newest_old = max(slots[i].ac_time for i in old if i in slots)
    oldest_new = min(slots[i].ac_time for i in new if i in slots)
    record.detail("access_gap_s", round(oldest_new - newest_old, 3))
    assert oldest_new - newest_old > GAP_S / 2, \
        f"precondition: the new slots were written {oldest_new - newest_old:.2f} s after the old"
    middle = (newest_old + oldest_new) / 2
    # the age is computed in the guest, next to the store: no SSH round trip in between
    out = guest.run(
        f"read up _ < /proc/uptime; "
        f"age=$(awk -v up=$up 'BEGIN {{ a = int(up - {middle:.3f} + 0.5); print (a < 1 ? 1 : a) }}'); "
        f"echo $age > {zram.sysfs}/idle; rc=$?; read up2 _ < /proc/uptime; "
        f"echo \"age=$age rc=$rc before=$up after=$up2\"")
    facts = dict(kv.split("=") for kv in out.stdout.split() if "=" in kv)
    if facts.get("rc") != "0":
        pytest.skip(f"this kernel's zram does not take `idle <seconds>` ({out.stderr.strip()})")
    age = int(facts["age"])
    cutoff = (float(facts["before"]) - age, float(facts["after"]) - age)
    record.detail("idle_age_s", age)
    record.detail("cutoff_between", cutoff)
    # the kernel's cutoff is (time of the store - age): prove it falls between the two sets
    assert newest_old < cutoff[0] and cutoff[1] <= oldest_new, \
        f"precondition: cutoff {cutoff} not between the old slots (to {newest_old}) and the " \
        f"new (from {oldest_new})"
    marked = zram.block_state()
    idle = set(with_flags(marked, have="i"))
    old_stored = old & set(with_flags(marked, lack="s"))
    assert old_stored <= idle, \
        f"{len(old_stored - idle)} slots older than the cutoff were not marked idle"
    record.detail("same_filled_marked", _same_filled_marked(
        {i: s for i, s in marked.items() if i in old}))
    assert not (new & idle), \
        f"{len(new & idle)} slots accessed after the cutoff were marked idle"
    record.detail("old_slots_marked", len(old & idle))
    record.detail("new_slots_left", len(new & set(marked)))
