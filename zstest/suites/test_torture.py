"""zstorture: the zsmalloc API driven directly while page migration is forced (issue 6).

The module (kmod/) starts its kthreads at insmod and prints KTAP on the kernel
log; the test forces migration at the same time (compact_memory in a loop, and
offline/online of movable memory blocks when the guest has a DIMM), then parses
the module's KTAP with zstest.ktap.  Environment knobs, for zstest's own tests:
ZSTEST_TORTURE_DURATION (seconds, default 30) and ZSTEST_TORTURE_PARAMS (extra
module parameters, e.g. "corrupt_one=1" for the failure path).
"""

from __future__ import annotations

import os
import shlex
import time
import uuid
from pathlib import Path

import pytest

from zstest.ktap import PREFIX, parse_torture_log
from zstest.suites.lib.fixtures import require_config
from zstest.suites.lib.memory_blocks import list_memory_blocks
from zstest.suites.lib.metrics import delta, movable_zspages, take_snapshot, zone_counter

MODULE = "zstorture"
GUEST_COPY = f"/tmp/{MODULE}.ko"
DURATION_S = int(os.environ.get("ZSTEST_TORTURE_DURATION", "30"))
EXTRA_PARAMS = os.environ.get("ZSTEST_TORTURE_PARAMS", "")
# Time beyond duration_s for the final verification, the pool check and a slow TCG guest.
FINISH_MARGIN_S = 180
MIGRATE_STOP = "/tmp/torture-migrate.stop"
MIGRATE_OUT = "/tmp/torture-migrate.out"
HOLD = "/tmp/torture-hold"      # tmpfs pages held while the pool fills, freed before compaction
HOLD_FRACTION = 0.4


@pytest.fixture
def torture_ko(guest, build_info, build_dir, record):
    """The path of zstorture.ko in the guest: from the image, else copied from the build dir."""
    kmod = (build_info.get("artifacts") or {}).get("kmod")
    if not kmod:
        pytest.skip("build.json records no out-of-tree module (artifacts.kmod is null)")
    found = guest.run(f"find /lib/modules -name {MODULE}.ko 2>/dev/null | head -n 1").stdout.strip()
    if found:
        record.detail("module", found)
        return found
    # the build dir as it is now (build.json's build_dir is where it was built, maybe moved)
    host_ko = Path(build_dir) / f"{MODULE}.ko"
    if host_ko.is_file():
        guest.put(host_ko, GUEST_COPY)
        record.detail("module", f"{GUEST_COPY} (copied from {host_ko}: not in the image)")
        return GUEST_COPY
    pytest.skip(f"{MODULE}.ko is neither in the guest's /lib/modules nor in the build directory")


def _prepare(guest, kernel_config) -> None:
    require_config(kernel_config, "CONFIG_ZSMALLOC", "CONFIG_MODULES")
    if kernel_config.get("CONFIG_ZSMALLOC") == "m":
        guest.run("modprobe zsmalloc")   # insmod does not load dependencies
    guest.run(f"rmmod {MODULE} 2>/dev/null", timeout=120)


def _mark(guest) -> str:
    nonce = uuid.uuid4().hex[:12]
    guest.check(f"echo '<5>zstest: torture start {nonce}' > /dev/kmsg")
    return nonce


def _module_log(guest, nonce: str) -> str:
    """The module's kernel log lines written after our start mark."""
    text = guest.run(f"dmesg | grep -e 'torture start {nonce}' -e {shlex.quote(PREFIX)}",
                     timeout=60).stdout
    at = text.find(f"torture start {nonce}")
    return text[at:] if at >= 0 else ""


def _wait_final(guest, nonce: str, deadline: float):
    report = parse_torture_log(_module_log(guest, nonce))
    while not report.complete and time.monotonic() < deadline:
        time.sleep(3)
        report = parse_torture_log(_module_log(guest, nonce))
    return report


def _migration_script(movable_blocks) -> str:
    """A guest shell loop forcing migration until the stop file appears; prints its counts."""
    unplug = ""
    for block in movable_blocks:
        state = f"/sys/devices/system/memory/{block}/state"
        unplug += (f"if echo offline > {state} 2>/dev/null; then off=$((off+1)); "
                   f"echo online_movable > {state} 2>/dev/null || echo online > {state}; "
                   f"else busy=$((busy+1)); fi; ")
    return (f"n=0; off=0; busy=0; while [ ! -e {MIGRATE_STOP} ]; do "
            f"echo 1 > /proc/sys/vm/compact_memory; n=$((n+1)); {unplug}sleep 1; done; "
            f"echo compact_rounds=$n offlined=$off offline_busy=$busy")


def _hold_memory(guest) -> int:
    """Fill part of the free memory with tmpfs pages, to be freed once the module's pool has
    grown: the pool then sits below free space, where compaction's migrate scanner finds it.
    On a fresh guest the allocator hands out the top of the zone first, which is where the
    free scanner starts; with 64K pages (512 MB pageblocks, a handful per guest) the two
    scanners meet before reaching the pool and nothing migrates. Returns the MiB held."""
    meminfo = guest.run("cat /proc/meminfo").stdout
    avail_kb = next((int(line.split()[1]) for line in meminfo.splitlines()
                     if line.startswith("MemAvailable:")), 0)
    mb = int(avail_kb * HOLD_FRACTION) // 1024
    if mb > 0:
        guest.run(f"dd if=/dev/zero of={HOLD} bs=1M count={mb} 2>/dev/null", timeout=300)
    return mb


