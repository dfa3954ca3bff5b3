"""zram recompression with a secondary algorithm (issue 28, part 3; Linux 6.2+ with
CONFIG_ZRAM_MULTI_COMP), and the per-algorithm parameters (6.12+).

`recompress type=huge` visits the huge slots (random data: the secondary cannot shrink them
either, block_state marks them 'n'); `recompress type=idle threshold=N algo=...` recompresses
only slots still idle (the ones read since `idle all` stay as they were) and keeps a result
only below N; `max_pages=M` stops after M attempts; `threshold=N` alone takes the rest.
Each pass moves objects to smaller size classes (compr_data_size falls, block_state marks
them 'r') and every block reads back. Then reset after recompression setup, twice (a 2024
leak). `algorithm_params` refuses what it must and its zstd level changes what is stored.
"""

import pytest

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fixtures import guest_tools  # noqa: F401  (fixture)
from zstest.suites.lib.tools import parse_tool_output, zsfill_command
from zstest.suites.lib.zram import ZramDevice, ensure_zram_control
from zstest.suites.lib.zram_state import with_flags

BLOCKS = 1024
HUGE_BLOCKS = 256
MIX = (5, 3, 2)
DISKSIZE = 8 << 20
MAX_PAGES = 8
# the secondary should compress better than the primary: the first pair the kernel offers
PAIRS = [("lzo-rle", "zstd"), ("lzo", "zstd"), ("lz4", "zstd"), ("lzo-rle", "deflate"),
         ("lzo", "deflate"), ("lz4", "lz4hc"), ("lzo", "842")]
ZSTD_LEVELS = (1, 12)


def _pair(offered):
    for primary, secondary in PAIRS:
        if primary in offered and secondary in offered:
            return primary, secondary
    return None


def _configure(dev, primary, secondary):
    dev.set("comp_algorithm", primary)
    dev.set("recomp_algorithm", f"'algo={secondary} priority=1'")
    dev.set("disksize", DISKSIZE)


def _write(guest, dev):
    """The mix, then incompressible blocks: huge pages on any page size."""
    for blocks, start, mix in ((BLOCKS, 0, MIX), (HUGE_BLOCKS, BLOCKS, (0, 1, 0))):
        check_data_intact(parse_tool_output(guest.check(zsfill_command(
            "write", dev.path, blocks, seed=101, start=start, mix=mix))), "write", blocks)


def _verify(guest, dev, what):
    for blocks, start, mix in ((BLOCKS, 0, MIX), (HUGE_BLOCKS, BLOCKS, (0, 1, 0))):
        check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", dev.path, blocks, seed=101, start=start, mix=mix)).stdout), what, blocks)


def _mean_object(mm, page_size) -> int:
    """Mean compressed size of the stored objects that are neither huge nor same-filled."""
    objects = mm["orig_data_size"] // page_size - mm["same_pages"] - mm["huge_pages"]
    assert objects > 0, f"precondition: compressible pages were stored: {mm}"
    return (mm["compr_data_size"] - mm["huge_pages"] * page_size) // objects


def _recompress(dev, args: str):
    """One pass: (mm_stat before, after, the slots it marked recompressed)."""
    before_r, mm0 = set(with_flags(dev.block_state(), have="r")), dev.mm_stat()
    res = dev.try_set("recompress", f"'{args}'")
    assert res.exit_status == 0, f"recompress {args} failed: {res.stderr}"
    return mm0, dev.mm_stat(), set(with_flags(dev.block_state(), have="r")) - before_r


def _smaller(mm0, mm1, args):
    assert mm1["compr_data_size"] < mm0["compr_data_size"], \
        f"recompress {args} saved nothing: {mm0['compr_data_size']} -> {mm1['compr_data_size']}"
    assert mm1["orig_data_size"] == mm0["orig_data_size"]


