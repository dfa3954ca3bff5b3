"""Perf: memory zram and zsmalloc use for identical data (issue 27).

zsfill writes the same fixed-seed data to a fresh zram device; mm_stat and the "Total" row
of zsmalloc's debugfs classes file are recorded as they are after the write, then after
every other page is overwritten with same-filled data and the device compacted. The whole
sequence runs twice on a reset device: a value is marked exact when both agree (memory use
of identical data, written by one process, is the same on every run of a kernel).
"""

import pytest

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fixtures import guest_tools, zram  # noqa: F401  (fixtures)
from zstest.suites.lib.metrics import parse_mm_stat
from zstest.suites.lib.perf import FILL_MIX, FILL_SEED, SIZES, classes_path, parse_classes_total
from zstest.suites.lib.tools import parse_tool_output, zsfill_command

# lower is better for each; orig_data_size and same_pages depend on the data alone (details)
MM_FIELDS = ("compr_data_size", "mem_used_total", "mem_used_max", "huge_pages")
# obj_allocated stays in details (rounds): slots depend on the class layout, so a patch that
# moves objects to bigger classes "improves" it while it wastes pages
CLASS_FIELDS = ("obj_used", "pages_used")
UNIT = {"compr_data_size": "bytes", "mem_used_total": "bytes", "mem_used_max": "bytes",
        "huge_pages": "pages", "obj_used": "objects",
        "pages_used": "pages"}


def _measure(guest, zram) -> dict:
    """mm_stat and the classes Total row (when the kernel has it) in one command."""
    cls = classes_path(zram.path.rsplit("/", 1)[1])
    out = guest.check(f"cat {zram.sysfs}/mm_stat; echo =====; cat {cls} 2>/dev/null || true")
    mm_text, _, classes_text = out.partition("=====\n")
    found = {"mm_stat": parse_mm_stat(mm_text)}
    if classes_text.strip():
        found["classes"] = parse_classes_total(classes_text)
    return found


def _one_round(guest, zram, blocks: int, group: int, verify: bool) -> dict:
    zram.setup(blocks * 4096)
    check_data_intact(parse_tool_output(guest.check(
        zsfill_command("write", zram.path, blocks, seed=FILL_SEED, mix=FILL_MIX), timeout=900)),
        "fill")
    written = _measure(guest, zram)
    # every other page overwritten with same-filled data: half of each zspage's objects freed
    check_data_intact(parse_tool_output(guest.check(zsfill_command(
        "write", zram.path, blocks, seed=FILL_SEED + 1, mix=(0, 0, 1), stride=2, phase=1,
        group=group), timeout=900)), "punch holes")
    zram.compact()
    compacted = _measure(guest, zram)
    if verify:
        check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", zram.path, blocks, seed=FILL_SEED, mix=FILL_MIX, stride=2, phase=0,
            group=group), timeout=900).stdout), "kept blocks after compact", blocks // 2)
    return {"written": written, "compacted": compacted}


def _values(found: dict) -> dict:
    """metric name -> value of one round."""
    values = {}
    for stage, snap in found.items():
        for field in MM_FIELDS:
            if field in snap["mm_stat"]:
                values[f"mem.{stage}.{field}"] = snap["mm_stat"][field]
        for field in CLASS_FIELDS:
            if field in snap.get("classes", {}):
                values[f"zs.{stage}.{field}"] = snap["classes"][field]
    return values


@pytest.mark.parametrize("size", SIZES)
def test_memory_identical_data(guest, guest_tools, zram, record, page_size, size):
    blocks = size.fill_mb * 256
    group = max(1, page_size // 4096)
    rounds = [_one_round(guest, zram, blocks, group, verify=False)]
    zram.reset()
    rounds.append(_one_round(guest, zram, blocks, group, verify=True))
    first, second = (_values(r) for r in rounds)
    mm = rounds[1]["written"]["mm_stat"]
    assert mm["orig_data_size"] > mm["same_pages"] * page_size, f"nothing reached zsmalloc: {mm}"
    assert mm["compr_data_size"] < mm["orig_data_size"], f"the data did not compress: {mm}"
    if "classes" not in rounds[1]["written"]:
        record.detail("classes", "no zsmalloc debugfs classes file (CONFIG_ZSMALLOC_STAT off "
                                 "or debugfs absent): not measured")
    for name, value in second.items():
        field = name.rsplit(".", 1)[1]
        record.perf(name, value, UNIT[field], "lower", exact=first.get(name) == value)
    record.detail("not_exact", {n: [first.get(n), v] for n, v in second.items()
                                if first.get(n) != v})
    record.detail("orig_data_size", mm["orig_data_size"])
    record.detail("pages_compacted", [r["compacted"]["mm_stat"].get("pages_compacted")
                                      for r in rounds])
    record.detail("same_pages", mm["same_pages"])
    record.detail("rounds", rounds)
