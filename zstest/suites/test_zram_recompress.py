"""zram recompression with a secondary algorithm (issue 28, part 3; Linux 6.2+ with
CONFIG_ZRAM_MULTI_COMP): `recompress type=huge` visits the huge slots, `recompress
threshold=N` moves objects to smaller size classes (compr_data_size falls, block_state
marks them 'r'); data reads back; reset after recompression setup, twice (a 2024 leak).
"""

import pytest

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fixtures import guest_tools  # noqa: F401  (fixture)
from zstest.suites.lib.tools import parse_tool_output, zsfill_command
from zstest.suites.lib.zram import ZramDevice, ensure_zram_control
from zstest.suites.lib.zram_state import with_flags

BLOCKS = 1024
HUGE_BLOCKS = 256
DISKSIZE = 8 << 20
# the secondary should compress better than the primary: the first pair the kernel offers
PAIRS = [("lzo-rle", "zstd"), ("lzo", "zstd"), ("lz4", "zstd"), ("lzo-rle", "deflate"),
         ("lzo", "deflate"), ("lz4", "lz4hc"), ("lzo", "842")]


def _pair(offered):
    for primary, secondary in PAIRS:
        if primary in offered and secondary in offered:
            return primary, secondary
    return None


def _configure(dev, primary, secondary):
    dev.set("comp_algorithm", primary)
    dev.set("recomp_algorithm", f"algo={secondary}")
    dev.set("disksize", DISKSIZE)


def _write(guest, dev):
    """The mix, then incompressible blocks: huge pages on any page size."""
    for blocks, start, mix in ((BLOCKS, 0, (5, 3, 2)), (HUGE_BLOCKS, BLOCKS, (0, 1, 0))):
        check_data_intact(parse_tool_output(guest.check(zsfill_command(
            "write", dev.path, blocks, seed=101, start=start, mix=mix))), "write", blocks)


def _verify(guest, dev, what):
    for blocks, start, mix in ((BLOCKS, 0, (5, 3, 2)), (HUGE_BLOCKS, BLOCKS, (0, 1, 0))):
        check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", dev.path, blocks, seed=101, start=start, mix=mix)).stdout), what, blocks)


def test_recompress_huge_and_threshold(guest, guest_tools, record):
    ensure_zram_control(guest)
    with ZramDevice.add(guest) as dev:
        if not dev.has("recomp_algorithm"):
            pytest.skip("no recomp_algorithm attribute: recompression needs Linux 6.2+ "
                        "with CONFIG_ZRAM_MULTI_COMP")
        offered = dev.algorithms()
        pair = _pair(offered)
        if pair is None:
            pytest.skip(f"no primary/secondary pair among the offered algorithms {offered}")
        primary, secondary = pair
        record.detail("algorithms", {"primary": primary, "secondary": secondary})
        _configure(dev, primary, secondary)
        assert secondary in dev.attr("recomp_algorithm")
        _write(guest, dev)
        tracked = guest.exists(dev.block_state_path)
        mm0 = dev.mm_stat()
        assert mm0["huge_pages"] > 0, f"precondition: huge pages were written: {mm0}"

        res = dev.try_set("recompress", "type=huge")
        assert res.exit_status == 0, f"recompress type=huge failed: {res.stderr}"
        if tracked:
            slots = dev.block_state()
            # a huge slot recompressed is no longer huge ('r'); one that stays huge is 'n'
            visited = len(with_flags(slots, have="n")) + len(with_flags(slots, have="r"))
            record.detail("huge_slots_visited", visited)
            assert visited, "recompress type=huge marked no huge slot recompressed or incompressible"
        _verify(guest, dev, "after type=huge")

        mm1 = dev.mm_stat()
        res = dev.try_set("recompress", "threshold=64")
        assert res.exit_status == 0, f"recompress threshold=64 failed: {res.stderr}"
        mm2 = dev.mm_stat()
        record.metric(mm_stat_before=mm1, mm_stat_after=mm2)
        record.detail("compr_data_size_saved", mm1["compr_data_size"] - mm2["compr_data_size"])
        assert mm2["compr_data_size"] < mm1["compr_data_size"], \
            f"recompressing with {secondary} saved nothing: {mm1['compr_data_size']} -> " \
            f"{mm2['compr_data_size']}"
        assert mm2["orig_data_size"] == mm1["orig_data_size"]
        if tracked:
            recompressed = with_flags(dev.block_state(), have="r")
            record.detail("slots_recompressed", len(recompressed))
            assert recompressed, "block_state marks no slot recompressed"
        _verify(guest, dev, "after recompression")

        # reset after recompression setup, then set up and reset once more
        dev.set("reset", 1)
        assert int(dev.attr("disksize")) == 0
        _configure(dev, primary, secondary)
        dev.set("reset", 1)
