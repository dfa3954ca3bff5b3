"""`zstest run --affected`: the per-test coverage map and the selection made from it.

The unit tests read a coverage map recorded from a real `zstest run --coverage` of the default
suite (37 passed, 4 skipped) on Debian's 6.1.192 (`base`, x86_64, TCG, 2026-12-07): the map that
run kept in the cache, re-serialized without indentation as tests/data/coverage-map-default-6.1.json;
and the fixture series kernel-patches/fixtures/affected-migrate (one line of zs_page_migrate()). The slow test makes its own map of the base with three tests of
the quick suite, then runs the fixture with --affected and shows the selection narrowed to the
boot checks and the hot-unplug test, which executes the changed line. The tests of the map's
choice narrow the recorded map to what `--suite migration` or a -k run would have recorded.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from zstest.affected import (SMOKE, changed_old_lines, map_key, nearest_map, select,
                             summary_lines, line_hits)
from zstest.coverage import BOOT
from zstest.errors import BadInput
from zstest.manifests import load_coverage_map, save_coverage_map

DATA = Path(__file__).parent / "data"
MAP = DATA / "coverage-map-default-6.1.json"
FIXTURE = REPO / "kernel-patches" / "fixtures" / "affected-migrate"
HOTUNPLUG = "test_migration_hotunplug.py::test_hotunplug_migrates_zspages"
ZS = "mm/zsmalloc.c"


@pytest.fixture(scope="module")
def cmap():
    return load_coverage_map(MAP)


@pytest.fixture(scope="module")
def suite(cmap) -> list[str]:
    """The suite's tests as the recorded run ran them (the map keeps its order)."""
    return [name for name in cmap.tests if name != BOOT]


@pytest.fixture(scope="module")
def fixture_line() -> int:
    """The old-side line the fixture series changes in mm/zsmalloc.c."""
    changed, whole = changed_old_lines(next(FIXTURE.glob("*.patch")).read_text())
    assert whole == [] and list(changed) == [ZS] and len(changed[ZS]) == 1
    return next(iter(changed[ZS]))


def _ran(cmap, test: str, line: int) -> int:
    return dict(map(tuple, cmap.tests[test]["files"].get(ZS, {}).get("lines", []))).get(line, 0)


def _function_of(cmap, line: int) -> str:
    return next(n for n, (s, e) in cmap.files[ZS]["functions"].items() if s <= line <= e)


def test_the_recorded_map_is_a_real_runs(cmap, suite):
    """Per test: executed lines with counts and the functions they are in; the boot's own."""
    assert cmap.config["arch"] == "x86_64" and cmap.suite == "default"
    assert cmap.key == map_key(cmap.source, cmap.config)
    assert len(suite) >= 20 and BOOT in cmap.tests
    hot = cmap.tests[HOTUNPLUG]
    assert hot["status"] == "passed" and "zs_page_migrate" in hot["files"][ZS]["functions"]
    executable = set(cmap.files[ZS]["executable"])
    assert all(n in executable and c > 0 for n, c in hot["files"][ZS]["lines"])


def test_the_fixture_line_selects_the_tests_that_ran_it(cmap, suite, fixture_line):
    assert _function_of(cmap, fixture_line) == "zs_page_migrate"
    sel = select(cmap, {ZS: {fixture_line}}, [], suite)
    assert sel.mode == "affected"
    ran = {t for t in suite if _ran(cmap, t, fixture_line)}
    smoke = {t for t in suite if t.startswith(SMOKE)}
    assert HOTUNPLUG in ran                      # hot-unplug migrates zspages every time
    assert {t["name"] for t in sel.selected} == ran | smoke
    assert {t["name"] for t in sel.skipped} == set(suite) - ran - smoke
    assert len(sel.skipped) > len(sel.selected)    # narrower: the point of it
    why = {t["name"]: t["why"] for t in sel.selected}
    assert why[HOTUNPLUG].startswith(f"executed {ZS}:{fixture_line} (")
    assert all(t["why"] == "executed none of the changed lines in the map's run"
               for t in sel.skipped)
    assert sel.tests == [t for t in suite if t in ran | smoke]    # in the suite's order


