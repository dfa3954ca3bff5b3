"""Coverage-guided mutate: which tests a mutant runs, in which order, and not_covered.

On the coverage map recorded from a real default-suite `--coverage` run (tests/data/
coverage-map-default-6.1.json, see test_affected.py) and the real mutants of zs_page_migrate()
in Debian's 6.1 tree (when its mm/zsmalloc.c is the one the map was recorded on).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zstest.coverage import BOOT
from zstest.manifests import load_coverage_map
from zstest.mutate.guided import guide, mutant_lines
from zstest.mutate.run import exit_code_for, render_summary, summarize

MAP = Path(__file__).parent / "data" / "coverage-map-default-6.1.json"
ZS = "mm/zsmalloc.c"
HOTUNPLUG = "test_migration_hotunplug.py::test_hotunplug_migrates_zspages"


@pytest.fixture(scope="module")
def cmap():
    return load_coverage_map(MAP)


def _counts(cmap, test: str) -> dict[int, int]:
    return {n: c for n, c in cmap.tests[test]["files"].get(ZS, {}).get("lines", [])}


def _executed_by_anyone(cmap) -> set[int]:
    return {n for t in cmap.tests for n in _counts(cmap, t)}


def test_a_mutant_runs_the_tests_that_ran_its_line_likeliest_first(cmap):
    start, end = cmap.files[ZS]["functions"]["zs_page_migrate"]
    line = next(n for n in range(start, end) if _counts(cmap, HOTUNPLUG).get(n)
                and not _counts(cmap, BOOT).get(n))
    g = guide(cmap, ZS, line, line)
    ran = {t for t in cmap.tests if _counts(cmap, t).get(line)}
    assert set(g.tests) == ran and HOTUNPLUG in ran
    assert g.hits == {t: _counts(cmap, t)[line] for t in ran}
    rate = [g.hits[t] / max(cmap.tests[t]["duration_s"], 1.0) for t in g.tests]
    assert rate == sorted(rate, reverse=True)          # executions per second, highest first
    assert g.why == f"{len(ran)} test(s) executed {ZS}:{line}"


def test_a_line_no_test_ran_is_not_covered(cmap):
    executable = set(cmap.files[ZS]["executable"])
    line = min(executable - _executed_by_anyone(cmap))
    g = guide(cmap, ZS, line, line)
    assert g.tests == [] and g.why == f"no test executed {ZS}:{line} in the baseline's coverage run"


def test_a_line_the_boot_runs_gets_the_whole_selection(cmap):
    line = min(_counts(cmap, BOOT))
    g = guide(cmap, ZS, line, line)
    assert g.tests is None and g.why.endswith("runs while the kernel boots, before every test")


def test_a_file_without_coverage_gets_the_whole_selection(cmap):
    g = guide(cmap, "mm/compaction.c", 100, 100)
    assert g.tests is None and g.why == "the coverage map has no line coverage of mm/compaction.c"


def test_only_tests_of_the_selection_are_candidates(cmap):
    start, end = cmap.files[ZS]["functions"]["zs_page_migrate"]
    line = next(n for n in range(start, end) if _counts(cmap, HOTUNPLUG).get(n)
                and not _counts(cmap, BOOT).get(n))
    assert guide(cmap, ZS, line, line, selection=[HOTUNPLUG]).tests == [HOTUNPLUG]
    assert guide(cmap, ZS, line, line, selection=["test_boot.py::test_exit_status_is_kept"]).tests == []


def test_an_insertion_is_judged_on_the_line_it_precedes():
    assert list(mutant_lines(20, 19)) == [20]            # return_early before line 20
    assert list(mutant_lines(20, 22)) == [20, 21, 22]     # a three-line statement deleted


def test_the_real_mutants_of_zs_page_migrate(cmap):
    """Every mutant `zstest mutate --file mm/zsmalloc.c --function zs_page_migrate` makes gets
    a plan from the map: none needs the whole selection (nothing there runs at boot)."""
    from zstest.mutate.run import MutateRequest, plan_mutants
    from zstest.settings import resolve_kernel
    tree = Path(resolve_kernel(None))
    if not (tree / ZS).is_file() or _version(tree) != cmap.data.get("kernel_version"):
        pytest.skip(f"{tree} is not the 6.1 tree the map was recorded on")
    plan = plan_mutants(MutateRequest(file=ZS, functions=["zs_page_migrate"]))
    guidance = [guide(cmap, ZS, p.mutant.line, p.mutant.end_line) for p in plan.mutants]
    assert all(g.tests is not None for g in guidance)
    covered = [g for g in guidance if g.tests]
    assert covered and all(HOTUNPLUG in g.tests for g in covered)


def _version(tree: Path) -> str:
    text = (tree / "Makefile").read_text()
    fields = {k: re.search(rf"^{k} = (\S*)", text, re.M).group(1)
              for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL")}
    return f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}"


def _rec(verdict, function="zs_page_migrate"):
    return {"id": f"m{id(object())}", "file": ZS, "line": 1, "function": function,
            "operator": "delete", "original": "x();", "mutated": "", "patch": None,
            "patch_subject": None, "verdict": verdict}


def test_not_covered_is_counted_apart_and_scored_as_a_miss():
    records = [_rec("killed"), _rec("killed"), _rec("survived"), _rec("not_covered")]
    row = summarize(records, per_patch=False)["function"][f"{ZS}:zs_page_migrate"]
    assert row["not_covered"] == 1 and row["survived"] == 1 and row["score"] == 0.5
    text = render_summary(records, per_patch=False)
    assert "not covered" in text.splitlines()[1]
    assert re.search(r"all mutants +2 +1 +0 +0 +1 +0 +50%", text), text
    assert "not covered (no test executed the line; not built, not run):" in text
    assert exit_code_for([_rec("killed"), _rec("not_covered")]) == 1
    # without a not_covered mutant the table keeps its columns
    assert "not covered" not in render_summary([_rec("killed")], per_patch=False)
