"""The guest data tools, compiled for real and run on the host against files."""

import shutil
import subprocess

import pytest

from zstest.guest_tools import build_guest_tools, sources_digest
from zstest.target import Target
from zstest.suites.lib.checks import check_data_intact
from zstest.suites.lib.tools import expected_kinds, parse_tool_output, zsfill_command


@pytest.fixture(scope="module")
def tools():
    return build_guest_tools(Target.default())


def _run(tools, cmd: str):
    import shlex
    argv = shlex.split(cmd)
    argv[0] = str(tools[f"/usr/bin/{argv[0]}"])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_build_is_static_and_cached(tools):
    zsfill = tools["/usr/bin/zsfill"]
    assert zsfill.is_file() and sources_digest(Target.default()) in str(zsfill)
    assert zsfill.read_bytes()[:4] == b"\x7fELF"
    if shutil.which("file"):
        assert "statically linked" in subprocess.run(["file", str(zsfill)], capture_output=True,
                                                     text=True).stdout
    assert build_guest_tools(Target.default()) == tools      # second call: the cached binaries


def test_write_then_verify_counts_every_kind(tools, tmp_path):
    target = str(tmp_path / "data")
    wrote = parse_tool_output(_run(tools, zsfill_command("write", target, 1000, seed=5)).stdout)
    assert wrote.ok
    kinds = {k: wrote.int(k) for k in ("compressible", "incompressible", "same")}
    assert kinds == expected_kinds(1000, 5)    # host mirror of pattern.h agrees with the C
    assert all(v > 100 for v in kinds.values())
    read = _run(tools, zsfill_command("verify", target, 1000, seed=5))
    assert read.returncode == 0
    assert check_data_intact(parse_tool_output(read.stdout), "verify", 1000) == 1000 * 4096


def test_a_corrupted_block_fails_verification(tools, tmp_path):
    path = tmp_path / "data"
    _run(tools, zsfill_command("write", str(path), 64, seed=3))
    with open(path, "r+b") as fh:     # flip one byte in block 9
        fh.seek(9 * 4096 + 123)
        byte = fh.read(1)
        fh.seek(9 * 4096 + 123)
        fh.write(bytes([byte[0] ^ 0xFF]))
    res = _run(tools, zsfill_command("verify", str(path), 64, seed=3))
    assert res.returncode == 1
    report = parse_tool_output(res.stdout)
    assert report.int("bad") == 1 and report.values["status"] == "mismatch"
    assert report.bad_lines == [l for l in res.stdout.splitlines() if l.startswith("bad ")]
    assert "block=9 " in report.bad_lines[0] and "first_diff=123" in report.bad_lines[0]
    with pytest.raises(AssertionError, match="data differs"):
        check_data_intact(report, "verify")


def test_a_misplaced_block_is_named(tools, tmp_path):
    path = tmp_path / "data"
    _run(tools, zsfill_command("write", str(path), 64, seed=3, mix=(1, 0, 0)))
    data = bytearray(path.read_bytes())
    data[4 * 4096:5 * 4096] = data[7 * 4096:8 * 4096]     # block 7's content at block 4
    path.write_bytes(bytes(data))
    report = parse_tool_output(_run(tools, zsfill_command("verify", str(path), 64, seed=3,
                                                          mix=(1, 0, 0))).stdout)
    assert report.int("bad") == 1 and "reason=misplaced" in report.bad_lines[0]


def test_stride_punches_holes_that_verify(tools, tmp_path):
    target = str(tmp_path / "data")
    _run(tools, zsfill_command("write", target, 100, seed=1))
    _run(tools, zsfill_command("write", target, 100, seed=2, mix=(0, 0, 1), stride=2, phase=1))
    kept = parse_tool_output(_run(tools, zsfill_command("verify", target, 100, seed=1,
                                                        stride=2, phase=0)).stdout)
    holes = parse_tool_output(_run(tools, zsfill_command("verify", target, 100, seed=2,
                                                         mix=(0, 0, 1), stride=2, phase=1)).stdout)
    assert kept.ok and kept.int("blocks") == 50 and holes.ok and holes.int("same") == 50
    whole = parse_tool_output(_run(tools, zsfill_command("verify", target, 100, seed=1)).stdout)
    assert not whole.ok


def test_group_punches_whole_pages(tools, tmp_path):
    """--group 16: every other 64 KiB page is rewritten whole, its 16 blocks together."""
    path = tmp_path / "data"
    _run(tools, zsfill_command("write", str(path), 100, seed=1, mix=(1, 0, 0)))
    wrote = parse_tool_output(_run(tools, zsfill_command(
        "write", str(path), 100, seed=2, mix=(0, 0, 1), stride=2, phase=1, group=16)).stdout)
    # blocks 16..31, 48..63 and 80..95: three whole groups of 16
    assert wrote.ok and wrote.int("blocks") == 48
    assert {k: wrote.int(k) for k in ("compressible", "incompressible", "same")} == \
        expected_kinds(100, 2, (0, 0, 1), stride=2, phase=1, group=16)
    data = path.read_bytes()

    def same_filled(block):     # one 8-byte word repeated (what zram stores as same_pages)
        chunk = data[block * 4096:(block + 1) * 4096]
        return chunk == chunk[:8] * 512

    assert not any(same_filled(b) for b in (15, 32, 47, 64, 96, 99))   # edges left alone
    assert all(same_filled(b) for b in (16, 31, 48, 95))
    kept = parse_tool_output(_run(tools, zsfill_command(
        "verify", str(path), 100, seed=1, mix=(1, 0, 0), stride=2, phase=0, group=16)).stdout)
    assert kept.ok and kept.int("blocks") == 52


def test_until_repeats_passes(tools, tmp_path):
    target, stop = str(tmp_path / "data"), tmp_path / "stop"
    _run(tools, zsfill_command("write", target, 32))
    proc = subprocess.Popen([str(tools["/usr/bin/zsfill"]), "verify", target, "--blocks", "32",
                             "--until", str(stop)], stdout=subprocess.PIPE, text=True)
    import time
    time.sleep(0.3)
    stop.touch()
    out, _ = proc.communicate(timeout=30)
    report = parse_tool_output(out)
    assert report.ok and report.int("passes") > 1


def test_bad_usage_exits_2(tools, tmp_path):
    assert _run(tools, f"zsfill verify {tmp_path}/x --blocks 0").returncode == 2
    assert _run(tools, f"zsfill verify {tmp_path}/missing --blocks 4").returncode == 2
    assert _run(tools, "memtouch --mb").returncode == 2


def test_memtouch_verifies_every_page(tools):
    res = _run(tools, "memtouch --mb 8 --passes 2")
    report = parse_tool_output(res.stdout, "memtouch")
    assert res.returncode == 0 and report.ok
    assert report.int("pages") == 2048 and report.bytes == 2 * 8 << 20
    assert report.int("same") > 0 and report.int("incompressible") > 0
