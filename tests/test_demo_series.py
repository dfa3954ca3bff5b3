"""The project's demo series (kernel-patches/demo-migrated), end to end on Debian's 6.1.

v1 has two real defects: patch 1 uses a field that patch 2 adds (it does not build on its own)
and patch 3 adds an inverted WARN_ON_ONCE that fires on the first zsmalloc page migration.
v2 reorders the first two and fixes the check. These tests run the real pipeline on both:
bisect names patch 3 and skips prefix 1; compare shows the fixed test and the build fix;
the WARN is decoded to mm/zsmalloc.c and pointed at patch 3.

One module-scoped run of each keeps the cost to ~8 minutes: only the hot-unplug migration test
runs in the guest (the WARN fires there, and it checks the new mm_stat column).
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO, run_zstest

pytestmark = pytest.mark.slow

DEMO = REPO / "kernel-patches" / "demo-migrated"
SELECT = ["--suite", "migration", "-k", "hotunplug"]


def _json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def demo(tmp_path_factory, kernel_build):
    """v1 and v2 each built with --each and run; v1 bisected. Paths and exit codes."""
    # kernel_build: the shared 6.1 base build exists, so these builds are incremental.
    root = tmp_path_factory.mktemp("demo")
    runs = {}
    for rev in ("v1", "v2"):
        res = run_zstest("run", "--series", str(DEMO / rev), "--each", *SELECT,
                         "--out", str(root / f"{rev}-results"),
                         "--build-out", str(root / f"{rev}-build"), timeout=1800)
        runs[rev] = res
    bis = run_zstest("bisect", "--series", str(DEMO / "v1"), *SELECT,
                     "--out", str(root / "bisect"), timeout=2400)
    return {"root": root, "runs": runs, "bisect": bis}


def test_v1_patch_1_does_not_build_alone_but_the_series_is_tested(demo):
    root = demo["root"]
    res = demo["runs"]["v1"]
    build = _json(root / "v1-build" / "build.json")
    patches = build["series"]["patches"]
    assert [p["build"] for p in patches] == ["failed", "ok", "ok"], patches
    assert "pages_migrated" in " ".join(patches[0]["errors"])
    assert build["bootable"] is True and build["status"] == "failed"
    # The tests ran on the whole series and the WARN failed the migration test: exit 1.
    assert res.returncode == 1, res.stdout + res.stderr
    assert "breaks the build" in res.stderr
    results = _json(root / "v1-results" / "results.json")
    failed = [t for t in results["tests"] if t["status"] == "failed"]
    assert failed and any(s["kind"] == "warning" for t in failed for s in t["splats"]), failed


def test_v2_builds_every_patch_and_passes_with_the_new_counter(demo):
    root = demo["root"]
    res = demo["runs"]["v2"]
    assert res.returncode == 0, res.stdout + res.stderr
    build = _json(root / "v2-build" / "build.json")
    assert [p["build"] for p in build["series"]["patches"]] == ["ok", "ok", "ok"]
    results = _json(root / "v2-results" / "results.json")
    hot = next(t for t in results["tests"] if "hotunplug" in t["name"])
    assert hot["status"] == "passed"
    # The demo's own counter moved: mm_stat has a 10th column and it rose.
    assert hot["details"]["pages_migrated_delta"] > 0, hot["details"]


def test_bisect_names_patch_3_and_skips_the_broken_prefix(demo):
    res = demo["bisect"]
    assert res.returncode == 1, res.stdout + res.stderr
    data = _json(demo["root"] / "bisect" / "bisect.json")
    assert data["first_bad"] == 3, data["message"]
    verdicts = {s["prefix"]: s["verdict"] for s in data["steps"]}
    assert verdicts == {1: "skip", 2: "good", 3: "bad"}, verdicts
    skipped = data["steps"][0]
    assert "zram_drv.c" in skipped["reason"] and "pages_migrated" in skipped["reason"]
    bad = data["steps"][-1]
    assert any("zs_page_migrate" in (sp["title"] or "") for sp in bad["splats"]), bad["splats"]
    assert "the first bad patch is 3/3" in res.stdout
    assert (demo["root"] / "bisect" / "bisect.txt").is_file()


def test_the_warn_is_decoded_and_points_at_patch_3(demo):
    results = _json(demo["root"] / "v1-results" / "results.json")
    splats = [s for t in results["tests"] for s in t["splats"]]
    assert splats
    decoded = splats[0].get("decoded")
    assert decoded, "the splat was not decoded"
    frames = decoded["frames"]
    assert any(f.get("file") == "mm/zsmalloc.c" and f.get("line") for f in frames), frames
    named = [p["index"] for p in decoded["patches"]]
    assert named and named[0] == 3, decoded["patches"]


def test_compare_v1_v2_shows_the_fixes_and_reverse_regresses(demo):
    root = demo["root"]
    fwd = run_zstest("compare", str(root / "v1-results"), str(root / "v2-results"),
                     "--json", str(root / "cmp.json"))
    assert fwd.returncode == 0, fwd.stdout + fwd.stderr
    cmp = _json(root / "cmp.json")
    text = json.dumps(cmp)
    assert "fixed" in text and "build fixed" in text, fwd.stdout
    zram = next(p for p in cmp["patches"] if p["subject"].startswith("zram: show"))
    assert (zram["index_a"], zram["verdict"]) == (1, "build fixed"), cmp["patches"]
    assert "hotunplug" in fwd.stdout
    rev = run_zstest("compare", str(root / "v2-results"), str(root / "v1-results"))
    assert rev.returncode == 1, rev.stdout + rev.stderr
    assert "regressed" in rev.stdout


def test_report_is_ready_for_the_list(demo):
    res = run_zstest("report", str(demo["root"] / "v1-results"))
    assert res.returncode == 0, res.stderr
    text = res.stdout
    # prose wraps at 72 columns; a line holding a path:line or a splat title is never cut
    too_long = [line for line in text.splitlines() if len(line) > 72]
    assert all(re.search(r"[\w.-]+/[\w./-]+:\d+", line) for line in too_long), too_long
    for needle in ("zram: show pages_migrated in mm_stat", "mm/zsmalloc.c", "It points at patch 3",
                   "zstest run --series"):
        assert needle in text, needle
