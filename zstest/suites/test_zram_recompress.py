"""zram recompression with a secondary algorithm (issue 28, part 3; Linux 6.2+ with
CONFIG_ZRAM_MULTI_COMP), and the per-algorithm parameters (6.12+).

`recompress priority=2` (no algorithm there) recompresses nothing. After `idle all` and
reading half: `type=huge_idle` visits exactly the huge slots still idle and `type=huge` the
other huge ones (random data: the secondary cannot shrink them either, block_state marks them
'n'); `max_pages=M priority=0` stops after M attempts with the first secondary; `type=idle
threshold=N algo=...` recompresses only slots still idle and only objects from N up, keeping a
result only below N; `type=idle` without a threshold then takes the idle ones under N that pass
left alone; `threshold=N` alone takes the rest. Each pass moves objects to smaller size classes
(compr_data_size falls, block_state marks them 'r') and every block reads back. Then reset
after recompression setup, twice (a 2024 leak). `recompress` refuses an uninitialised device
and each argument it cannot use (EINVAL), and still works after; it refuses a threshold from
huge_class_size (read from zsmalloc's classes) up and takes one byte less; its page allocation
failing gives ENOMEM and recompresses nothing; 2000 stores keep no page. `algorithm_params`
refuses what it must and its zstd level changes what is stored.
"""

import re

import pytest

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fault_inject import FaultKnobs, assert_enomem
from zstest.suites.lib.fixtures import guest_tools  # noqa: F401  (fixture)
from zstest.suites.lib.perf import classes_path
from zstest.suites.lib.tools import parse_tool_output, zsfill_command
from zstest.suites.lib.zram import ZramDevice, ensure_zram_control
from zstest.suites.lib.zram_state import page_counter_loop, pages_kept, with_flags

BLOCKS = 1024
HUGE_BLOCKS = 256
MIX = (5, 3, 2)
DISKSIZE = 8 << 20
MAX_PAGES = 8
# the secondary should compress better than the primary: the first pair the kernel offers
PAIRS = [("lzo-rle", "zstd"), ("lzo", "zstd"), ("lz4", "zstd"), ("lzo-rle", "deflate"),
         ("lzo", "deflate"), ("lz4", "lz4hc"), ("lzo", "842")]
ZSTD_LEVELS = (1, 12)
LEAK_STORES = 2000


def _pair(offered):
    for primary, secondary in PAIRS:
        if primary in offered and secondary in offered:
            return primary, secondary
    return None


def _pair_or_skip(dev):
    """(primary, secondary), or skip with the reason the kernel gives none."""
    if not dev.has("recomp_algorithm"):
        pytest.skip("no recomp_algorithm attribute: recompression needs Linux 6.2+ "
                    "with CONFIG_ZRAM_MULTI_COMP")
    pair = _pair(dev.algorithms())
    if pair is None:
        pytest.skip(f"no primary/secondary pair among the offered algorithms {dev.algorithms()}")
    return pair


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


def _visited(dev, args, before_n):
    """One type=huge* pass: the slots it recompressed or newly marked incompressible."""
    _, _, recompressed = _recompress(dev, args)
    return (set(with_flags(dev.block_state(), have="n")) - before_n) | recompressed


def _huge_passes(dev, idle, record):
    """type=huge_idle visits exactly the huge slots still idle, type=huge the other huge ones:
    each is recompressed ('r') or marked incompressible ('n': random data shrinks for no one).
    Nothing is read back here: a read clears the idle marks the type=idle passes need."""
    state = dev.block_state()
    huge, n0 = set(with_flags(state, have="h", lack="n")), set(with_flags(state, have="n"))
    assert huge & idle and huge - idle, \
        f"precondition: huge slots both idle ({len(huge & idle)}) and read ({len(huge - idle)})"
    visited = _visited(dev, "type=huge_idle", n0)
    record.detail("huge_idle_slots_visited", len(visited))
    assert visited == huge & idle, (
        f"recompress type=huge_idle visited {len(visited)} slots, {len(visited - huge)} not huge, "
        f"{len(visited - idle)} not idle, {len((huge & idle) - visited)} huge idle ones missed")
    visited = _visited(dev, "type=huge", n0 | visited)
    record.detail("huge_slots_visited", len(visited))
    assert visited == huge - idle, (
        f"recompress type=huge visited {len(visited)} slots, {len(visited - huge)} not huge, "
        f"{len((huge - idle) - visited)} huge ones missed")


