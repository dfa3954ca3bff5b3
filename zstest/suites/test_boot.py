"""The boot suite: the kernel under test runs, is the one built, has zram, and is quiet."""

import pytest


def test_kernel_is_the_one_built(guest, build_info):
    expected = build_info.get("kernel", {}).get("version")
    if not expected:
        pytest.skip("build.json records no kernel version")
    assert guest.check("uname -r").strip() == expected


def test_exit_status_is_kept(guest):
    # A lost exit code turns failures into passes (virtme-ng #48): check ours end to end.
    assert guest.run("exit 7").exit_status == 7
    assert guest.run("true").exit_status == 0


def test_zram_control_exists(guest):
    if not guest.exists("/sys/class/zram-control"):
        guest.run("modprobe zram num_devices=0")
    assert guest.exists("/sys/class/zram-control"), "zram is neither built in nor loadable"
    assert guest.exists("/sys/class/zram-control/hot_add")


def test_zsmalloc_in_kernel(guest, kernel_config):
    if kernel_config:
        assert kernel_config.get("CONFIG_ZSMALLOC") in ("y", "m")
    assert guest.run("grep -qw zs_malloc /proc/kallsyms").exit_status == 0


def test_boot_log_has_no_splat(console):
    splats = console.splats
    assert not splats, "the kernel logged during boot:\n" + "\n".join(
        f"[{s.kind}] {s.title}" for s in splats)
