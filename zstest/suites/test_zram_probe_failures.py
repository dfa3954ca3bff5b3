"""The failure-probe suite: each test here MUST fail, showing a suite check catches the fault.

Run by the project's tests (`--suite failure-probe`), never by the default suite:
a corrupted zram block, a migration that did not happen, and a kernel splat.
"""

from zstest.suites.lib.checks import check_data_intact, check_migrated
from zstest.suites.lib.fixtures import guest_tools, zram  # noqa: F401  (fixtures)
from zstest.suites.lib.metrics import take_snapshot
from zstest.suites.lib.tools import parse_tool_output, zsfill_command

BLOCKS = 256
CORRUPT_BLOCK = 37


def test_probe_corrupted_block(guest, guest_tools, zram, record):
    zram.setup(4 << 20)
    check_data_intact(parse_tool_output(guest.check(zsfill_command("write", zram.path, BLOCKS))),
                      "fill")
    guest.check(f"dd if=/dev/urandom of={zram.path} bs=4096 seek={CORRUPT_BLOCK} count=1 "
                f"oflag=direct conv=notrunc 2>/dev/null")
    report = parse_tool_output(guest.run(zsfill_command("verify", zram.path, BLOCKS)).stdout)
    record.detail("bad_lines", report.bad_lines if report else None)
    check_data_intact(report, "read back after corrupting one block", BLOCKS)


def test_probe_missing_migration(guest, record):
    before = take_snapshot(guest)
    after = take_snapshot(guest)   # nothing migrates in between
    check_migrated(before["vmstat"], after["vmstat"], at_least=1)


def test_probe_splat(guest):
    # A WARN report in the kernel's own format, written to the kernel log: the console
    # monitor must find it and the plugin must fail this test, whatever it asserted.
    for line in ("------------[ cut here ]------------",
                 "WARNING: CPU: 0 PID: 1 at mm/zsmalloc.c:1 zstest_failure_probe+0x0/0x10",
                 "---[ end trace 0000000000000000 ]---"):
        guest.check(f"echo '<4>{line}' > /dev/kmsg")