def test_a_line_gcov_does_not_count_takes_its_functions_tests(cmap, suite, fixture_line):
    """A comment inside zs_page_migrate(): every test that ran any line of the function."""
    start, end = cmap.files[ZS]["functions"]["zs_page_migrate"]
    executable = set(cmap.files[ZS]["executable"])
    comment = next(n for n in range(start + 1, end) if n not in executable)
    hits, what = line_hits(cmap, ZS, comment)
    assert what.startswith("zs_page_migrate() (around")
    anyline = {t for t in suite if any(_ran(cmap, t, n) for n in range(start, end + 1))}
    assert set(hits) == anyline and HOTUNPLUG in hits


def test_a_line_the_boot_runs_means_the_whole_suite(cmap, suite):
    boot_lines = [n for n, c in cmap.tests[BOOT]["files"][ZS]["lines"]]
    assert boot_lines, "zs_init() runs while booting"
    sel = select(cmap, {ZS: {boot_lines[0]}}, [], suite)
    assert sel.mode == "full" and sel.tests is None
    assert "runs while the kernel boots" in sel.reason


@pytest.mark.parametrize("path, whole", [("include/linux/zsmalloc.h", False),
                                         ("mm/compaction.c", False),
                                         ("mm/zsmalloc.c", True)])
def test_what_the_map_cannot_answer_runs_everything(cmap, suite, path, whole):
    """A header, a file gcov did not instrument, a file added, removed or renamed."""
    sel = select(cmap, {} if whole else {path: {10}}, [path] if whole else [], suite)
    assert sel.mode == "full" and sel.tests is None
    assert sel.reason == f"{path} changed and the map has no line coverage of it"


def test_documentation_only_runs_the_boot_checks(cmap, suite):
    sel = select(cmap, {"Documentation/admin-guide/blockdev/zram.rst": {3}}, [], suite)
    assert sel.mode == "affected"
    assert sel.tests == [t for t in suite if t.startswith(SMOKE)]


def test_tests_the_map_does_not_know_run(cmap, suite, fixture_line):
    new = "test_zram_new.py::test_something_new"
    sel = select(cmap, {ZS: {fixture_line}}, [], suite + [new])
    assert {"name": new, "why": "not in the map (no coverage recorded for it)"} in sel.selected


def test_a_test_that_failed_in_the_maps_run_is_not_skipped(cmap, suite, fixture_line):
    victim = next(t["name"] for t in select(cmap, {ZS: {fixture_line}}, [], suite).skipped)
    tests = dict(cmap.tests)
    tests[victim] = dict(tests[victim], status="failed")
    sel = select(replace(cmap, tests=tests), {ZS: {fixture_line}}, [], suite)
    assert {"name": victim, "why": "failed in the map's run (its coverage may be partial)"} \
        in sel.selected


def test_removed_lines_and_insertions_on_the_old_side():
    diff = """diff --git a/mm/zsmalloc.c b/mm/zsmalloc.c
--- a/mm/zsmalloc.c
+++ b/mm/zsmalloc.c
@@ -10,2 +9,0 @@ f
-	a();
-	b();
@@ -40,0 +39,1 @@ g
+	c();
@@ -50 +49 @@ h
-	d();
+	e();
diff --git a/mm/new.c b/mm/new.c
new file mode 100644
--- /dev/null
+++ b/mm/new.c
@@ -0,0 +1 @@
+int x;
"""
    changed, whole = changed_old_lines(diff)
    assert changed == {ZS: {10, 11, 40, 41, 50}}
    assert whole == ["mm/new.c"]


