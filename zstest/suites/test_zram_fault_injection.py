"""Allocation failures in zram and in zsmalloc migration (issue 28, part 7).

The kernel's fault injection is armed for one task only, so nothing else in the guest
fails: the disksize store fails at every allocation in turn (the shell's own fail-nth),
a writer's page allocations fail (fail_page_alloc with task-filter and its make-it-fail), and the
task that offlines memory fails its migration target allocations (fail_page_alloc), which
puts the isolated zspages back (zs_page_putback). Every knob is restored afterwards.
"""

import re

import pytest

from zstest.suites.lib.checks import check_data_intact, check_zspages_in_movable
from zstest.suites.lib.fault_inject import FaultKnobs, assert_enomem, parse_fail_nth_log
from zstest.suites.lib.fixtures import guest_tools, require_config, zram  # noqa: F401
from zstest.suites.lib.memory_blocks import list_memory_blocks
from zstest.suites.lib.metrics import take_snapshot
from zstest.suites.lib.tools import parse_tool_output, zsfill_command
from zstest.suites.lib.zram import ZramDevice, ensure_zram_control
from zstest.suites.lib.zram_state import units_per_page

DISKSIZE = 16 << 20
MAX_TRIES = 4000
BLOCKS = 512
FILL_BLOCKS = 2048     # 8 MiB: zspages land in ZONE_MOVABLE first (asserted)
OFFLINE_TIMEOUT_S = 240
WRITE_ATTEMPTS = 4
ZSFILL_CHUNK_BLOCKS = 64   # zsfill writes this many blocks per request (zsfill.c CHUNK_BLOCKS)


def _sweep_script(sysfs: str) -> str:
    """Store disksize with the n-th allocation of the storing shell failing, n = 1, 2, ...
    until an attempt never reaches its n-th allocation. The sysfs file is opened before
    fail-nth is armed, so the count starts at the write itself."""
    return f"""d={sysfs}; n=0
while [ $n -lt {MAX_TRIES} ]; do
  n=$((n + 1)); fired=0
  exec 3> $d/disksize
  echo $n > /proc/self/fail-nth
  if echo {DISKSIZE} >&3; then ok=1; else ok=0; fired=1; fi
  if [ $ok = 1 ]; then
    if read left < /proc/self/fail-nth; then [ "$left" = 0 ] && fired=1; fi
  fi
  echo 0 > /proc/self/fail-nth
  exec 3>&-
  read init < $d/initstate; read size < $d/disksize
  echo "try=$n ok=$ok fired=$fired init=$init size=$size"
  [ $ok = 1 ] && [ $fired = 0 ] && break
  [ $ok = 1 ] && echo 1 > $d/reset
done 2>/dev/null"""


def test_disksize_allocation_failures(guest, guest_tools, record):
    ensure_zram_control(guest)
    if not guest.exists("/proc/self/fail-nth"):
        pytest.skip("no /proc/self/fail-nth: the kernel lacks CONFIG_FAULT_INJECTION")
    with FaultKnobs(guest) as knobs, ZramDevice.add(guest) as dev:
        knobs.require("failslab", "fail_page_alloc")
        # probability stays 0: only this shell's fail-nth makes anything fail
        knobs.let_fail("failslab", "fail_page_alloc")
        out = guest.run(_sweep_script(dev.sysfs), timeout=900)
        knobs.restore()
        sweep = parse_fail_nth_log(out.stdout)
        record.detail("sweep", sweep)
        assert sweep["exhausted_at"] > 0, \
            f"the disksize store still reached a failing allocation after {sweep['attempts']} tries"
        assert sweep["failed"] >= 2, \
            f"only {sweep['failed']} injected failures made the disksize store fail"
        assert not sweep["dirty"], \
            f"a failed disksize store left the device initialised at tries {sweep['dirty']}"
        assert int(dev.attr("disksize")) == DISKSIZE
        check_data_intact(parse_tool_output(guest.check(
            zsfill_command("write", dev.path, BLOCKS, seed=90))), "write after the sweep", BLOCKS)
        check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", dev.path, BLOCKS, seed=90)).stdout), "read after the sweep", BLOCKS)


