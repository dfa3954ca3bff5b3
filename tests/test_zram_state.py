"""zram's bd_stat and block_state parsers and the fail-nth sweep's summary (issue 28), on
output recorded from the base-profile 6.1 guest (tests/data/guest/): block_state after
`idle all`, half the blocks read and `writeback huge_idle`; the disksize store's sweep; the
page counters around 2000 writeback stores (test_writeback_store_frees_its_page)."""

from pathlib import Path

from zstest import proc
from zstest.suites.lib.fault_inject import parse_fail_nth_log
from zstest.suites.lib.zram_state import (page_counter_loop, pages_kept, parse_bd_stat,
                                          parse_block_state, units_per_page, with_flags)

DATA = Path(__file__).parent / "data" / "guest"


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_bd_stat_by_name():
    assert parse_bd_stat(read("bd_stat.txt")) == {"bd_count": 150, "bd_reads": 0, "bd_writes": 150}


def test_block_state_slots_and_flags():
    slots = parse_block_state(read("block_state_huge_idle.txt"))
    assert len(slots) == 1024 and sorted(slots) == list(range(1024))
    assert slots[0].ac_time == 413.309989 and slots[0].flags == {"s"}
    assert slots[2].flags == {"h"}
    # huge_idle wrote back the 150 idle huge slots; the 150 read since stay huge, not idle
    written = with_flags(slots, have="w")
    assert len(written) == 150 and all(slots[i].flags == {"w"} for i in written)
    assert len(with_flags(slots, have="h")) == 150
    assert with_flags(slots, have="h", lack="i") == with_flags(slots, have="h")
    assert len(with_flags(slots, have="i")) == 248 + 114
    assert len(with_flags(slots, have="s", lack="i")) == 114


def test_block_state_six_flag_format_of_6_2():
    # Documentation/admin-guide/blockdev/zram.rst's example: r recompressed, n incompressible
    text = ("        300    75.033841 .wh...\n        301    63.806904 s.....\n"
            "        302    63.806919 ..hi..\n        303    62.801919 ....r.\n"
            "        304   146.781902 ..hi.n\n")
    slots = parse_block_state(text)
    assert with_flags(slots, have="r") == [303]
    assert with_flags(slots, have="hi") == [302, 304]
    assert with_flags(slots, have="h", lack="n") == [300, 302]


def test_block_state_ignores_other_lines():
    assert parse_block_state("cat: can't open 'x': No such file\n\n12 abc ....\n") == {}


def test_units_per_page():
    assert units_per_page(4096) == 1 and units_per_page(65536) == 16 and units_per_page(1024) == 1


def test_fail_nth_sweep_summary():
    sweep = parse_fail_nth_log(read("fail_nth_sweep.txt"))
    assert sweep["attempts"] == 128 and sweep["exhausted_at"] == 128
    assert sweep["tolerated"] == [5, 14, 21, 29, 46, 115, 116, 117, 118, 119, 122, 125]
    assert sweep["failed"] == 128 - 13 and sweep["dirty"] == []


def test_fail_nth_sweep_finds_a_dirty_failure():
    text = read("fail_nth_sweep.txt").replace("try=7 ok=0 fired=1 init=0 size=0",
                                              "try=7 ok=0 fired=1 init=1 size=16777216")
    assert parse_fail_nth_log(text)["dirty"] == [7]


def test_pages_kept_over_a_store_loop():
    # 2000 `page_index=` stores of an empty slot on clean 6.1.192: a page allocated and
    # freed by each, 8 more pages allocated than freed meanwhile
    pages = pages_kept(read("writeback_store_loop.txt"))
    assert pages == {"allocated": 2094 + 30, "freed": 2116, "kept": 8}


def test_pages_kept_sees_a_leak():
    leaked = read("writeback_store_loop.txt").replace("pgfree 187586", "pgfree 185586")
    assert pages_kept(leaked)["kept"] == 2008


def test_page_counter_loop_runs_in_a_shell(tmp_path):
    # the guest's command run by this host's sh against a plain file: it stores the value,
    # and its output is the two readings pages_kept understands
    target = tmp_path / "writeback"
    out = proc.run(["sh", "-c", page_counter_loop(str(target), "page_index=7", 50)]).stdout
    assert target.read_text() == "page_index=7\n"
    pages = pages_kept(out)
    assert set(pages) == {"allocated", "freed", "kept"} and pages["allocated"] >= 0