def _build_of(cmap, base: str, commit: str | None = None) -> dict:
    """build.json's fields nearest_map reads: cmap's tree and config, base (+ a series ending
    at commit)."""
    series = None if commit is None else {
        "source": "s", "revision": 1, "patches": [{"index": 1, "commit": commit, "sha256": "x"}]}
    return {"kernel": {"tree": cmap.source["tree"], "git_dir": cmap.source["git_dir"],
                       "base": base, "version": "6.1.192"},
            "series": series,
            "config": {"profiles": cmap.config["profiles"],
                       "fragments": cmap.config["fragments"]},
            "arch": {"name": cmap.config["arch"], "page_size": cmap.config["page_size"]}}


def _map_at(cmap, commit, created, series=None, only=None):
    """cmap as a map of another commit, made at created; only: the tests a narrower run (another
    suite, a -k) would have recorded, the boot's always among them."""
    tests = cmap.tests if only is None else {
        n: t for n, t in cmap.tests.items() if n == BOOT or only(n)}
    return replace(cmap, source=dict(cmap.source, commit=commit, series=series),
                   created=created, tests=tests)


def _migration_suite(name: str) -> bool:
    """What `--suite migration` runs (its files: test_migration_*.py)."""
    return name.startswith("test_migration_")


def test_the_nearest_map_same_source_then_base_then_newest(cmap):
    build = _build_of(cmap, "b" * 40, "c" * 40)
    at = partial(_map_at, cmap)
    older, newer = at("d" * 40, "2026-12-01T00:00:00Z"), at("e" * 40, "2026-12-02T00:00:00Z")
    base, same = at("b" * 40, "2026-11-01T00:00:00Z"), at("c" * 40, "2026-10-01T00:00:00Z")
    assert nearest_map(build, [older, newer, base, same]) == (same, "the same source")
    assert nearest_map(build, [older, newer, base]) == (
        base, "the series' base, without the series")
    assert nearest_map(build, [older, newer]) == (newer, "the newest map of this tree and config")
    other = replace(newer, config=dict(newer.config, profiles=["debug"]))
    assert nearest_map(build, [other]) == (None, "")


def test_of_other_commits_the_map_recording_the_asked_tests_beats_a_newer_narrow_one(cmap,
                                                                                       suite):
    """A newer map made by `--suite migration` knows two of the default suite's tests: the
    older map of the whole suite is taken for the default suite, the newer for migration."""
    build = _build_of(cmap, "b" * 40, "c" * 40)
    wide = _map_at(cmap, "d" * 40, "2026-12-01T00:00:00Z")
    narrow = _map_at(cmap, "e" * 40, "2026-12-02T00:00:00Z", only=_migration_suite)
    migration = [n for n in suite if _migration_suite(n)]
    assert 0 < len(migration) < len(narrow.tests) < len(wide.tests)
    assert nearest_map(build, [wide, narrow], suite) == (
        wide, "the map of this tree and config that records the most tests asked for")
    # both record every migration test: the newest, as before
    assert nearest_map(build, [wide, narrow], migration) == (
        narrow, "the newest map of this tree and config")


def test_within_a_rank_the_map_recording_more_of_the_suite_wins(cmap, suite):
    """Two maps of the base: the newer one a -k run made loses to the one that recorded the
    whole suite (the cache merges the runs of one source and config into one map, so there it
    is the last rank where maps compete; nearest_map judges whatever maps it is given)."""
    build = _build_of(cmap, "b" * 40, "c" * 40)
    keyword = _map_at(cmap, "b" * 40, "2026-12-02T00:00:00Z",
                      only=lambda n: "lifecycle" in n and "lz4" in n)
    whole = _map_at(cmap, "b" * 40, "2026-12-01T00:00:00Z")
    assert nearest_map(build, [keyword, whole], suite) == (
        whole, "the series' base, without the series")


