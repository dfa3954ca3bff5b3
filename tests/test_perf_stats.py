"""`compare --perf`'s statistics, verdicts and outputs on recorded real runs of the perf suite.

tests/data/perf/compare/<case>/{a,b}/run-NN/results.json are copies of the results.json of real
`zstest compare --perf A B --suite perf-small` runs on this project's machine (see its
README.md): `same` (the shared base build on both sides), `waste`, `slow` and `comment` (the
base build against the kernel-patches/fixtures/perf-* fixtures). Where a test needs a side
the recorded runs do not have (a kernel without the classes file, another arch), it copies a
recorded run and changes the one field it is about.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from junitparser import JUnitXml
from scipy import stats as sps

from conftest import REPO, run_zstest
from zstest.errors import BadInput
from zstest.perf import render, stats
from zstest.perf.run import cpu_list, parse_cpus, run_order
from zstest.perf.samples import load_side_runs
from zstest.perf.verdict import (IMPROVED, REGRESSED, SAME, TOO_FEW, Thresholds, compare_runs,
                                 judge)

DATA = REPO / "tests" / "data" / "perf" / "compare"
THROUGHPUT = ("fio.seqwrite", "fio.seqread", "fio.randread")


def sides(case: str):
    return load_side_runs("A", DATA / case / "a"), load_side_runs("B", DATA / case / "b")


def judged(case: str, th: Thresholds = Thresholds()):
    return compare_runs(*sides(case), th)


def by_name(cmp):
    return {m.name: m for m in cmp.metrics}


def copy_case(tmp_path: Path, case: str) -> Path:
    shutil.copytree(DATA / case, tmp_path / case)
    return tmp_path / case


def edit_runs(side_dir: Path, change) -> None:
    """change(results_data) on every recorded run of a side, written back."""
    for path in sorted(side_dir.rglob("results.json")):
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))


# ------------------------------------------------------------------ stats

def test_recorded_runs_are_read_per_side():
    a, b = sides("same")
    assert len(a.runs) == len(b.runs) == 3
    assert all(r.status == "passed" and r.accel == "tcg" and r.target.label == "x86_64"
               for r in a.runs + b.runs)
    assert {"fio.seqwrite", "swap.out_s", "mem.written.mem_used_total",
            "zs.written.pages_used"} <= set(a.names())


def test_describe_is_welch_with_the_change_as_b_minus_a():
    a, b = sides("slow")
    va, vb = a.values("fio.seqwrite"), b.values("fio.seqwrite")
    s = stats.describe(va, vb)
    assert s.mean_a == pytest.approx(np.mean(va)) and s.sd_b == pytest.approx(np.std(vb, ddof=1))
    assert s.p == pytest.approx(sps.ttest_ind(va, vb, equal_var=False).pvalue)
    assert s.change_pct == pytest.approx(100 * (s.mean_b - s.mean_a) / s.mean_a)
    # the CI is of B - A, in % of A's mean, and holds the change itself
    low, high = s.ci_pct
    assert low < s.change_pct < high
    assert s.change_pct < 0          # the slow kernel writes less per second


def test_no_p_value_without_two_runs_or_without_variance():
    a, b = sides("same")
    one = stats.describe(a.values("fio.seqwrite")[:1], b.values("fio.seqwrite"))
    assert one.p is None and one.ci_pct is None and one.sd_a is None
    exact = stats.describe(a.values("mem.written.mem_used_total"),
                           b.values("mem.written.mem_used_total"))
    assert exact.p is None and exact.identical_a and exact.identical_b


# ------------------------------------------------------------------ verdicts

def test_exact_metrics_are_identical_between_runs_of_one_kernel():
    cmp = judged("same")
    exact = [m for m in cmp.metrics if m.exact]
    assert len(exact) >= 7
    for m in exact:
        assert m.stats.identical_a and m.stats.identical_b, m.name
        assert m.verdict == SAME and m.stats.change_pct == 0, m.name
    assert cmp.accel == "tcg"


def test_waste_is_flagged_on_memory():
    cmp = judged("waste")
    regressed = {m.name for m in cmp.regressed}
    assert regressed and all(by_name(cmp)[n].exact for n in regressed), regressed
    assert cmp.exit_code == 1
    for name in regressed:
        m = by_name(cmp)[name]
        assert m.stats.change_pct >= 1 and m.stats.identical_a and m.stats.identical_b


def test_slow_is_flagged_on_throughput():
    cmp = judged("slow")
    m = by_name(cmp)["fio.seqwrite"]
    assert m.verdict == REGRESSED
    assert m.stats.p < 0.05 and m.stats.change_pct <= -5
    assert cmp.exit_code == 1 and [x.name for x in cmp.regressed] == ["fio.seqwrite"]


def test_comment_only_is_no_significant_change():
    cmp = judged("comment")
    assert cmp.exit_code == 0 and not cmp.regressed
    assert all(m.verdict == SAME and m.stats.change_pct == 0 for m in cmp.metrics if m.exact)


def test_direction_follows_better():
    # A and B swapped: the slow kernel as A, so B writes faster: improved, not regressed
    a, b = sides("slow")
    back = compare_runs(b, a)
    assert by_name(back)["fio.seqwrite"].verdict == IMPROVED
    waste = by_name(judged("waste"))
    waste_back = by_name(compare_runs(*reversed(sides("waste"))))
    for name, m in waste.items():
        if m.exact and m.verdict in (REGRESSED, IMPROVED):
            assert waste_back[name].verdict == ({REGRESSED, IMPROVED} - {m.verdict}).pop(), name


def test_thresholds_are_settable():
    slow = by_name(judged("slow", Thresholds(min_change_pct=1000)))["fio.seqwrite"]
    assert slow.verdict == SAME
    strict = by_name(judged("slow", Thresholds(p=1e-12)))["fio.seqwrite"]
    assert strict.verdict == SAME
    waste = judged("waste", Thresholds(exact_change_pct=1000))
    assert not waste.regressed
    with pytest.raises(BadInput):
        Thresholds(p=1.5).check()
    with pytest.raises(BadInput):
        Thresholds(min_runs=1).check()


def test_fewer_than_three_runs_is_too_few_for_timings(tmp_path):
    case = copy_case(tmp_path, "slow")
    for n in (3, 4, 5):
        shutil.rmtree(case / "b" / f"run-{n:02d}")
    cmp = compare_runs(*[load_side_runs(t, case / t.lower()) for t in "AB"])
    m = by_name(cmp)["fio.seqwrite"]
    assert m.verdict == TOO_FEW and m.stats.p is not None   # the figure is shown, not judged
    assert "5 run(s) on A, 2 on B" in " ".join(m.notes)
    assert cmp.exit_code == 0


def test_exact_metrics_need_no_test_with_one_run(tmp_path):
    case = copy_case(tmp_path, "waste")
    for side in "ab":
        for n in (2, 3):
            shutil.rmtree(case / side / f"run-{n:02d}")
    cmp = compare_runs(*[load_side_runs(t, case / t.lower()) for t in "AB"])
    m = by_name(cmp)["mem.written.mem_used_total"]
    assert m.verdict == REGRESSED and m.stats.n_a == m.stats.n_b == 1
    assert "A: one run, equality between runs not seen" in m.notes
    assert by_name(cmp)["fio.seqwrite"].verdict == TOO_FEW


def test_a_metric_missing_on_one_side_is_not_measured_never_zero(tmp_path):
    # an older kernel without the zsmalloc classes file records no zs.* metric
    case = copy_case(tmp_path, "waste")

    def drop_classes(data):
        for t in data["tests"]:
            perf = (t.get("metrics") or {}).get("perf") or {}
            for name in [n for n in perf if n.startswith("zs.")]:
                del perf[name]
    edit_runs(case / "a", drop_classes)
    cmp = compare_runs(*[load_side_runs(t, case / t.lower()) for t in "AB"])
    zs = [m for m in cmp.metrics if m.name.startswith("zs.")]
    assert zs and all(m.verdict == "not measured on A" and m.stats is None for m in zs)
    assert all(not m.values_a and m.values_b for m in zs)
    assert "not measured on A" in render.render_table(cmp)


def test_a_metric_not_exact_in_every_run_is_judged_by_welch(tmp_path):
    case = copy_case(tmp_path, "same")
    first = next(iter(sorted((case / "a").rglob("results.json"))))
    data = json.loads(first.read_text())
    for t in data["tests"]:
        perf = (t.get("metrics") or {}).get("perf") or {}
        if "mem.written.mem_used_total" in perf:
            perf["mem.written.mem_used_total"]["exact"] = False
    first.write_text(json.dumps(data))
    a, b = (load_side_runs(t, case / t.lower()) for t in "AB")
    m = judge("mem.written.mem_used_total", a, b, Thresholds())
    assert not m.exact and m.verdict == SAME
    assert any("not exact in every run" in n for n in m.notes)


def test_bad_perf_entries_are_bad_input(tmp_path):
    case = copy_case(tmp_path, "same")

    def sideways(data):
        for t in data["tests"]:
            for entry in ((t.get("metrics") or {}).get("perf") or {}).values():
                entry["better"] = "sideways"
    edit_runs(case / "a" / "run-01", sideways)
    with pytest.raises(BadInput, match="better is 'sideways'"):
        load_side_runs("A", case / "a")


def test_a_compare_dir_is_not_one_side(tmp_path):
    # both sides and the warm-ups live under a compare --perf out dir: never read as one side
    out = tmp_path / "perf"
    shutil.copytree(DATA / "same", out)
    render.write_outputs(judged("same"), out)
    with pytest.raises(BadInput, match="holding both sides; name .*/a or .*/b"):
        load_side_runs("A", out)
    assert len(load_side_runs("A", out / "a").runs) == 3


def test_another_arch_is_refused(tmp_path):
    case = copy_case(tmp_path, "same")
    edit_runs(case / "b", lambda d: d["kernel"].update(arch="arm64", page_size=65536))
    a, b = (load_side_runs(t, case / t.lower()) for t in "AB")
    with pytest.raises(BadInput, match="ran arm64 64K: that compares"):
        compare_runs(a, b)
    assert compare_runs(a, b, allow_arch_mismatch=True).arch == "arm64 64K / x86_64"


# ------------------------------------------------------------------ render

def test_table_in_the_cover_letter_layout():
    cmp = judged("slow")
    text = render.render_table(cmp)
    lines = text.splitlines()
    assert lines[0].startswith("zstest compare --perf: ") and "regressed" in lines[0]
    assert "TCG: timings comparable only side by side on this host" in text
    header = next(line for line in lines if line.startswith("metric"))
    assert header.split() == ["metric", "A", "mean", "±", "sd", "B", "mean", "±", "sd", "change",
                              "95%", "CI", "p", "verdict"]
    row = next(line for line in lines if line.startswith("fio.seqwrite (MiB/s, higher is better)"))
    m = by_name(cmp)["fio.seqwrite"]
    assert row.endswith("regressed") and f"{m.stats.change_pct:+.1f}%" in row
    waste = render.render_table(judged("waste")).splitlines()
    exact_row = next(line for line in waste if line.startswith("mem.written.mem_used_total"))
    assert "(all 3 =)" in exact_row and " exact " in exact_row and exact_row.endswith("regressed")


def test_outputs_json_junit_summary_plots(tmp_path):
    cmp = judged("waste")
    plots = render.write_outputs(cmp, tmp_path)
    assert set(plots) == {m.name for m in cmp.metrics}
    data = json.loads((tmp_path / "perf.json").read_text())
    assert data["schema"] == 1 and data["exit_code"] == 1 and data["accel"] == "tcg"
    regressed = [m for m in data["metrics"] if m["verdict"] == REGRESSED]
    assert {m["name"] for m in regressed} == {m.name for m in cmp.regressed}
    for m in data["metrics"]:
        png = Path(m["plot"])
        assert png.parent == tmp_path / "plots"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", png.read_bytes()[16:24])
        assert (width, height) == (600, 320)
    xml = JUnitXml.fromfile(str(tmp_path / render.JUNIT_XML))
    suite = next(iter(xml))
    assert suite.failures == len(cmp.regressed) and suite.tests == len(cmp.metrics)
    props = {p.name: p.value for p in suite.properties()}
    first = cmp.regressed[0]
    assert props[f"{first.name}.verdict"] == REGRESSED and props["accel"] == "tcg"
    summary = (tmp_path / "summary.txt").read_text()
    assert f"REGRESSED {first.name}: " in summary
    assert str(tmp_path / "plots" / render.plot_name(first.name)) in summary


# ------------------------------------------------------------------ the CLI on recorded runs

def test_cli_on_results_dirs_exit_codes(tmp_path):
    waste = run_zstest("compare", "--perf", DATA / "waste" / "a", DATA / "waste" / "b",
                       "--out", tmp_path / "w", timeout=300)
    assert waste.returncode == 1, waste.stderr[-2000:]
    assert waste.stdout.startswith("zstest compare --perf: ")
    assert (tmp_path / "w" / "perf.txt").read_text() == waste.stdout
    comment = run_zstest("compare", "--perf", DATA / "comment" / "a", DATA / "comment" / "b",
                         "--out", tmp_path / "c", "--json", "-", timeout=300)
    assert comment.returncode == 0, comment.stderr[-2000:]
    assert json.loads(comment.stdout)["exit_code"] == 0


@pytest.mark.parametrize("args, words", [
    (["--perf", DATA / "same" / "a"], "two sides"),
    (["--perf", DATA / "same" / "a", REPO / "tests" / "data" / "compare" / "default-passed"],
     "recorded a perf metric"),
    (["--perf", DATA / "same" / "a", DATA / "same" / "b", "--p-threshold", "2"],
     "--p-threshold must be between 0 and 1"),
    (["--perf", DATA / "same" / "a", DATA / "same" / "b", "--host-cpus", "x"],
     "not a CPU list"),
])
def test_cli_bad_input_exits_2(tmp_path, args, words):
    proc = run_zstest("compare", *args, "--out", tmp_path / "o", timeout=300)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_cli_refuses_runs_made_against_a_side_to_boot(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    shutil.copy(REPO / "tests" / "data" / "compare" / "builds" / "good-3-run" / "build.json", build)
    proc = run_zstest("compare", "--perf", DATA / "same" / "a", build, "--out", tmp_path / "o",
                      timeout=300)
    assert proc.returncode == 2 and "would not be interleaved" in proc.stderr


def test_cli_refuses_another_arch(tmp_path):
    case = copy_case(tmp_path, "same")
    edit_runs(case / "b", lambda d: d["kernel"].update(arch="i386", page_size=4096))
    proc = run_zstest("compare", "--perf", case / "a", case / "b", "--out", tmp_path / "o",
                      timeout=300)
    assert proc.returncode == 2 and "compares the architectures" in proc.stderr


def test_cli_refuses_builds_of_another_target_before_booting(tmp_path):
    builds = []
    for name, arch in (("a", None), ("b", {"name": "arm64", "page_size": 65536})):
        build = tmp_path / name
        build.mkdir()
        data = json.loads((REPO / "tests" / "data" / "compare" / "builds" / "good-3-run" /
                           "build.json").read_text())
        if arch:
            data["arch"] = arch
        (build / "build.json").write_text(json.dumps(data))
        builds.append(build)
    proc = run_zstest("compare", "--perf", *builds, "--out", tmp_path / "o", timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "is built for x86_64 and B" in proc.stderr and "for arm64 64K: that" in proc.stderr
    assert not (tmp_path / "o" / "a").exists()      # refused before any boot


# ------------------------------------------------------------------ run order, CPUs

def test_runs_alternate_after_the_warmups():
    assert run_order(2, 1) == [("a", "warmup/a/run-01"), ("b", "warmup/b/run-01"),
                               ("a", "a/run-01"), ("b", "b/run-01"),
                               ("b", "b/run-02"), ("a", "a/run-02")]
    # which side boots first alternates: neither always takes the even places
    order = [s for s, _ in run_order(4, 0)]
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert sorted(i % 2 for i, s in enumerate(order) if s == "a") == [0, 0, 1, 1]


def test_cpu_lists():
    import os
    mine = os.sched_getaffinity(0)
    assert parse_cpus(cpu_list(mine)) == mine
    assert cpu_list({0, 1, 3, 5, 6, 7}) == "0-1,3,5-7"
    with pytest.raises(BadInput, match="does not offer"):
        parse_cpus(str(max(mine) + 64))
