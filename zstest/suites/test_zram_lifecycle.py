"""zram device lifecycle per compression algorithm (issue 5, test 1; every algorithm zram
can offer, issue 28): each one the kernel does not offer is skipped with the list it offers."""

import pytest

from zstest.suites.lib.checks import check_data_intact, check_mm_stat_sane
from zstest.suites.lib.fixtures import guest_tools, zram  # noqa: F401  (fixtures)
from zstest.suites.lib.metrics import take_snapshot
from zstest.suites.lib.tools import expected_same_pages, parse_tool_output, zsfill_command
from zstest.suites.lib.zram import CONTROL, ZramDevice, ensure_zram_control, selected_algorithm

ALGORITHMS = ["lzo", "lzo-rle", "lz4", "lz4hc", "zstd", "deflate", "842"]
BLOCKS = 1024          # 4 MiB of mixed data: seven algorithms in the default suite
DISKSIZE = 16 << 20


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_lifecycle(guest, guest_tools, record, algorithm, page_size):
    ensure_zram_control(guest)
    dev = ZramDevice.add(guest)
    with dev:
        offered = dev.algorithms()
        record.detail("algorithms_offered", offered)
        if algorithm not in offered:
            pytest.skip(f"{algorithm} is not offered by this kernel's zram ({' '.join(offered)})")
        dev.setup(DISKSIZE, algorithm)
        assert selected_algorithm(dev.attr("comp_algorithm")) == algorithm
        assert int(dev.attr("disksize")) == DISKSIZE
        before = take_snapshot(guest, dev.sysfs)

        wrote = parse_tool_output(guest.check(zsfill_command("write", dev.path, BLOCKS, seed=11)))
        check_data_intact(wrote, "write", BLOCKS)
        read = parse_tool_output(guest.run(zsfill_command("verify", dev.path, BLOCKS, seed=11)).stdout)
        verified = check_data_intact(read, f"{algorithm}: read back", BLOCKS)
        after = take_snapshot(guest, dev.sysfs)
        record.metric(before=before, after=after)
        kinds = {k: wrote.int(k) for k in ("compressible", "incompressible", "same")}
        record.detail("blocks_written", kinds)
        record.detail("bytes_verified", verified)
        check_mm_stat_sane(after["mm_stat"], kinds, page_size,
                           expected_same_pages(BLOCKS, 11, page_size=page_size))
        assert after["vmstat"]["nr_zspages"] > before["vmstat"].get("nr_zspages", 0), \
            "nr_zspages did not rise: the data did not reach zsmalloc"

        dev.reset()
        assert int(dev.attr("disksize")) == 0, "disksize is not 0 after reset"
        dev.remove()
    assert not guest.exists(dev.sysfs), f"{dev.sysfs} still exists after hot_remove"
    assert guest.exists(CONTROL)