class MigrationLoop:
    def __init__(self, guest, movable_blocks):
        self.guest = guest
        guest.check(f"rm -f {MIGRATE_STOP} {MIGRATE_OUT}")
        guest.check(f"setsid sh -c {shlex.quote(_migration_script(movable_blocks))} "
                    f"> {MIGRATE_OUT} 2>&1 < /dev/null &")

    def stop(self, timeout: float = 300.0) -> dict:
        self.guest.check(f"touch {MIGRATE_STOP}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.guest.run(f"cat {MIGRATE_OUT}").stdout
            if "compact_rounds=" in out:
                return {k: int(v) for k, v in (p.split("=") for p in out.split() if "=" in p)}
            time.sleep(1)
        return {}


def _fail_on(report, insmod_out: str) -> None:
    """Fail with the module's own words: no output, no final line, each corrupted object."""
    if not report.found:
        pytest.fail(f"{MODULE} printed no KTAP after insmod; insmod said: {insmod_out.strip()!r}",
                    pytrace=False)
    if not report.complete:
        pytest.fail(report.summary(), pytrace=False)
    if report.mismatches:
        pytest.fail(f"{MODULE} found {report.total('mismatches')} corrupted object(s): " +
                    "; ".join(m.describe() for m in report.mismatches), pytrace=False)
    if not report.passed:
        pytest.fail(f"{MODULE}: {report.summary()}", pytrace=False)


def test_torture_under_migration(guest, torture_ko, kernel_config, record):
    _prepare(guest, kernel_config)
    _, blocks = list_memory_blocks(guest)
    movable = [b.name for b in blocks if b.movable]
    nonce = _mark(guest)
    held_mb = _hold_memory(guest)
    before = take_snapshot(guest)
    params = f"duration_s={DURATION_S} seed={int(nonce[:6], 16)} {EXTRA_PARAMS}".strip()
    started = time.monotonic()
    migration = None
    try:
        insmod = guest.run(f"insmod {torture_ko} {params}", timeout=120)
        time.sleep(min(3, DURATION_S / 10))      # the pool grows below the held pages
        guest.run(f"rm -f {HOLD}")
        migration = MigrationLoop(guest, movable)
        # zspages seen in ZONE_MOVABLE while the loop offlines it: those had to migrate
        time.sleep(min(5, DURATION_S / 3))
        during = take_snapshot(guest)
        report = _wait_final(guest, nonce, started + DURATION_S + FINISH_MARGIN_S) \
            if insmod.exit_status == 0 else parse_torture_log("")
    finally:
        guest.run(f"rm -f {HOLD}")
        loop_counts = migration.stop() if migration else {}
    after = take_snapshot(guest)
    # rmmod also stops a module that never finished: its threads must end and free everything
    rmmod = guest.run(f"rmmod {MODULE}", timeout=180)
    if not report.complete:
        report = parse_torture_log(_module_log(guest, nonce))

    migrated = delta(before, after, "vmstat", "pgmigrate_success")
    record.metric(before=before, after=after)
    record.detail("params", params)
    record.detail("held_mb", held_mb)
    record.detail("ktap", report.to_dict())
    record.detail("summary", report.summary())
    record.detail("migration_loop", {**loop_counts, "movable_blocks": movable})
    record.detail("pgmigrate_success_delta", migrated)
    record.detail("zspages_per_zone_during", zone_counter(during.get("zoneinfo", {}), "nr_zspages"))
    record.detail("zspages_movable_during", movable_zspages(during.get("zoneinfo", {})))
    record.detail("seconds", round(time.monotonic() - started, 1))

    assert insmod.exit_status == 0, f"insmod {MODULE} failed: {insmod.stderr.strip()}"
    _fail_on(report, insmod.stdout + insmod.stderr)
    assert rmmod.exit_status == 0, f"rmmod {MODULE} failed: {rmmod.stderr.strip()}"
    assert report.total("huge_allocs") > 0, "no huge-class object was allocated"
    assert migrated > 0, "pgmigrate_success did not rise: nothing was migrated during the run"


def test_torture_rmmod_while_running(guest, torture_ko, kernel_config, record):
    """rmmod in the middle of a long run stops the threads, verifies, frees everything."""
    _prepare(guest, kernel_config)
    nonce = _mark(guest)
    guest.check(f"insmod {torture_ko} duration_s=3600 seed=7", timeout=120)
    time.sleep(5)
    started = time.monotonic()
    rmmod = guest.run(f"rmmod {MODULE}", timeout=180)
    record.detail("rmmod_seconds", round(time.monotonic() - started, 2))
    report = parse_torture_log(_module_log(guest, nonce))
    record.detail("ktap", report.to_dict())
    assert rmmod.exit_status == 0, f"rmmod {MODULE} failed: {rmmod.stderr.strip()}"
    assert guest.run(f"grep -qw {MODULE} /proc/modules").exit_status != 0, "the module is still loaded"
    assert report.complete, report.summary()
    assert report.result == "aborted", f"expected an aborted run, got {report.result}"
    assert not report.mismatches, "; ".join(m.describe() for m in report.mismatches)
    assert all(s.ok for s in report.subtests), report.summary()
    assert report.total("allocs") > 0, "the run was stopped before it allocated anything"
