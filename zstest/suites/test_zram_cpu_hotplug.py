"""CPU hotplug under zram I/O (issue 28, part 6): zram's per-CPU compression streams
are set up and torn down by CPU hotplug callbacks while readers and writers keep going
(per-CPU stream races with hotplug were fixed in 2021)."""

import pytest

from zstest.suites.lib.background import BackgroundIO
from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fixtures import guest_tools, zram  # noqa: F401  (fixtures)
from zstest.suites.lib.tools import parse_tool_output, zsfill_command

ROUNDS = 5
BLOCKS = 1024
CPU_TIMEOUT_S = 60


def _hotpluggable_cpu(guest) -> str:
    """The highest-numbered CPU with an online switch (CPU 0 usually has none)."""
    out = guest.run("ls -d /sys/devices/system/cpu/cpu[0-9]*/online 2>/dev/null").stdout.split()
    cpus = sorted((int(p.split("/")[-2][3:]), p) for p in out)
    cpus = [c for c in cpus if c[0] != 0]
    return cpus[-1][1] if cpus else ""


def test_cpu_hotplug_under_io(guest, guest_tools, zram, record):
    online = _hotpluggable_cpu(guest)
    if not online:
        ncpu = guest.run("nproc").stdout.strip()
        pytest.skip(f"no hot-pluggable CPU besides CPU 0 (the guest has {ncpu} CPU(s); "
                    f"CONFIG_HOTPLUG_CPU may be off)")
    record.detail("cpu", online.split("/")[-2])
    zram.setup(32 << 20)
    check_data_intact(parse_tool_output(guest.check(
        zsfill_command("write", zram.path, BLOCKS, seed=81))), "fill", BLOCKS)
    io = BackgroundIO(guest, "cpuhp-io")
    io.start(zsfill_command("verify", zram.path, BLOCKS, seed=81))
    io.start(zsfill_command("write", zram.path, BLOCKS, start=BLOCKS, seed=82))
    toggles = []
    try:
        for _ in range(ROUNDS):
            for state in (0, 1):
                res = guest.run(f"timeout {CPU_TIMEOUT_S} sh -c 'echo {state} > {online}'",
                                timeout=CPU_TIMEOUT_S + 30)
                toggles.append(res.exit_status)
    finally:
        reader, writer = io.stop()
        guest.run(f"echo 1 > {online}")
    record.detail("toggles", len(toggles))
    record.detail("io_passes", {"reader": reader.int("passes") if reader else 0,
                                "writer": writer.int("passes") if writer else 0})
    assert toggles and all(rc == 0 for rc in toggles), f"CPU offline/online failed: {toggles}"
    assert guest.check(f"cat {online}").strip() == "1"
    check_data_intact(reader, "reads while CPUs came and went")
    check_data_intact(writer, "writes while CPUs came and went")
    check_data_intact(parse_tool_output(guest.run(zsfill_command(
        "verify", zram.path, BLOCKS, start=BLOCKS, seed=82)).stdout), "written blocks after", BLOCKS)
    check_data_intact(parse_tool_output(guest.run(zsfill_command(
        "verify", zram.path, BLOCKS, seed=81)).stdout), "first blocks after", BLOCKS)
