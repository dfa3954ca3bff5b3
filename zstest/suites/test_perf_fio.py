"""Perf: fio on a raw zram device, scrambled partly compressible buffers (issue 27).

Throughput of sequential write, sequential read and 4k random read, MiB/s (higher is
better). The device is written and read in several regions, each once, one after another;
the best region's figure is kept: under TCG on a shared host, other load only ever slows a
run down, so the best of a few is the steadiest estimate of what the kernel can do.
"""

import statistics

import pytest

from zstest.suites.lib.fixtures import zram  # noqa: F401  (fixture)
from zstest.suites.lib.perf import SIZES, fio_command, parse_fio_json

JOBS = ("write", "read", "randread")
METRIC = {"write": "fio.seqwrite", "read": "fio.seqread", "randread": "fio.randread"}


@pytest.mark.parametrize("size", SIZES)
def test_fio_raw_zram(guest, zram, record, size):
    if guest.run("command -v fio").exit_status != 0:
        pytest.skip("fio is not in the guest image (the perf suites use initramfs-fio.ini)")
    per_job = {job: [] for job in JOBS}
    total_mb = size.fio_mb * size.fio_runs
    zram.setup(total_mb << 20)
    out = guest.check(fio_command(zram.path, size.fio_mb, list(JOBS), regions=size.fio_runs),
                      timeout=1800)
    jobs = parse_fio_json(out)
    for region in range(size.fio_runs):
        for job in JOBS:
            name = f"{job}.{region}"
            assert name in jobs, f"fio reported no {name!r} job:\n{out[-2000:]}"
            assert not jobs[name]["errors"], f"fio's {name} job failed: {jobs[name]}"
            assert jobs[name]["io_kib"] == size.fio_mb * 1024, \
                f"fio's {name} job moved {jobs[name]['io_kib']} KiB, not {size.fio_mb} MiB"
            per_job[job].append(jobs[name]["bw_kib"] / 1024)
    mm = zram.mm_stat()
    # the proof the data was not same-filled: zsmalloc holds nearly all of it
    assert mm["orig_data_size"] == total_mb << 20, f"fio did not fill the device: {mm}"
    assert mm["same_pages"] * 4096 < mm["orig_data_size"] // 100, \
        f"fio's buffers were same-filled pages (same_pages {mm['same_pages']})"
    assert mm["compr_data_size"] < mm["orig_data_size"], f"fio's data did not compress: {mm}"
    for job in JOBS:
        record.perf(METRIC[job], max(per_job[job]), "MiB/s", "higher")
    record.detail("fio_regions", {METRIC[job]: per_job[job] for job in JOBS})
    record.detail("fio_median", {METRIC[job]: statistics.median(per_job[job]) for job in JOBS})
    record.detail("fio_mm_stat", mm)
    record.detail("fio_compression_ratio", round(mm["orig_data_size"] / mm["compr_data_size"], 3))
