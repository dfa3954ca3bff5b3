"""The perf suite's helpers: pure parsers of what its workloads print, and a memory cgroup.

Parsers take the text the guest printed (fio's JSON, zsmalloc's debugfs classes file,
memtouch's cycle lines, a cgroup's cpu.stat) and return plain dicts, so they are tested on
recorded real output (tests/data/perf/). Sizes come from PerfSize: "quick" (perf-small, the
project's own tests) and "full" (the perf suite, real measurements).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Dict, List, Optional

import pytest

CGROUP_ROOT = "/sys/fs/cgroup"
ZS_DEBUGFS = "/sys/kernel/debug/zsmalloc"


@dataclass(frozen=True)
class PerfSize:
    """How much each workload moves; the suite's -k picks one by its id."""
    name: str
    fio_mb: int            # per fio job: one region of a raw zram device
    fio_runs: int          # regions, each written fresh and read: the best of them is kept
    swap_mb: int           # anonymous memory swapped out and back
    swap_cycles: int       # the best (fastest) cycle is kept
    fill_mb: int           # zsfill's identical data for the memory metrics
    build_jobs: int        # the build-like workload's short processes
    build_job_mb: int
    build_limit_mb: int    # its memory.max: below what its parallel jobs touch


# Sized for a 2-vCPU TCG guest: quick ~20 s of guest time in all, full ~2 min.
QUICK = PerfSize("quick", fio_mb=8, fio_runs=5, swap_mb=16, swap_cycles=4, fill_mb=32,
                 build_jobs=4, build_job_mb=8, build_limit_mb=12)
FULL = PerfSize("full", fio_mb=32, fio_runs=5, swap_mb=64, swap_cycles=5, fill_mb=128,
                build_jobs=12, build_job_mb=16, build_limit_mb=24)
SIZES = [pytest.param(QUICK, id="quick"), pytest.param(FULL, id="full")]

# The same data on every run and revision: fio's generators and zsfill/memtouch are seeded.
FIO_SEED = 1729
FILL_SEED = 27
FILL_MIX = (6, 2, 2)       # compressible : incompressible : same-filled
SWAP_SEED = 31
BUILD_SEED = 1000
PARALLEL = 2               # the build-like workload's -j: the guest's vCPUs


# -- fio --------------------------------------------------------------------------------
def fio_command(device: str, size_mb: int, jobs: List[str], *, regions: int = 1,
                bs: str = "64k", compress_pct: int = 50) -> str:
    """One fio run on a raw device: for each region of size_mb (one after another), the
    named jobs ("write", "read", "randread") one after another (stonewall), named
    "JOB.REGION"; writes land on never-written space, with fresh, scrambled, partly
    compressible buffers. One fio start-up for all (seconds under TCG)."""
    argv = ["fio", "--output-format=json", f"--filename={device}", "--direct=1",
            "--ioengine=psync", f"--bs={bs}", f"--size={size_mb}M", "--refill_buffers",
            "--scramble_buffers=1", f"--buffer_compress_percentage={compress_pct}",
            "--buffer_compress_chunk=4k", "--randrepeat=1", f"--randseed={FIO_SEED}",
            "--group_reporting=0"]
    for region in range(regions):
        for job in jobs:
            rw = {"write": "write", "read": "read", "randread": "randread"}[job]
            argv += [f"--name={job}.{region}", f"--rw={rw}", f"--offset={region * size_mb}M",
                     "--stonewall"]
            if job == "randread":
                argv.append("--bs=4k")
    return shlex.join(argv)


def parse_fio_json(text: str) -> Dict[str, Dict[str, float]]:
    """fio's --output-format=json (warnings may precede it) -> job name -> its direction's
    {"bw_kib": KiB/s, "iops": ..., "runtime_ms": ..., "io_kib": ...}."""
    start = text.find("{")
    if start < 0:
        raise ValueError("fio printed no JSON")
    data = json.loads(text[start:])
    jobs: Dict[str, Dict[str, float]] = {}
    for job in data.get("jobs", []):
        direction = "write" if job.get("job options", {}).get("rw", "").endswith("write") \
            else "read"
        side = job.get(direction, {})
        jobs[job["jobname"]] = {"bw_kib": float(side.get("bw", 0)),
                                "iops": float(side.get("iops", 0)),
                                "runtime_ms": float(side.get("runtime", 0)),
                                "io_kib": float(side.get("io_kbytes", 0)),
                                "errors": float(job.get("error", 0))}
    return jobs


