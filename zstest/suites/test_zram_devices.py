"""zram devices coming and going (issue 28, part 5).

hot_add/hot_remove in a loop while another process reads every attribute of every zram
device (CVE-2024-53222 was a NULL dereference in comp_algorithm_show during hot_add);
a device that is open or mounted cannot be removed or reset and loses nothing; reset
while compaction runs on the same device.
"""

import time

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fixtures import guest_tools  # noqa: F401  (fixture)
from zstest.suites.lib.tools import parse_tool_output, zsfill_command
from zstest.suites.lib.zram import CONTROL, ZramDevice, ensure_zram_control

ROUNDS = 16
MAX_BATCHES = 5
BLOCKS = 512
READER_PASSES = "/tmp/zram-attr-reader.passes"
READER_STOP = "/tmp/zram-attr-reader.stop"
READER_DONE = "/tmp/zram-attr-reader.done"
# every readable attribute of every zram device, over and over (write-only ones fail: ignored)
READER = (f"n=0; while [ ! -e {READER_STOP} ]; do "
          f"for f in /sys/block/zram*/* /sys/block/zram*/queue/*; do "
          f"[ -f \"$f\" ] && cat \"$f\" > /dev/null 2>&1; done; "
          f"n=$((n + 1)); echo $n > {READER_PASSES}; done; touch {READER_DONE}")


def _passes(guest) -> int:
    text = guest.run(f"cat {READER_PASSES} 2>/dev/null").stdout.strip()
    return int(text) if text.isdigit() else 0