def _armed_writer_script(dev, stop: str, out: str) -> str:
    """A writer looping over the blocks; once it is inside its loop, its make-it-fail is
    set; then wait (bounded) for it to end by an error."""
    write = zsfill_command("write", dev.path, BLOCKS, seed=91, mix=(1, 0, 0))
    return (f"rm -f {stop}; {write} --until {stop} > {out} 2>&1 & pid=$!; "
            f"i=0; while [ $i -lt 100 ] && ! ls -l /proc/$pid/fd 2>/dev/null | grep -q zram; "
            f"do sleep 0.05; i=$((i + 1)); done; sleep 0.3; "
            f"echo 1 > /proc/$pid/make-it-fail; "
            f"i=0; while [ $i -lt 100 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; i=$((i + 1)); done; "
            f"touch {stop}; wait $pid; echo rc=$?; cat {out}")


def test_write_allocation_failures(guest, guest_tools, zram, record):
    zram.setup(DISKSIZE)
    check_data_intact(parse_tool_output(guest.check(zsfill_command(
        "write", zram.path, BLOCKS, seed=91, mix=(1, 0, 0)))), "prefill", BLOCKS)
    failed_before = zram.io_stat()["failed_writes"]
    attempts = []
    with FaultKnobs(guest) as knobs:
        knobs.require("fail_page_alloc")
        # page allocations: zsmalloc's new zspages; the direct-I/O path's bios come from
        # mempools, which absorb their failures
        knobs.let_fail("fail_page_alloc")
        knobs.set("fail_page_alloc", task_filter="Y", interval=1, space=0, probability=100)
        for _ in range(WRITE_ATTEMPTS):   # bounded: until a failure reaches zram
            knobs.set("fail_page_alloc", times=64)
            out = guest.run(_armed_writer_script(zram, "/tmp/fi-write.stop", "/tmp/fi-write.out"))
            left = int(guest.check("cat /sys/kernel/debug/fail_page_alloc/times").strip())
            failed = zram.io_stat()["failed_writes"] - failed_before
            attempts.append({"injected": 64 - left, "failed_writes": failed})
            if failed:
                break
    record.detail("attempts", attempts)
    report = parse_tool_output(out.stdout)
    assert failed >= 1, f"in {len(attempts)} attempts no injected failure reached zram: {attempts}"
    assert report is not None and report.values.get("status") == "error" and "rc=2" in out.stdout, \
        f"the writer whose allocations failed did not get an error:\n{out.stdout}\n{out.stderr}"
    # Blocks outside the failed request keep their data. Inside it the content is undefined
    # (the writer got EIO); 6.1 even writes the rest of a failed bio one page early (its
    # bio loop skips the position update after an error; gone with 6.4's rework): counted.
    m = re.search(r"write at block (\d+)", out.stdout)
    assert m, f"the writer did not say where its write failed:\n{out.stdout}"
    first = int(m.group(1))
    last = min(first + ZSFILL_CHUNK_BLOCKS, BLOCKS)
    record.detail("failed_request_blocks", [first, last])
    for start, count in ((0, first), (last, BLOCKS - last)):
        if count:
            check_data_intact(parse_tool_output(guest.run(zsfill_command(
                "verify", zram.path, count, start=start, seed=91, mix=(1, 0, 0))).stdout),
                f"blocks {start}..{start + count - 1}, outside the failed request", count)
    inside = parse_tool_output(guest.run(zsfill_command(
        "verify", zram.path, last - first, start=first, seed=91, mix=(1, 0, 0))).stdout)
    record.detail("blocks_changed_in_failed_request", inside.int("bad") if inside else None)
    check_data_intact(parse_tool_output(guest.check(
        zsfill_command("write", zram.path, BLOCKS, seed=92))), "write after", BLOCKS)
    check_data_intact(parse_tool_output(guest.run(zsfill_command(
        "verify", zram.path, BLOCKS, seed=92)).stdout), "read after", BLOCKS)


