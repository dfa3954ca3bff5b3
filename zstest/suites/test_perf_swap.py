"""Perf: swap to zram inside a memory cgroup (issue 27).

test_swap_cycles: memtouch fills N MiB of anonymous memory in a cgroup, then M times asks
the kernel to reclaim all of it (the cgroup's memory.reclaim: swap-out to zram, timed) and
touches it back (swap-in, timed), verifying every page each cycle. The fastest cycle's
times are kept (other load on the host only ever slows a cycle down), the mean in details.
test_build_like: many short processes, two at a time (like make -j2), each filling and
verifying memory under a memory.max below what they touch together, so they swap while
they compute; real, user and sys time of the whole run, as a kernel build is reported.
"""

import pytest

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fixtures import guest_tools, require_config, zram  # noqa: F401
from zstest.suites.lib.metrics import parse_mm_stat, parse_vmstat
from zstest.suites.lib.perf import (BUILD_SEED, PARALLEL, SIZES, SWAP_SEED, MemoryCgroup,
                                    other_swap_off, parse_cpu_stat, parse_swap_cycles, swap_on)
from zstest.suites.lib.tools import parse_tool_output


def _vmstat(guest):
    return parse_vmstat(guest.read("/proc/vmstat"))


@pytest.mark.parametrize("size", SIZES)
def test_swap_cycles(guest, guest_tools, zram, kernel_config, record, size):
    require_config(kernel_config, "CONFIG_SWAP", "CONFIG_MEMCG")
    swap_on(guest, zram, 2 * size.swap_mb << 20)
    other_swap_off(guest, zram.path)
    try:
        with MemoryCgroup.create(guest, "zstest-perf-swap", kernel_config) as group:
            if not group.has("memory.reclaim"):
                pytest.skip("the memory cgroup has no memory.reclaim (Linux 5.19 added it)")
            # a bound, not the driver: memory.reclaim makes the swap-out happen, and is timed
            group.set("memory.max", f"{2 * size.swap_mb}M")
            before = _vmstat(guest)
            out = guest.check(group.run_inside(
                f"exec memtouch --mb {size.swap_mb} --seed {SWAP_SEED} --cycles "
                f"{size.swap_cycles} --reclaim {group.path}/memory.reclaim "
                f"--stat {zram.sysfs}/mm_stat"), timeout=1200)
            after = _vmstat(guest)
    finally:
        guest.run(f"swapoff {zram.path}")
    report = parse_tool_output(out, "memtouch")
    check_data_intact(report, "memtouch after its swap cycles")
    cycles = parse_swap_cycles(out)
    assert len(cycles) == size.swap_cycles, f"memtouch reported {len(cycles)} cycles:\n{out}"
    swapped_out = after["pswpout"] - before["pswpout"]
    pages = report.int("pages")
    # the proof it swapped: at least half the touched pages went out per cycle, on average
    assert swapped_out >= pages * size.swap_cycles // 2, \
        f"only {swapped_out} pages swapped out over {size.swap_cycles} cycles of {pages} pages"
    stats = [parse_mm_stat(c["stat"]) for c in cycles]
    ratios = [s["orig_data_size"] / s["compr_data_size"] for s in stats if s.get("compr_data_size")]
    outs, ins = ([c[k] for c in cycles] for k in ("swapout_seconds", "swapin_seconds"))
    record.perf("swap.out_s", min(outs), "s", "lower")
    record.perf("swap.in_s", min(ins), "s", "lower")
    record.detail("swap_mean_s", {"out": sum(outs) / len(outs), "in": sum(ins) / len(ins)})
    if ratios:
        record.perf("swap.compression_ratio", sum(ratios) / len(ratios), "ratio", "higher")
    record.detail("swap_cycles", cycles)
    record.detail("pswpout", swapped_out)
    record.detail("pswpin", after["pswpin"] - before["pswpin"])
    record.detail("reclaim_short", sum(c.get("reclaim") == "short" for c in cycles))


@pytest.mark.parametrize("size", SIZES)
def test_build_like(guest, guest_tools, zram, kernel_config, record, size):
    require_config(kernel_config, "CONFIG_SWAP", "CONFIG_MEMCG")
    swap_on(guest, zram, 4 * size.build_job_mb * PARALLEL << 20)
    other_swap_off(guest, zram.path)
    workers = " ".join(
        f"(for j in $(seq {w} {PARALLEL} {size.build_jobs - 1}); do "
        f"memtouch --mb {size.build_job_mb} --passes 1 --seed $(({BUILD_SEED} + j)); done) &"
        for w in range(PARALLEL))
    try:
        with MemoryCgroup.create(guest, "zstest-perf-build", kernel_config) as group:
            group.set("memory.max", f"{size.build_limit_mb}M")
            before = _vmstat(guest)
            out = guest.check(group.run_inside(
                f"read t0 _ < /proc/uptime; {workers} wait; read t1 _ < /proc/uptime; "
                f"echo elapsed $t0 $t1"), timeout=1800)
            after = _vmstat(guest)
            cpu = parse_cpu_stat(guest.read(f"{group.path}/cpu.stat"))
    finally:
        guest.run(f"swapoff {zram.path}")
    jobs = [ln for ln in out.splitlines() if ln.startswith("memtouch ")]
    assert len(jobs) == size.build_jobs, \
        f"{len(jobs)} of {size.build_jobs} jobs reported (one was killed?):\n{out[-2000:]}"
    for line in jobs:
        check_data_intact(parse_tool_output(line, "memtouch"), "a build-like job")
    swapped_out = after["pswpout"] - before["pswpout"]
    assert swapped_out > 0, "the build-like workload never swapped: memory.max did not bite"
    t0, t1 = (float(v) for v in out.split("elapsed ", 1)[1].split()[:2])
    record.perf("build.real_s", t1 - t0, "s", "lower")
    record.perf("build.user_s", cpu["user_usec"] / 1e6, "s", "lower")
    record.perf("build.sys_s", cpu["system_usec"] / 1e6, "s", "lower")
    record.detail("pswpout", swapped_out)
    record.detail("pswpin", after["pswpin"] - before["pswpin"])
    record.detail("memory_max_mb", size.build_limit_mb)