# -- zsmalloc's debugfs classes file ----------------------------------------------------
def classes_path(pool: str) -> str:
    return f"{ZS_DEBUGFS}/{pool}/classes"


def parse_classes_total(text: str) -> Dict[str, int]:
    """The "Total" row of /sys/kernel/debug/zsmalloc/<pool>/classes, named by the header.

    6.1 has almost_full/almost_empty columns, 6.12 fullness columns (10%..100%): the Total
    row leaves out class, size and pages_per_zspage, and holds the others in order.
    """
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0][:2] != ["class", "size"]:
        raise ValueError("not a zsmalloc classes file (no 'class size' header)")
    names = [n for n in lines[0] if n not in ("class", "size", "pages_per_zspage")]
    totals = [ln for ln in lines if ln[0] == "Total"]
    if not totals:
        raise ValueError("the zsmalloc classes file has no Total row")
    values = [int(v) for v in totals[-1][1:]]
    if len(values) != len(names):
        raise ValueError(f"the Total row has {len(values)} values for {len(names)} columns")
    return dict(zip(names, values))


# -- memtouch's swap cycles -------------------------------------------------------------
def parse_swap_cycles(text: str) -> List[Dict[str, object]]:
    """memtouch --reclaim's "stat cycle=N ..." and "cycle n=N ..." lines, one dict per
    cycle: swapout_seconds, swapin_seconds, reclaim ("ok"/"short") and stat (the text)."""
    cycles: Dict[int, Dict[str, object]] = {}
    for line in text.splitlines():
        m = re.match(r"stat cycle=(\d+) (.*)$", line)
        if m:
            cycles.setdefault(int(m.group(1)), {})["stat"] = m.group(2).strip()
            continue
        m = re.match(r"cycle n=(\d+) (.*)$", line)
        if m:
            entry = cycles.setdefault(int(m.group(1)), {})
            for key, value in re.findall(r"(\w+)=(\S+)", m.group(2)):
                entry[key] = float(value) if key.endswith("_seconds") else value
    return [cycles[n] for n in sorted(cycles)]


# -- cgroup v2 --------------------------------------------------------------------------
def parse_cpu_stat(text: str) -> Dict[str, int]:
    """A cgroup's cpu.stat: usage_usec, user_usec, system_usec, ..."""
    out: Dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


class MemoryCgroup:
    """A cgroup v2 group with the memory controller; removed on exit."""

    def __init__(self, guest, name: str):
        self.guest = guest
        self.path = f"{CGROUP_ROOT}/{name}"

    @classmethod
    def create(cls, guest, name: str, kernel_config: Optional[Dict[str, str]] = None
               ) -> "MemoryCgroup":
        if kernel_config and kernel_config.get("CONFIG_MEMCG") != "y":
            pytest.skip("the kernel lacks CONFIG_MEMCG (no memory cgroup)")
        guest.run(f"grep -q ' {CGROUP_ROOT} cgroup2' /proc/mounts || "
                  f"mount -t cgroup2 none {CGROUP_ROOT}")
        controllers = guest.run(f"cat {CGROUP_ROOT}/cgroup.controllers").stdout.split()
        if "memory" not in controllers:
            pytest.skip("the cgroup v2 memory controller is not available")
        guest.check(f"echo +memory > {CGROUP_ROOT}/cgroup.subtree_control")
        group = cls(guest, name)
        guest.run(f"rmdir {group.path} 2>/dev/null")
        guest.check(f"mkdir {group.path}")
        return group

    def has(self, name: str) -> bool:
        return self.guest.exists(f"{self.path}/{name}")

    def set(self, name: str, value) -> None:
        self.guest.check(f"echo {value} > {self.path}/{name}")

    def run_inside(self, cmd: str) -> str:
        """A shell command line that runs cmd as a member of this group."""
        return f"sh -c {shlex.quote(f'echo $$ > {self.path}/cgroup.procs && {cmd}')}"

    def __enter__(self) -> "MemoryCgroup":
        return self

    def __exit__(self, *exc) -> None:
        self.guest.run(f"rmdir {self.path}")


def swap_on(guest, zram, size_bytes: int) -> None:
    zram.setup(size_bytes)
    guest.check(f"mkswap {zram.path} >/dev/null && swapon {zram.path}")


def other_swap_off(guest, keep: str) -> None:
    """Only the zram under test swaps: anything else active is switched off."""
    for line in guest.read("/proc/swaps").splitlines()[1:]:
        dev = line.split()[0]
        if dev != keep:
            guest.run(f"swapoff {dev}")