def test_the_same_source_beats_a_wider_base_and_says_how_many_it_lacks(cmap, suite):
    """The rank stays: a migration map of the very commit built is taken over the base's map of
    the whole suite, and the reason says how many of the asked tests it does not know."""
    build = _build_of(cmap, "b" * 40, "c" * 40)
    same = _map_at(cmap, "c" * 40, "2026-12-01T00:00:00Z", only=_migration_suite)
    base = _map_at(cmap, "b" * 40, "2026-12-02T00:00:00Z")
    lacking = len([n for n in suite if not _migration_suite(n)])
    assert nearest_map(build, [base, same], suite) == (
        same, f"the same source; {lacking} of the {len(suite)} tests asked for are not in it "
              f"and run")
    new = "test_zram_new.py::test_something_new"
    assert nearest_map(build, [base], suite + [new]) == (
        base, f"the series' base, without the series; 1 of the {len(suite) + 1} tests asked "
              f"for is not in it and runs")


def test_the_selection_says_how_many_asked_tests_its_map_records(cmap, tmp_path):
    """affected_selection with the quick suite (collected on the host) and a migration map of
    the very commit built: results.json's selection.map.covers and how, and every test the
    map lacks runs."""
    from zstest.affected import affected_selection, suite_tests
    from zstest.manifests import save_build
    commit = cmap.source["commit"]
    save_build(tmp_path, _build_of(cmap, commit))
    migration = _map_at(cmap, commit, "2026-12-01T00:00:00Z", only=_migration_suite)
    asked = suite_tests("quick")
    known = [n for n in asked if n in migration.tests]
    assert known and len(known) < len(asked)
    sel = affected_selection(tmp_path, "quick", maps=[migration]).to_dict()
    lacking = len(asked) - len(known)
    assert sel["map"]["covers"] == {"recorded": len(known), "asked": len(asked)}
    assert sel["map"]["how"] == (f"the same source; {lacking} of the {len(asked)} tests asked "
                                 f"for are not in it and run")
    assert sel["mode"] == "affected" and [t["name"] for t in sel["skipped"]] == known
    assert {t["name"] for t in sel["selected"]} == set(asked) - set(known)


def test_summary_says_what_was_skipped_and_why(cmap, suite, fixture_line):
    sel = select(cmap, {ZS: {fixture_line}}, [], suite)
    sel.map = {"how": "the series' base, without the series", "commit": "a" * 40}
    lines = summary_lines(sel.to_dict())
    assert lines[0].startswith(f"selection: --affected, {len(sel.selected)} tests run, "
                               f"{len(sel.skipped)} skipped; changed lines {ZS}:{fixture_line}")
    assert f"  skipped {sel.skipped[0]['name']}: executed none of the changed lines" in lines[1]
    full = summary_lines({"mode": "full", "reason": "no coverage map of this tree and config"})
    assert full == ["selection: the whole suite (--affected: no coverage map of this tree and "
                    "config)"]


def test_a_misshapen_map_is_one_sentence(tmp_path):
    path = tmp_path / "m.json"
    save_coverage_map(path, {"tests": {"t.py::t": {"files": {ZS: {"lines": [[1, "x"]]}}}}})
    with pytest.raises(BadInput) as err:
        load_coverage_map(path)
    assert err.value.message.endswith("tests.t.py::t.files.mm/zsmalloc.c.lines[0] is an array, "
                                      "not a [line, count] pair.")


# ---------------------------------------------------------------- end to end

