"""A filesystem on zram: mkfs.ext4, verified writes, unmount, fsck clean (issue 5, test 2)."""

import pytest

from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.fixtures import guest_tools, zram  # noqa: F401  (fixtures)
from zstest.suites.lib.metrics import take_snapshot
from zstest.suites.lib.tools import parse_tool_output, zsfill_command

DISKSIZE = 64 << 20
MNT = "/mnt/zram-fs"


def _make_fs(guest, dev):
    dev.setup(DISKSIZE)
    guest.check(f"mkfs.ext4 -q -F {dev.path}")
    guest.check(f"mkdir -p {MNT} && mount -t ext4 {dev.path} {MNT}")


def _unmount_and_fsck(guest, dev, record):
    guest.check(f"umount {MNT}")
    fsck = guest.run(f"e2fsck -f -n {dev.path}")
    record.detail("fsck_exit", fsck.exit_status)
    assert fsck.exit_status == 0, f"e2fsck found problems:\n{fsck.stdout}\n{fsck.stderr}"


def test_fs_mixed_files(guest, guest_tools, zram, record):
    """Mixed-data files through ext4, read back after dropping the page cache."""
    _make_fs(guest, zram)
    before = take_snapshot(guest, zram.sysfs)
    files = {f"{MNT}/mix{i}": (1024 * (i + 1), 100 + i) for i in range(3)}   # 4, 8, 12 MiB
    for path, (blocks, seed) in files.items():
        check_data_intact(parse_tool_output(guest.check(
            zsfill_command("write", path, blocks, seed=seed, direct=False))), f"write {path}")
    guest.check("sync && echo 3 > /proc/sys/vm/drop_caches")
    verified = 0
    for path, (blocks, seed) in files.items():
        out = guest.run(zsfill_command("verify", path, blocks, seed=seed, direct=False)).stdout
        verified += check_data_intact(parse_tool_output(out), f"read back {path}", blocks)
    after = take_snapshot(guest, zram.sysfs)
    record.metric(before=before, after=after)
    record.detail("bytes_verified", verified)
    _unmount_and_fsck(guest, zram, record)


@pytest.mark.parametrize("size_mb", [4, 16])
def test_fs_fio_verify(guest, zram, record, size_mb):
    """fio writes with verification; its buffers are half compressible, plus zeroed ranges."""
    if guest.run("command -v fio").exit_status != 0:
        pytest.skip("fio is not in the guest image")
    _make_fs(guest, zram)
    before = take_snapshot(guest, zram.sysfs)
    result = guest.run(
        f"fio --name=zram-verify --directory={MNT} --size={size_mb}M --bs=4k --rw=randwrite "
        f"--ioengine=psync --verify=crc32c --do_verify=1 --verify_fatal=1 "
        f"--buffer_compress_percentage=50 --refill_buffers --output-format=terse", timeout=300)
    after = take_snapshot(guest, zram.sysfs)
    record.metric(before=before, after=after)
    assert result.exit_status == 0, f"fio verify failed:\n{result.stdout}\n{result.stderr}"
    record.detail("bytes_verified", size_mb << 20)
    _unmount_and_fsck(guest, zram, record)