def _passes(guest, dev, secondary, threshold, record):
    """A priority with no algorithm, type=huge_idle and type=huge after `idle all` and reading
    half, max_pages, type=idle with a threshold then without, then threshold alone."""
    # only priority 1 has an algorithm: priority 2 tries none (but it touches every slot, so
    # before `idle all`), priority 0 means the first secondary
    mm0, mm1, now = _recompress(dev, "priority=2")
    assert not now and mm1["compr_data_size"] == mm0["compr_data_size"], \
        f"priority=2 (no algorithm) recompressed {len(now)} slots"

    dev.set("idle", "all")
    check_data_intact(parse_tool_output(guest.run(zsfill_command(
        "verify", dev.path, BLOCKS // 2, seed=101, mix=MIX)).stdout), "read half", BLOCKS // 2)
    idle = set(with_flags(dev.block_state(), have="i"))
    assert idle, "precondition: slots still idle after `idle all` and reading half"
    record.detail("idle_slots", len(idle))
    _huge_passes(dev, idle, record)

    mm0, mm1, now = _recompress(dev, f"max_pages={MAX_PAGES} priority=0")
    record.detail("max_pages_recompressed", len(now))
    assert 0 < len(now) <= MAX_PAGES, f"max_pages={MAX_PAGES} recompressed {len(now)} slots"

    args = f"type=idle threshold={threshold} algo={secondary}"
    mm0, mm1, now = _recompress(dev, args)
    record.detail("idle_slots_recompressed", len(now))
    assert now, f"recompress {args} recompressed none of the {len(idle)} idle slots"
    assert now <= idle, f"recompress {args} recompressed {len(now - idle)} slots that were not idle"
    _smaller(mm0, mm1, args)
    # the slots under the threshold were left alone, idle: without one they are taken now
    args = f"type=idle algo={secondary}"
    mm0, mm1, below = _recompress(dev, args)
    record.detail("idle_below_threshold_recompressed", len(below))
    assert below, f"recompress {args} after threshold={threshold} recompressed no idle slot"
    assert below <= idle, f"recompress {args} recompressed {len(below - idle)} slots not idle"
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
        primary, secondary = _pair_or_skip(dev)
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


def test_recompress_refusals(guest, guest_tools, record, page_size):
    """recompress refuses an uninitialised device and every argument it cannot use (EINVAL),
    then works: a refusal leaves no post-processing marked in progress."""
    ensure_zram_control(guest)
    with ZramDevice.add(guest) as dev:
        pair = _pair_or_skip(dev)
        _refused(dev, "recompress", "type=huge")
        _configure(dev, *pair)
        # a name without a value, a value that is no number, a secondary not configured, a
        # threshold no object is below (any threshold from huge_class_size up is refused)
        bad = ("type", "type=", "max_pages=x", "threshold=x", f"threshold={page_size}",
               "priority=x", "algo=nosuchalgo")
        for value in bad:
            _refused(dev, "recompress", value)
        record.detail("refused", list(bad))
        res = dev.try_set("recompress", "type=huge")
        assert res.exit_status == 0, f"recompress type=huge after the refusals: {res.stderr}"


def huge_class_size(classes: str, page_size: int, handle_size: int) -> int:
    """zsmalloc's huge_class_size from its debugfs classes file: the largest class whose zspage
    is neither one page nor one object, less the handle's bytes but one (zs_create_pool)."""
    rows = [line.split() for line in classes.splitlines() if line.strip()]
    header = rows[0]
    size, pages = header.index("size"), header.index("pages_per_zspage")
    sizes = [int(r[size]) for r in rows[1:] if r[0].isdigit() and int(r[pages]) != 1
             and int(r[pages]) * page_size // int(r[size]) != 1]
    return max(sizes) - (handle_size - 1)


def test_threshold_from_huge_class_size_refused(guest, guest_tools, record, page_size):
    """recompress refuses a threshold from huge_class_size up (no object is stored below it
    that a recompression could bring under it) and takes one byte less: the boundary read from
    zsmalloc's classes."""
    ensure_zram_control(guest)
    with ZramDevice.add(guest) as dev:
        _configure(dev, *_pair_or_skip(dev))
        classes = classes_path(f"zram{dev.id}")
        if not guest.exists(classes):
            pytest.skip(f"no {classes}: the kernel lacks CONFIG_ZSMALLOC_STAT")
        # zsmalloc's handle is an unsigned long: 4 bytes on the 32-bit kernels zstest boots
        handle = 4 if re.fullmatch(r"i[3-6]86|arm.*", guest.check("uname -m").strip()) else 8
        huge = huge_class_size(guest.check(f"cat {classes}"), page_size, handle)
        record.detail("huge_class_size", huge)
        _refused(dev, "recompress", f"threshold={huge}")
        res = dev.try_set("recompress", f"threshold={huge - 1}")
        assert res.exit_status == 0, f"threshold={huge - 1} refused: {res.stderr.strip()}"


def test_allocation_failure_in_recompress(guest, guest_tools, record):
    """recompress's page allocation fails: ENOMEM to the writer, nothing recompressed, and the
    next recompress works (one that ignored the failure would decompress into a NULL page)."""
    ensure_zram_control(guest)
    with ZramDevice.add(guest) as dev, FaultKnobs(guest) as knobs:
        primary, secondary = _pair_or_skip(dev)
        knobs.require("fail_page_alloc")
        _configure(dev, primary, secondary)
        check_data_intact(parse_tool_output(guest.check(zsfill_command(
            "write", dev.path, BLOCKS, seed=104, mix=MIX))), "write", BLOCKS)
        mm0 = dev.mm_stat()
        res = knobs.store_with_its_allocation_failing(f"{dev.sysfs}/recompress",
                                                      f"algo={secondary}")
        record.detail("recompress_stderr", res.stderr.strip())
        assert_enomem(res, "recompress")
        assert dev.mm_stat()["compr_data_size"] == mm0["compr_data_size"], \
            "objects were recompressed after ENOMEM"
        res = dev.try_set("recompress", f"algo={secondary}")
        assert res.exit_status == 0, f"recompress after the failure: {res.stderr.strip()}"
        _smaller(mm0, dev.mm_stat(), f"algo={secondary} after the failure")
        check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", dev.path, BLOCKS, seed=104, mix=MIX)).stdout), "read back", BLOCKS)


def test_recompress_store_frees_its_page(guest, guest_tools, record, page_size):
    """Every recompress store allocates a page to decompress into and must free it:
    LEAK_STORES stores on a small empty device keep far fewer pages than the LEAK_STORES one
    leaked page each would (pgalloc_* - pgfree over the loop, as writeback's twin test)."""
    ensure_zram_control(guest)
    with ZramDevice.add(guest) as dev:
        primary, secondary = _pair_or_skip(dev)
        dev.set("comp_algorithm", primary)
        dev.set("recomp_algorithm", f"'algo={secondary} priority=1'")
        dev.set("disksize", 16 * page_size)     # few slots to scan: the loop is the stores
        pages = pages_kept(guest.check(page_counter_loop(
            f"{dev.sysfs}/recompress", "type=huge", LEAK_STORES), timeout=600))
        record.detail("stores", LEAK_STORES)
        record.detail("pages", pages)
        assert pages["kept"] < LEAK_STORES // 2, \
            f"{LEAK_STORES} recompress stores kept {pages['kept']} pages (one each: {LEAK_STORES})"


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
