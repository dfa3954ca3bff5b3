"""Swap on zram under memory pressure (issue 5, test 3)."""

import pytest

from zstest.suites.lib.checks import check_data_intact, check_swapped
from zstest.suites.lib.fixtures import guest_tools, require_config, zram  # noqa: F401
from zstest.suites.lib.metrics import take_snapshot
from zstest.suites.lib.tools import parse_tool_output

LIMIT_MB = 48          # the memory cgroup the toucher runs in
TOUCH_MB = 72          # ~1.5x its memory
CGROUP = "/sys/fs/cgroup"
GROUP = f"{CGROUP}/zstest-swap"


def _memory_cgroup(guest):
    guest.run(f"grep -q ' {CGROUP} cgroup2' /proc/mounts || mount -t cgroup2 none {CGROUP}")
    if "memory" not in guest.run(f"cat {CGROUP}/cgroup.controllers").stdout.split():
        pytest.skip("the cgroup2 memory controller is not available")
    guest.check(f"echo +memory > {CGROUP}/cgroup.subtree_control")
    guest.check(f"mkdir -p {GROUP} && echo {LIMIT_MB}M > {GROUP}/memory.max")


def test_swap_under_pressure(guest, guest_tools, zram, kernel_config, record):
    require_config(kernel_config, "CONFIG_SWAP", "CONFIG_MEMCG")
    _memory_cgroup(guest)
    zram.setup(128 << 20)
    guest.check(f"mkswap {zram.path} && swapon {zram.path}")
    try:
        before = take_snapshot(guest, zram.sysfs)
        run = guest.run(f"sh -c 'echo $$ > {GROUP}/cgroup.procs && "
                        f"exec memtouch --mb {TOUCH_MB} --passes 2'", timeout=600)
        after = take_snapshot(guest, zram.sysfs)
        peak = guest.run(f"cat {GROUP}/memory.peak 2>/dev/null").stdout.strip()
    finally:
        guest.run(f"swapoff {zram.path}")
        guest.run(f"rmdir {GROUP}")
    record.metric(before=before, after=after)
    report = parse_tool_output(run.stdout, "memtouch")
    verified = check_data_intact(report, "memtouch after swap-in")
    swapped = check_swapped(before["vmstat"], after["vmstat"])
    record.detail("bytes_verified", verified)
    record.detail("pages_touched", report.int("pages"))
    record.detail("swap", swapped)
    record.detail("cgroup_limit_mb", LIMIT_MB)
    if peak:
        record.detail("cgroup_memory_peak", int(peak))
