"""The perf suite (issue 27): its parsers on recorded guest output, memtouch's swap cycles
run for real on the host, Recorder.perf, and perf-small booted on the shared build.

Recorded data (tests/data/perf/, from `zstest boot-and-run --suite perf-small` of the shared
6.1.192 base build, 2026-12-07): the zsmalloc debugfs classes file and mm_stat after zsfill
wrote 32 MiB to a fresh zram, fio's JSON of the write/read/randread jobs, memtouch's output
of two swap cycles.
"""

import json
import math
import subprocess
from pathlib import Path

import pytest

from zstest.guest_tools import build_guest_tools
from zstest.target import Target
from zstest.suites.lib.metrics import parse_mm_stat
from zstest.suites.lib.perf import (fio_command, parse_classes_total, parse_cpu_stat,
                                    parse_fio_json, parse_swap_cycles)
from zstest.suites.lib.tools import parse_tool_output
from zstest.suites.plugin import Recorder

DATA = Path(__file__).parent / "data" / "perf"


def test_classes_total_row_6_1():
    total = parse_classes_total((DATA / "classes-6.1.txt").read_text())
    assert total == {"almost_full": 1, "almost_empty": 11, "obj_allocated": 6598,
                     "obj_used": 6559, "pages_used": 4031, "freeable": 0}
    # the pages zsmalloc holds are what mm_stat's mem_used_total counts
    mm = parse_mm_stat((DATA / "mm_stat-6.1.txt").read_text())
    assert total["pages_used"] * 4096 == mm["mem_used_total"]


def test_classes_total_row_by_header_not_position():
    """6.12's header has fullness columns (10%..100%) instead of almost_full/almost_empty:
    the Total row is read by the header's names (a row cut from the 6.1 file, re-headed)."""
    text = (" class  size       10%       20%   obj_allocated   obj_used pages_used "
            "pages_per_zspage freeable\n"
            "     0    32         0         0             0          0          0"
            "                1        0\n\n"
            " Total                 3         4          6598       6559       4031"
            "                         0\n")
    assert parse_classes_total(text) == {"10%": 3, "20%": 4, "obj_allocated": 6598,
                                         "obj_used": 6559, "pages_used": 4031, "freeable": 0}


@pytest.mark.parametrize("text, why", [
    ("", "no 'class size' header"),
    (" class size obj_used\n 0 32 0\n", "no Total row"),
    (" class size a b\n Total 1\n", "1 values for 2 columns"),
])
def test_classes_file_that_is_not_one_is_refused(text, why):
    with pytest.raises(ValueError, match=why):
        parse_classes_total(text)


def test_fio_json_jobs():
    jobs = parse_fio_json("fio: a warning before the JSON\n" +
                          (DATA / "fio-6.1.json").read_text())
    assert list(jobs) == ["write", "read", "randread"]
    for job in jobs.values():
        assert job["io_kib"] == 32 * 1024 and job["bw_kib"] > 0 and job["errors"] == 0
    # bw is KiB/s: the bytes moved over the job's runtime
    w = jobs["write"]
    assert math.isclose(w["bw_kib"], w["io_kib"] / (w["runtime_ms"] / 1000), rel_tol=0.02)


def test_fio_without_json_is_refused():
    with pytest.raises(ValueError, match="no JSON"):
        parse_fio_json("fio: engine psync not loadable\n")


def test_fio_command_scrambles_and_seeds():
    cmd = fio_command("/dev/zram1", 32, ["write", "randread"])
    for opt in ("--refill_buffers", "--scramble_buffers=1", "--buffer_compress_percentage=50",
                "--randrepeat=1", "--randseed=", "--output-format=json", "--size=32M"):
        assert opt in cmd
    assert cmd.index("--name=write") < cmd.index("--name=randread")


def test_swap_cycles_recorded():
    text = (DATA / "memtouch-cycles-6.1.txt").read_text()
    cycles = parse_swap_cycles(text)
    assert [c["reclaim"] for c in cycles] == ["ok", "ok"]
    report = parse_tool_output(text, "memtouch")
    assert math.isclose(sum(c["swapout_seconds"] for c in cycles),
                        float(report.values["swapout_seconds"]), abs_tol=1e-5)
    assert parse_mm_stat(cycles[0]["stat"])["orig_data_size"] >= 32 << 20


def test_cpu_stat():
    assert parse_cpu_stat("usage_usec 15423\nuser_usec 457305\nsystem_usec 14965536\n"
                          "nr_periods 0\n") == {"usage_usec": 15423, "user_usec": 457305,
                                                "system_usec": 14965536, "nr_periods": 0}


