"""zsmalloc page migration by memory hot-unplug, the core test (issue 5, test 6).

The guest has a movable pc-dimm. zram is filled so that zspages sit in
ZONE_MOVABLE, then every movable block is offlined while readers and writers
keep going: the kernel must migrate every zspage out, lose no byte, and keep
per-zone nr_zspages right (0 everywhere once zram is reset). Twice: the blocks
are onlined again and the round is repeated.
"""

import pytest

from zstest.suites.lib.background import BackgroundIO
from zstest.suites.lib.checks import (check_data_intact, check_migrated, check_mm_stat,
                                      check_no_zspages,
                                      check_pages_migrated, check_zone_accounting,
                                      check_zspages_in_movable)
from zstest.suites.lib.fixtures import guest_tools, require_config  # noqa: F401
from zstest.suites.lib.memory_blocks import list_memory_blocks
from zstest.suites.lib.metrics import movable_zspages, take_snapshot, zone_counter
from zstest.suites.lib.tools import parse_tool_output, zsfill_command
from zstest.suites.lib.zram import ZramDevice, ensure_zram_control

DATA_BLOCKS = 12288    # 48 MiB verified while the blocks go offline
IO_BLOCKS = 2048       # 8 MiB rewritten while they go offline
OFFLINE_TIMEOUT_S = 240
ROUNDS = 2


def _set_state(guest, block: str, state: str):
    return guest.run(f"timeout {OFFLINE_TIMEOUT_S} sh -c 'echo {state} > "
                     f"/sys/devices/system/memory/{block}/state'", timeout=OFFLINE_TIMEOUT_S + 30)


def _one_round(guest, movable_names, round_no, record, facts):
    dev = ZramDevice.add(guest)
    with dev:
        dev.setup(96 << 20)
        # An empty page cache leaves ZONE_MOVABLE's free pages to zsmalloc.
        guest.check("sync && echo 3 > /proc/sys/vm/drop_caches")
        check_data_intact(parse_tool_output(guest.check(
            zsfill_command("write", dev.path, DATA_BLOCKS, seed=60 + round_no))), "fill")
        check_data_intact(parse_tool_output(guest.check(zsfill_command(
            "write", dev.path, IO_BLOCKS, start=DATA_BLOCKS, seed=70 + round_no))), "fill")
        before = take_snapshot(guest, dev.sysfs)
        facts["zspages_per_zone_before"] = zone_counter(before["zoneinfo"], "nr_zspages")
        in_movable = check_zspages_in_movable(before["zoneinfo"])
        facts["zspages_in_movable_before"] = in_movable

        io = BackgroundIO(guest, f"hotunplug-io-{round_no}")
        io.start(zsfill_command("verify", dev.path, DATA_BLOCKS, seed=60 + round_no))
        io.start(zsfill_command("write", dev.path, IO_BLOCKS, start=DATA_BLOCKS,
                                seed=70 + round_no))
        offline_errors = {}
        try:
            for name in movable_names:
                res = _set_state(guest, name, "offline")
                if res.exit_status != 0:
                    offline_errors[name] = (res.stderr or res.stdout).strip() or \
                        f"exit {res.exit_status}"
        finally:
            reader, writer = io.stop()
        after = take_snapshot(guest, dev.sysfs)
        _, blocks = list_memory_blocks(guest)
        states = {b.name: b.state for b in blocks if b.name in movable_names}
        offlined = [n for n, s in states.items() if s == "offline"]
        facts.update(blocks_offlined=len(offlined), blocks_total=len(movable_names),
                     offline_errors=offline_errors,
                     zspages_per_zone_after_offline=zone_counter(after["zoneinfo"], "nr_zspages"),
                     io_passes={"reader": reader.int("passes") if reader else 0,
                                "writer": writer.int("passes") if writer else 0})
        record.metric(**{f"round{round_no}_before": before, f"round{round_no}_after": after})
        if round_no == 1:
            record.metric(before=before, after=after)

        assert not offline_errors and len(offlined) == len(movable_names), \
            f"not every movable block went offline: states {states}, errors {offline_errors}"
        during = check_data_intact(reader, "reads while offlining")
        check_data_intact(writer, "writes while offlining")
        rise = check_migrated(before["vmstat"], after["vmstat"], at_least=in_movable)
        facts["pgmigrate_success_delta"] = rise
        if "pages_migrated" in after.get("mm_stat", {}):
            facts["pages_migrated_delta"] = check_pages_migrated(
                before["mm_stat"], after["mm_stat"], rise)
        check_mm_stat(before.get("mm_stat") or {}, f"round {round_no}, before offlining")
        check_mm_stat(after.get("mm_stat") or {}, f"round {round_no}, after offlining")
        check_zone_accounting(before["zoneinfo"], before["vmstat"], f"round {round_no}, before")
        check_zone_accounting(after["zoneinfo"], after["vmstat"],
                              f"round {round_no}, after offlining")
        assert movable_zspages(after["zoneinfo"]) == 0, \
            f"zspages still counted in ZONE_MOVABLE after it went offline: " \
            f"{facts['zspages_per_zone_after_offline']}"
        final = check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", dev.path, DATA_BLOCKS, seed=60 + round_no)).stdout),
            "read back after offlining", DATA_BLOCKS)
        final += check_data_intact(parse_tool_output(guest.run(zsfill_command(
            "verify", dev.path, IO_BLOCKS, start=DATA_BLOCKS, seed=70 + round_no)).stdout),
            "rewritten blocks after offlining", IO_BLOCKS)
        facts["bytes_verified"] = during + final
        dev.remove()
    reset = take_snapshot(guest)
    facts["zspages_per_zone_after_reset"] = zone_counter(reset["zoneinfo"], "nr_zspages")
    record.metric(**{f"round{round_no}_after_reset": reset})
    check_zone_accounting(reset["zoneinfo"], reset["vmstat"], f"round {round_no}, after reset")
    check_no_zspages(reset["zoneinfo"], reset["vmstat"])