@pytest.mark.slow
def test_run_affected_on_a_one_line_change_in_zs_page_migrate(tmp_path):
    """A map of the base made by --coverage (three tests of the quick suite), then the fixture
    series with --affected: only the boot checks and the hot-unplug test run, the lifecycle
    test is skipped with its reason, and the hot-unplug test executes the changed line."""
    keyword = "test_boot or hotunplug or (lifecycle and lz4)"
    cov = run_zstest("run", "--coverage", "--suite", "quick", "-k", keyword, "--out",
                     tmp_path / "cov", "--build-out", tmp_path / "b-cov", timeout=3600)
    assert cov.returncode == 0, cov.stdout[-3000:] + cov.stderr[-3000:]
    kept = json.loads((tmp_path / "cov" / "results.json").read_text())["coverage"]["map"]
    base_map = load_coverage_map(kept)

    out = tmp_path / "affected"
    r = run_zstest("run", "--affected", "--series", FIXTURE, "--suite", "quick", "-k", keyword,
                   "--out", out, "--build-out", tmp_path / "b-fixture", timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    sel = results["selection"]
    assert sel["mode"] == "affected", sel
    assert sel["map"]["path"] == kept and sel["map"]["how"] == "the series' base, without the series"
    tree = Path(json.loads((tmp_path / "b-cov" / "build.json").read_text())["kernel"]["tree"])
    source = (tree / ZS).read_text().splitlines()        # the base, as the map saw it
    line = source.index("\tmemcpy(d_addr, s_addr, PAGE_SIZE);") + 1
    assert sel["changed_lines"] == {ZS: [line]}
    selected = [t["name"] for t in sel["selected"]]
    assert HOTUNPLUG in selected and _ran(base_map, HOTUNPLUG, line) > 0
    assert any(t["name"].startswith("test_zram_lifecycle.py::") for t in sel["skipped"])
    assert [t["name"] for t in results["tests"]] == selected      # exactly what was selected
    summary = (out / "summary.txt").read_text()
    assert "selection: --affected," in summary and "  skipped test_zram_lifecycle.py::" in summary


def test_affected_in_zstest_toml_is_run_affected(tmp_path, monkeypatch):
    """`affected = true` in [run] (and [boot-and-run]) is the --affected option's default."""
    from zstest import settings
    from zstest.cli import cli
    (tmp_path / "zstest.toml").write_text("[run]\naffected = true\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ZSTEST_KERNEL", raising=False)
    loaded = settings.load_settings(cli, ["run"])
    defaults = settings.default_map(cli, loaded)
    assert defaults["run"]["affected"] is True
    assert "affected" not in defaults.get("boot-and-run", {})


def test_a_kept_map_gains_the_tests_a_later_run_of_the_same_source_ran(cmap, tmp_path,
                                                                      monkeypatch):
    """A -k run of the same source and config adds its tests; a test run again is replaced."""
    from zstest.affected import keep_map
    monkeypatch.setenv("ZSTEST_CACHE", str(tmp_path / "cache"))
    names = [n for n in cmap.tests if n != BOOT]
    first = dict(cmap.data, tests={n: cmap.tests[n] for n in names[:2]})
    path = keep_map(first)
    assert path == tmp_path / "cache" / "coverage-maps" / f"{cmap.key}.json"
    again = dict(cmap.data, tests={names[1]: dict(cmap.tests[names[1]], duration_s=1.5),
                                   names[2]: cmap.tests[names[2]]})
    assert keep_map(again) == path
    merged = load_coverage_map(path)
    assert list(merged.tests) == [names[0], names[1], names[2]]
    assert merged.tests[names[1]]["duration_s"] == 1.5
    assert keep_map(dict(cmap.data, source=dict(cmap.source, commit=None))) is None


def test_nothing_changed_and_no_boot_check_asked_says_so(cmap, tmp_path):
    """A same-source run of a suite without boot checks (here -k on one migration test the map
    knows) has nothing to run: the whole selection runs, and the reason is that nothing changed,
    not that no test runs changed lines."""
    from zstest.affected import affected_selection, suite_tests
    from zstest.manifests import save_build
    commit = cmap.source["commit"]
    save_build(tmp_path, _build_of(cmap, commit))
    asked = suite_tests("migration", "hotunplug")
    assert asked and all(n in cmap.tests for n in asked)
    sel = affected_selection(tmp_path, "migration", "hotunplug", maps=[cmap]).to_dict()
    assert sel["mode"] == "full"
    assert sel["reason"] == "nothing changed since the map's run and the selection has no boot check"