def _passes(guest, dev, secondary, threshold, record):
    """type=huge, max_pages, type=idle with a threshold, then threshold alone."""
    huge = set(with_flags(dev.block_state(), have="h"))
    _, _, recompressed = _recompress(dev, "type=huge")
    # a huge slot recompressed is no longer huge ('r'); one no algorithm shrinks is 'n'
    visited = set(with_flags(dev.block_state(), have="n")) | recompressed
    record.detail("huge_slots_visited", len(visited))
    assert visited, "recompress type=huge visited no huge slot"
    assert visited <= huge, f"recompress type=huge visited {len(visited - huge)} slots not huge"
    _verify(guest, dev, "after type=huge")

    mm0, mm1, now = _recompress(dev, f"max_pages={MAX_PAGES}")
    record.detail("max_pages_recompressed", len(now))
    assert 0 < len(now) <= MAX_PAGES, f"max_pages={MAX_PAGES} recompressed {len(now)} slots"

    dev.set("idle", "all")
    check_data_intact(parse_tool_output(guest.run(zsfill_command(
        "verify", dev.path, BLOCKS // 2, seed=101, mix=MIX)).stdout), "read half", BLOCKS // 2)
    idle = set(with_flags(dev.block_state(), have="i"))
    assert idle, "precondition: slots still idle after `idle all` and reading half"
    args = f"type=idle threshold={threshold} algo={secondary}"
    mm0, mm1, now = _recompress(dev, args)
    record.detail("idle_slots", len(idle))
    record.detail("idle_slots_recompressed", len(now))
    assert now, f"recompress {args} recompressed none of the {len(idle)} idle slots"
    assert now <= idle, f"recompress {args} recompressed {len(now - idle)} slots that were not idle"
    _smaller(mm0, mm1, args)
    _verify(guest, dev, "after type=idle")

    mm0, mm1, now = _recompress(dev, f"threshold={threshold}")
    record.detail("threshold_pass_recompressed", len(now))
    record.metric(mm_stat_before=mm0, mm_stat_after=mm1)
    assert now - idle, f"threshold={threshold} recompressed none of the slots read since `idle all`"
    _smaller(mm0, mm1, f"threshold={threshold}")
    _verify(guest, dev, "after recompression")


def test_recompress_huge_and_threshold(guest, guest_tools, record, page_size):
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
        mm = dev.mm_stat()
        assert mm["huge_pages"] > 0, f"precondition: huge pages were written: {mm}"
        # the primary's mean object: the larger ones are recompressed, a result kept below it
        threshold = _mean_object(mm, page_size)
        record.detail("threshold", threshold)
        if not guest.exists(dev.block_state_path):
            pytest.skip(f"no {dev.block_state_path}: the kernel lacks CONFIG_ZRAM_MEMORY_TRACKING")
        _passes(guest, dev, secondary, threshold, record)

        # reset after recompression setup, then set up and reset once more
        dev.set("reset", 1)
        assert int(dev.attr("disksize")) == 0
        _configure(dev, primary, secondary)
        dev.set("reset", 1)


def _refused(dev, name, value):
    res = dev.try_set(name, f"'{value}'")
    assert res.exit_status != 0 and "invalid argument" in res.stderr.lower(), \
        f"`{value}` > {name}: exit {res.exit_status}, {res.stderr.strip()!r}, not EINVAL"


def test_algorithm_params_level(guest, guest_tools, record, page_size):
    """algorithm_params (6.12+): refusals, and zstd's level changes the stored size."""
    ensure_zram_control(guest)
    with ZramDevice.add(guest) as dev:
        if not dev.has("algorithm_params"):
            pytest.skip("no algorithm_params attribute: per-algorithm parameters need Linux 6.12+")
        if "zstd" not in dev.algorithms():
            pytest.skip(f"zstd is not offered: {dev.algorithms()}")
        dev.set("comp_algorithm", "zstd")
        for bad in ("algo=nosuchalgo level=1", "priority=4 level=1", "level=x", "level=",
                    "dict=/nonexistent"):
            _refused(dev, "algorithm_params", bad)
        sizes = {}
        for i, level in enumerate(ZSTD_LEVELS):
            dev.set("comp_algorithm", "zstd")
            how = f"algo=zstd level={level}" if i == 0 else f"priority=0 level={level}"
            dev.set("algorithm_params", f"'{how}'")
            dev.set("disksize", DISKSIZE)
            check_data_intact(parse_tool_output(guest.check(zsfill_command(
                "write", dev.path, BLOCKS, seed=102, mix=MIX))), f"write at level {level}", BLOCKS)
            sizes[level] = _mean_object(dev.mm_stat(), page_size)
            check_data_intact(parse_tool_output(guest.run(zsfill_command(
                "verify", dev.path, BLOCKS, seed=102, mix=MIX)).stdout), f"level {level}", BLOCKS)
            dev.set("reset", 1)
        record.detail("zstd_mean_object_by_level", sizes)
        low, high = ZSTD_LEVELS
        assert sizes[high] < sizes[low], \
            f"zstd level {high} stored objects no smaller than level {low}: {sizes}"