def test_hotunplug_migrates_zspages(guest, guest_tools, kernel_config, build_info, record):
    require_config(kernel_config, "CONFIG_MEMORY_HOTREMOVE", "CONFIG_MIGRATION")
    ensure_zram_control(guest)
    block_size, blocks = list_memory_blocks(guest)
    movable = [b.name for b in blocks if b.movable]
    if not movable:
        from zstest.arch import arch_spec
        arch = arch_spec((build_info.get("arch") or {}).get("name") or "x86_64")
        if not arch.memory_hotplug:
            pytest.skip(f"no hot-pluggable memory on {arch.name} guests (zstest/arches/"
                        f"{arch.name}.toml): nothing to offline")
        pytest.skip("no online movable memory block: this suite's guest has no movable DIMM "
                    "(set dimm_mb in suites.ini)")
    record.detail("memory_block_size", block_size)
    record.detail("movable_blocks", movable)
    rounds = []
    try:
        for round_no in range(1, ROUNDS + 1):
            if round_no > 1:
                for name in movable:
                    res = _set_state(guest, name, "online_movable")
                    assert res.exit_status == 0, f"could not online {name} again: {res.stderr}"
                _, again = list_memory_blocks(guest)
                assert all(b.movable for b in again if b.name in movable), \
                    "the blocks did not come back online in ZONE_MOVABLE"
            rounds.append({"round": round_no})
            _one_round(guest, movable, round_no, record, rounds[-1])
    finally:
        record.detail("rounds", rounds)
        if rounds:
            first = rounds[0]
            for key in ("zspages_in_movable_before", "pgmigrate_success_delta",
                        "pages_migrated_delta", "blocks_offlined", "bytes_verified"):
                if key in first:
                    record.detail(key, first[key])
        # Leave the DIMM online for whatever runs next.
        for name in movable:
            _set_state(guest, name, "online_movable")