def test_memtouch_swap_cycles_on_the_host(tmp_path):
    """memtouch --reclaim writes the mapping's size to the file each cycle, prints the stat
    file after it and verifies every page (here a plain file stands in for memory.reclaim:
    nothing is reclaimed, the cycle protocol is what is checked)."""
    memtouch = build_guest_tools(Target.default())["/usr/bin/memtouch"]
    reclaim, stat = tmp_path / "memory.reclaim", tmp_path / "mm_stat"
    reclaim.write_text("")
    stat.write_text("1 2 3\n")
    out = subprocess.run([str(memtouch), "--mb", "4", "--cycles", "3", "--reclaim", str(reclaim),
                          "--stat", str(stat)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cycles = parse_swap_cycles(out.stdout)
    assert len(cycles) == 3 and all(c["stat"] == "1 2 3" for c in cycles)
    assert reclaim.read_text() == str(4 << 20)
    report = parse_tool_output(out.stdout, "memtouch")
    assert report.ok and report.int("cycles") == 3 and report.int("bytes") == 3 * (4 << 20)


@pytest.mark.parametrize("args", [["--mb", "4", "--cycles", "2"],
                                  ["--mb", "4", "--reclaim", "/x"],
                                  ["--mb", "4", "--stat", "/x"]])
def test_memtouch_cycle_options_come_together(args):
    memtouch = build_guest_tools(Target.default())["/usr/bin/memtouch"]
    out = subprocess.run([str(memtouch), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "usage" in out.stderr


def test_memtouch_reclaim_that_fails_is_an_error(tmp_path):
    memtouch = build_guest_tools(Target.default())["/usr/bin/memtouch"]
    out = subprocess.run([str(memtouch), "--mb", "1", "--cycles", "1", "--reclaim",
                          str(tmp_path / "no" / "such")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "status=error" in out.stdout


def test_recorder_perf():
    rec = Recorder()
    rec.perf("fio.seqwrite", 38, "MiB/s", "higher")
    rec.perf("mem.written.mem_used_total", 16510976, "bytes", "lower", exact=True)
    assert rec.metrics["perf"] == {
        "fio.seqwrite": {"value": 38.0, "unit": "MiB/s", "better": "higher", "exact": False},
        "mem.written.mem_used_total": {"value": 16510976.0, "unit": "bytes", "better": "lower",
                                       "exact": True}}
    with pytest.raises(ValueError, match="higher' or 'lower"):
        rec.perf("x", 1, "s", "faster")
    with pytest.raises(ValueError, match="finite"):
        rec.perf("x", float("nan"), "s", "lower")


@pytest.mark.slow
def test_perf_small_on_the_shared_build(kernel_build, tmp_path, zstest):
    """perf-small booted once: every test passes (their data checks included), every number
    has value/unit/better/exact, and every memory number is exact (the guest wrote the same
    data twice on a reset device and got the same values)."""
    out = tmp_path / "res"
    proc = zstest("boot-and-run", "--build", kernel_build, "--suite", "perf-small",
                  "--out", out, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    tests = {t["name"].split("::")[1]: t for t in results["tests"]}
    assert set(tests) == {"test_fio_raw_zram[quick]", "test_memory_identical_data[quick]",
                          "test_swap_cycles[quick]", "test_build_like[quick]"}
    perf = {}
    for t in tests.values():
        assert t["status"] == "passed", t["message"]
        perf.update(t["metrics"]["perf"])
    for name, m in perf.items():
        assert set(m) == {"value", "unit", "better", "exact"}, name
        assert isinstance(m["value"], float) and m["value"] >= 0 and m["unit"], name
        assert m["better"] in ("higher", "lower"), name
    memory = {n: m for n, m in perf.items() if n.startswith(("mem.", "zs."))}
    assert "zs.written.pages_used" in memory and "mem.written.mem_used_total" in memory
    not_exact = {n for n, m in memory.items() if not m["exact"]}
    assert not not_exact, tests["test_memory_identical_data[quick]"]["details"]["not_exact"]
    assert not any(m["exact"] for n, m in perf.items() if n not in memory)
    assert memory["zs.written.pages_used"]["value"] * 4096 == \
        memory["mem.written.mem_used_total"]["value"]
    for name in ("fio.seqwrite", "swap.out_s", "swap.in_s", "build.real_s"):
        assert perf[name]["value"] > 0, name
