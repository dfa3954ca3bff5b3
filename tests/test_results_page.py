"""The static results page (zstest/htmlpage.py, `zstest report --html DIR`) on recorded results:
hostile text is escaped, and a real headless Chromium shows one row per run, in colour."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_zstest

COMPARE = REPO / "tests" / "data" / "compare"
DECODE = REPO / "tests" / "data" / "decode" / "demo-v1-migration"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def _chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"        # a new empty profile: nothing of anyone's
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120)


def test_hostile_titles_and_console_text_are_escaped(tmp_path):
    from zstest.htmlpage import PageRow, results_row, write_page
    run = tmp_path / "run"
    shutil.copytree(DECODE, run)
    data = json.loads((run / "results.json").read_text())
    failed = next(t for t in data["tests"] if t["splats"])
    failed["name"] = f"test_{HOSTILE}"
    failed["splats"][0]["title"] = f"WARNING: {HOSTILE}"
    (run / "results.json").write_text(json.dumps(data))
    rows = [results_row(run, title=f"zsmalloc: {HOSTILE}", author=HOSTILE),
            PageRow(title="a link that runs code", verdict="passed",
                    link="javascript:alert(3)", note=HOSTILE)]
    html = write_page(rows, tmp_path / "page").read_text()
    assert "<script" not in html and "<img" not in html and "javascript:" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img" in html
    assert html.count('<tr class="series"') == 2
    # the recorded run's own files are linked relative to the page
    assert 'href="../run/console.log"' in html and 'href="../run/results.json"' in html


def test_report_html_of_a_tree_has_one_row_per_results_dir(tmp_path):
    res = run_zstest("report", COMPARE, "--html", tmp_path / "page")
    assert res.returncode == 0, res.stderr
    html = (tmp_path / "page" / "index.html").read_text()
    found = sorted(p.parent for p in COMPARE.rglob("results.json"))
    assert html.count('<tr class="series"') == len(found) > 10
    assert 'id="demo-v1-migration"' in html and ">failed</span>" in html
    res = run_zstest("report", REPO / "tests" / "data" / "series", "--html", tmp_path / "x")
    assert res.returncode == 2 and "holds no results.json" in res.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_chromium_renders_the_rows_in_colour(tmp_path):
    from PIL import Image
    from zstest.htmlpage import VERDICT_CLASS, page_for_results
    page = page_for_results(COMPARE, tmp_path / "page")
    dom = _chromium(tmp_path, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    statuses = [json.loads(p.read_text())["status"] for p in sorted(COMPARE.rglob("results.json"))]
    assert dom.stdout.count('<tr class="series"') == len(statuses)
    for status in ("passed", "failed", "error"):
        assert dom.stdout.count(f'data-verdict="{status}"') == statuses.count(status)
    shot = tmp_path / "page.png"
    res = _chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1300,900")
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1300, 900)
    colours = {rgb for _, rgb in image.getcolors(maxcolors=1 << 20)}
    assert len(colours) > 50, "the page is blank"
    # the verdict pills' backgrounds (CSS) are on screen: a passed and a failed run
    pass_bg, fail_bg = (0xd7, 0xf5, 0xdd), (0xfb, 0xda, 0xda)
    assert VERDICT_CLASS["passed"] == "pass" and pass_bg in colours and fail_bg in colours


def test_a_perf_comparison_next_to_the_results_shows_its_change_and_plot(tmp_path):
    from zstest.htmlpage import results_row, write_page
    series = tmp_path / "series"
    shutil.copytree(REPO / "tests" / "data" / "watch" / "perf", series)   # perf.json, plots/
    shutil.copytree(COMPARE / "boot-good-3", series / "results")
    row = results_row(series / "results")
    assert row.perf.startswith("6 regressed (mem.written.mem_used_total +8.1%")
    assert "1 improved" in row.perf
    assert [p.name for p in row.plots] == ["mem.written.mem_used_total.png"]
    html = write_page([row], tmp_path / "page").read_text()
    assert 'src="../series/plots/mem.written.mem_used_total.png"' in html