def test_writeback_allocation_failure(guest, guest_tools, record, page_size):
    """writeback's one page allocation fails: ENOMEM to the writer, nothing written back,
    and the next writeback works (a writeback that ignored the failure used a NULL page)."""
    ensure_zram_control(guest)
    with ZramDevice.add(guest) as backing, ZramDevice.add(guest) as front, \
            FaultKnobs(guest) as knobs:
        if not front.has("backing_dev"):
            pytest.skip("this kernel's zram has no backing_dev attribute (CONFIG_ZRAM_WRITEBACK off)")
        knobs.require("fail_page_alloc")
        backing.setup(DISKSIZE)
        front.set("backing_dev", backing.path)
        front.setup(DISKSIZE)
        incompressible = (0, 1, 0)
        check_data_intact(parse_tool_output(guest.check(zsfill_command(
            "write", front.path, BLOCKS, seed=94, mix=incompressible))), "write", BLOCKS)
        huge = front.mm_stat()["huge_pages"]
        assert huge > 0, "precondition: huge pages to write back"
        res = knobs.store_with_its_allocation_failing(f"{front.sysfs}/writeback", "huge")
        record.detail("writeback_stderr", res.stderr.strip())
        assert_enomem(res, "writeback")
        assert front.bd_stat()["bd_writes"] == 0, "pages were written back after ENOMEM"
        assert front.try_set("writeback", "huge").exit_status == 0
        assert front.bd_stat()["bd_writes"] == huge * units_per_page(page_size), \
            "writeback after the failure did not write back every huge page"
        check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", front.path, BLOCKS, seed=94, mix=incompressible)).stdout),
            "read back after the failed and the good writeback", BLOCKS)


def _offline_armed(guest, block: str):
    """Offline a block from a shell whose page allocations fail (make-it-fail)."""
    return guest.run(f"exec 3> /sys/devices/system/memory/{block}/state; "
                     f"echo 1 > /proc/self/make-it-fail; "
                     f"echo offline >&3; echo rc=$?",
                     timeout=OFFLINE_TIMEOUT_S + 30)


def test_migration_failure_puts_zspages_back(guest, guest_tools, kernel_config, record):
    require_config(kernel_config, "CONFIG_MEMORY_HOTREMOVE", "CONFIG_MIGRATION")
    ensure_zram_control(guest)
    _, blocks = list_memory_blocks(guest)
    movable = [b.name for b in blocks if b.movable]
    if not movable:
        pytest.skip("no online movable memory block (no hot-pluggable memory in this guest)")
    dev = ZramDevice.add(guest)
    with dev, FaultKnobs(guest) as knobs:
        knobs.require("fail_page_alloc")
        dev.setup(64 << 20)
        guest.check("sync && echo 3 > /proc/sys/vm/drop_caches")
        check_data_intact(parse_tool_output(guest.check(
            zsfill_command("write", dev.path, FILL_BLOCKS, seed=93))), "fill", FILL_BLOCKS)
        before = take_snapshot(guest, dev.sysfs)
        record.detail("zspages_in_movable", check_zspages_in_movable(before["zoneinfo"]))
        knobs.let_fail("fail_page_alloc")
        knobs.set("fail_page_alloc", task_filter="Y", interval=1, space=0, times=16,
                  probability=100)
        results = {}
        try:
            for name in movable:
                knobs.set("fail_page_alloc", times=16)
                res = _offline_armed(guest, name)
                results[name] = res.stdout.strip().split("rc=")[-1]
        finally:
            knobs.restore()
            for name in movable:
                guest.run(f"timeout {OFFLINE_TIMEOUT_S} sh -c 'echo offline > "
                          f"/sys/devices/system/memory/{name}/state' 2>/dev/null",
                          timeout=OFFLINE_TIMEOUT_S + 30)
            after = take_snapshot(guest, dev.sysfs)
            for name in movable:
                guest.run(f"echo online_movable > /sys/devices/system/memory/{name}/state")
        fail_rise = after["vmstat"].get("pgmigrate_fail", 0) - before["vmstat"].get("pgmigrate_fail", 0)
        ok_rise = after["vmstat"].get("pgmigrate_success", 0) - before["vmstat"].get("pgmigrate_success", 0)
        record.detail("offline_exit", results)
        record.detail("pgmigrate_fail_delta", fail_rise)
        record.detail("pgmigrate_success_delta", ok_rise)
        record.metric(before=before, after=after)
        assert fail_rise >= 1, \
            "no migration failed while the offlining task's allocations were failing"
        assert ok_rise >= 1, "nothing was migrated once the allocations succeeded again"
        check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", dev.path, FILL_BLOCKS, seed=93)).stdout), "after failed and retried migration",
            FILL_BLOCKS)