def _wait(guest, cond, timeout=60.0, step=0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def test_hot_add_remove_while_reading_attributes(guest, guest_tools, record):
    ensure_zram_control(guest)
    devices_before = guest.check("ls -d /sys/block/zram* 2>/dev/null; true").split()
    guest.check(f"rm -f {READER_STOP} {READER_PASSES} {READER_DONE}")
    guest.check(f"setsid sh -c '{READER}' > /dev/null 2>&1 < /dev/null &")
    try:
        assert _wait(guest, lambda: _passes(guest) >= 1), "the attribute reader never finished a pass"
        start = _passes(guest)
        # odd rounds initialise the device before removing it, even rounds leave it empty
        loop = (f"ok=0; for i in $(seq {ROUNDS}); do id=$(cat {CONTROL}/hot_add) || break; "
                f"if [ $((i % 2)) = 1 ]; then echo 8M > /sys/block/zram$id/disksize || break; fi; "
                f"echo $id > {CONTROL}/hot_remove || break; ok=$((ok + 1)); done; echo ok=$ok")
        batches = []
        # bounded: more batches until the reader finished a whole pass while devices came and went
        while len(batches) < MAX_BATCHES and (not batches or _passes(guest) - start < 1):
            batches.append(guest.check(loop, timeout=600).strip())
        end = _passes(guest)
    finally:
        guest.run(f"touch {READER_STOP}")
    record.detail("rounds", ROUNDS * len(batches))
    record.detail("reader_passes_during_loop", end - start)
    assert all(b == f"ok={ROUNDS}" for b in batches), f"hot_add/hot_remove failed: {batches}"
    assert end - start >= 1, \
        f"the attribute reader made no pass during {len(batches)} batches of {ROUNDS} rounds"
    assert _wait(guest, lambda: guest.exists(READER_DONE)), "the attribute reader did not stop"
    after = guest.check("ls -d /sys/block/zram* 2>/dev/null; true").split()
    assert after == devices_before, f"zram devices before {devices_before}, after {after}"


def test_busy_device_not_removed(guest, guest_tools, record):
    ensure_zram_control(guest)
    dev = ZramDevice.add(guest)
    with dev:
        dev.setup(64 << 20)
        check_data_intact(parse_tool_output(guest.check(
            zsfill_command("write", dev.path, BLOCKS, seed=71))), "write", BLOCKS)
        # open: a process holds the device
        stop, ready, gone = "/tmp/zram-hold.stop", "/tmp/zram-hold.ready", "/tmp/zram-hold.gone"
        guest.check(f"rm -f {stop} {ready} {gone}; setsid sh -c 'exec 3< {dev.path}; touch {ready}; "
                    f"while [ ! -e {stop} ]; do sleep 0.2; done; exec 3<&-; touch {gone}' "
                    f"> /dev/null 2>&1 < /dev/null &")
        assert _wait(guest, lambda: guest.exists(ready)), "the holder never opened the device"
        try:
            removed = guest.run(f"echo {dev.id} > {CONTROL}/hot_remove")
            reset = dev.try_set("reset", 1)
        finally:
            guest.check(f"touch {stop}")
        record.detail("remove_open_stderr", removed.stderr.strip())
        assert removed.exit_status != 0 and "busy" in removed.stderr.lower(), \
            f"hot_remove of an open device: exit {removed.exit_status}, {removed.stderr}"
        assert reset.exit_status != 0 and "busy" in reset.stderr.lower(), \
            f"reset of an open device: exit {reset.exit_status}, {reset.stderr}"
        assert guest.exists(dev.sysfs) and int(dev.attr("initstate")) == 1
        check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", dev.path, BLOCKS, seed=71)).stdout), "after refused removal", BLOCKS)
        assert _wait(guest, lambda: guest.exists(gone)), "the holder did not let go"

        # mounted: the filesystem holds the device
        mnt = "/mnt/zram-busy"
        guest.check(f"mkfs.ext4 -q -F {dev.path} && mkdir -p {mnt} && mount {dev.path} {mnt}")
        try:
            check_data_intact(parse_tool_output(guest.check(zsfill_command(
                "write", f"{mnt}/f", BLOCKS, seed=72, direct=False))), "file", BLOCKS)
            guest.check("sync")
            removed = guest.run(f"echo {dev.id} > {CONTROL}/hot_remove")
            reset = dev.try_set("reset", 1)
        finally:
            guest.run(f"umount {mnt}")
        assert removed.exit_status != 0 and "busy" in removed.stderr.lower(), \
            f"hot_remove of a mounted device: exit {removed.exit_status}, {removed.stderr}"
        assert reset.exit_status != 0, "reset of a mounted device succeeded"
        guest.check(f"mount {dev.path} {mnt} && echo 3 > /proc/sys/vm/drop_caches")
        try:
            check_data_intact(parse_tool_output(guest.run(zsfill_command(
                "verify", f"{mnt}/f", BLOCKS, seed=72, direct=False)).stdout),
                "file after refused removal", BLOCKS)
        finally:
            guest.run(f"umount {mnt}")
    assert not guest.exists(dev.sysfs), "the device was not removed once released"


def test_reset_while_compacting(guest, guest_tools, record):
    ensure_zram_control(guest)
    dev = ZramDevice.add(guest)
    count, end = "/tmp/zram-compact.count", "/tmp/zram-compact.end"
    with dev:
        dev.setup(32 << 20)
        for seed, mix, stride in ((73, (8, 1, 1), 1), (74, (0, 0, 1), 2)):
            check_data_intact(parse_tool_output(guest.check(zsfill_command(
                "write", dev.path, 2048, seed=seed, mix=mix, stride=stride,
                phase=stride - 1))), "fill", 0)
        # compact until the device is no longer initialised (compact then says EINVAL)
        guest.check(f"rm -f {count} {end}; setsid sh -c 'n=0; while echo 1 > {dev.sysfs}/compact; "
                    f"do n=$((n + 1)); echo $n > {count}; done; echo $n > {end}' "
                    f"> /dev/null 2>&1 < /dev/null &")
        assert _wait(guest, lambda: guest.exists(count)), "compaction never ran"
        reset = dev.try_set("reset", 1)
        assert reset.exit_status == 0, f"reset during compaction failed: {reset.stderr}"
        assert _wait(guest, lambda: guest.exists(end)), \
            "compaction went on after the reset (compact on an uninitialised device must fail)"
        ran = int(guest.check(f"cat {end}").strip())
        record.detail("compactions_before_reset", ran)
        assert ran >= 1
        assert int(dev.attr("disksize")) == 0 and dev.mm_stat()["orig_data_size"] == 0
        dev.setup(32 << 20)
        check_data_intact(parse_tool_output(guest.check(
            zsfill_command("write", dev.path, BLOCKS, seed=75))), "write after reset", BLOCKS)
        check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", dev.path, BLOCKS, seed=75)).stdout), "read after reset", BLOCKS)
