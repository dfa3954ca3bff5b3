"""zram's attributes refuse what they must, and the rarely written ones work (issue 28).

Each refusal is asserted with its errno (the shell prints strerror): a setting changed
after initialisation (EBUSY), an unknown algorithm or mode (EINVAL), writeback without a
backing device (ENODEV), a backing device that is not a block device (ENOTBLK) or does not
exist (ENOENT), an operation on a device not initialised (EINVAL), a device that is not
there (ENODEV). Then mem_used_max's reset, max_comp_streams, reading block_state in small
pieces and zsmalloc's per-class statistics, which must add up to mm_stat's memory.
"""

import pytest

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fixtures import guest_tools  # noqa: F401  (fixture)
from zstest.suites.lib.perf import classes_path, parse_classes_total
from zstest.suites.lib.tools import parse_tool_output, zsfill_command
from zstest.suites.lib.zram import CONTROL, ZramDevice, ensure_zram_control
from zstest.suites.lib.zram_state import parse_block_state

ERRNO_TEXT = {"EINVAL": "invalid argument", "EBUSY": "busy", "ENODEV": "no such device",
              "ENOTBLK": "block device required", "ENOENT": "no such file"}
BLOCKS = 256


def _refused(guest, path: str, value, errno: str) -> str:
    res = guest.run(f"echo {value} > {path}")
    why = res.stderr.strip()
    assert res.exit_status != 0 and ERRNO_TEXT[errno] in why.lower(), \
        f"`echo {value} > {path}` should fail with {errno}: exit {res.exit_status}, {why!r}"
    return why


def test_refusals(guest, guest_tools, record, page_size):
    ensure_zram_control(guest)
    refused = {}
    with ZramDevice.add(guest) as dev:
        s = dev.sysfs
        # not initialised
        refused["idle uninitialised"] = _refused(guest, f"{s}/idle", "all", "EINVAL")
        refused["reset 0"] = _refused(guest, f"{s}/reset", 0, "EINVAL")
        refused["unknown algorithm"] = _refused(guest, f"{s}/comp_algorithm", "nosuchalgo", "EINVAL")
        refused["idle garbage"] = _refused(guest, f"{s}/idle", "sometime", "EINVAL")
        refused["mem_limit garbage"] = _refused(guest, f"{s}/mem_limit", "lots", "EINVAL")
        if dev.has("backing_dev"):
            refused["writeback uninitialised"] = _refused(guest, f"{s}/writeback", "huge", "EINVAL")
            refused["backing_dev missing"] = _refused(guest, f"{s}/backing_dev", "/nonexistent",
                                                      "ENOENT")
            guest.check("touch /tmp/zram-not-a-block-device")
            refused["backing_dev not a block device"] = _refused(
                guest, f"{s}/backing_dev", "/tmp/zram-not-a-block-device", "ENOTBLK")
            assert dev.attr("backing_dev") == "none"
        dev.setup(16 << 20)
        # initialised
        refused["disksize again"] = _refused(guest, f"{s}/disksize", 8 << 20, "EBUSY")
        refused["algorithm after init"] = _refused(guest, f"{s}/comp_algorithm", "lzo", "EBUSY")
        if dev.has("backing_dev"):
            refused["backing_dev after init"] = _refused(guest, f"{s}/backing_dev", dev.path,
                                                         "EBUSY")
            refused["writeback without backing"] = _refused(guest, f"{s}/writeback", "huge",
                                                            "ENODEV")
            # a mode misspelt, an index that is no number: EINVAL before the backing device
            # is looked at (a parser that let them through says ENODEV here)
            refused["writeback unknown mode"] = _refused(guest, f"{s}/writeback", "pageXindex=1",
                                                         "EINVAL")
            refused["writeback index without '='"] = _refused(guest, f"{s}/writeback",
                                                              "page_index:1", "EINVAL")
            refused["writeback index not a number"] = _refused(guest, f"{s}/writeback",
                                                               "page_index=x", "EINVAL")
        refused["hot_remove of no device"] = _refused(guest, f"{CONTROL}/hot_remove", 100000,
                                                      "ENODEV")
        assert int(dev.attr("initstate")) == 1 and int(dev.attr("disksize")) == 16 << 20
        record.detail("refused", refused)
        _rarely_written(guest, dev, record, page_size)


def _rarely_written(guest, dev, record, page_size):
    check_data_intact(parse_tool_output(guest.check(
        zsfill_command("write", dev.path, BLOCKS, seed=121))), "write", BLOCKS)
    mm = dev.mm_stat()
    dev.set("mem_used_max", 0)   # resets the peak to what is used now
    assert dev.mm_stat()["mem_used_max"] == dev.mm_stat()["mem_used_total"]
    _refused(guest, f"{dev.sysfs}/mem_used_max", 1, "EINVAL")
    if dev.has("max_comp_streams"):
        dev.set("max_comp_streams", 2)   # kept for compatibility: accepted, streams are per CPU
        record.detail("max_comp_streams", dev.attr("max_comp_streams"))
    if guest.exists(dev.block_state_path):
        # 100-byte reads: the file's reader stops at a line that does not fit, resumes there
        small = guest.check(f"dd if={dev.block_state_path} bs=100 2>/dev/null")
        whole = guest.check(f"cat {dev.block_state_path}")
        assert parse_block_state(small) == parse_block_state(whole) and \
            len(parse_block_state(whole)) == BLOCKS * 4096 // max(4096, page_size)
    classes = classes_path(f"zram{dev.id}")
    if not guest.exists(classes):
        pytest.skip(f"no {classes}: the kernel lacks CONFIG_ZSMALLOC_STAT")
    totals = parse_classes_total(guest.check(f"cat {classes}"))
    record.detail("zsmalloc_classes_total", totals)
    assert totals["pages_used"] * page_size == dev.mm_stat()["mem_used_total"] == \
        mm["mem_used_total"], f"zsmalloc's classes say {totals['pages_used']} pages, mm_stat {mm}"

