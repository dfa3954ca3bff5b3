"""`zstest watch --perf`: a passed series compared with its base as `compare --perf` does it.

Fast tests (no guest): the options and their zstest.toml keys; a series that did not pass is
not measured and says why; a comparison placed where the step places it (series/<key>/perf/,
made by zstest's own perf code from the recorded runs of tests/data/perf/compare: perf-waste
and perf-comment against the 6.1 base) reaches the state's verdict, report.txt and the reply
draft (one text: the table; no Tested-by after a regression or a failed perf run, kept when
the step could not measure), the results page (the perf column and its plots) and
kcidb.json (every metric of the series' runs a numeric test output, validated by kcidb-io); a
bot stopped during the perf step keeps the functional results and runs only that step again.
Slow test: kernel-patches/fixtures/perf-waste posted to a real public-inbox, run by the bot
with `--perf` on the shared 6.1 build; SIGTERM once the perf step began (exit 130, queued, the
functional results kept); the restart measures again without re-running the functional suite:
flagged on memory (exact metrics, one run a side).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest

from conftest import REPO, run_zstest

PERF_RUNS = REPO / "tests" / "data" / "perf" / "compare"
RESULTS = REPO / "tests" / "data" / "compare" / "boot-good-3"     # a recorded passed run
FIXTURES = REPO / "kernel-patches" / "fixtures"


def _watcher(tmp_path: Path, perf: bool = True, echo=lambda _: None):
    from zstest.watch import RunConfig, WatchConfig, Watcher
    from zstest.watch.perfstep import PerfConfig
    cfg = PerfConfig(suite="perf-small", runs=1, warmup=0, keyword="memory") if perf else None
    return Watcher(WatchConfig(directory=tmp_path / "watch", lore_url="http://127.0.0.1:9/zs",
                               run=RunConfig(suites=["boot"], perf=cfg)), echo=echo)


def _add_series(watcher, key: str = "20261207-zsmalloc-headroom-v1-0123abcd"):
    with watcher.state.transaction() as db:
        watcher.state.add_series(
            db, hash=key[-8:] * 8, root="perf-waste-1@zstest.invalid", key=key,
            title="zsmalloc: leave headroom after every object", author="Z <z@zstest.invalid>",
            revision=1, total=1, present=1, revkey=key, files="mm/zsmalloc.c",
            subject="[PATCH] zsmalloc: leave headroom after every object")
    watcher.series_dir(key).mkdir(parents=True, exist_ok=True)
    return watcher.state.series_by_key(key)


def _place_comparison(series_dir: Path, case: str) -> dict:
    """What the perf step leaves in series_dir/perf: compare --perf's files (zstest's own
    judging and writing, over recorded runs) and the series' runs (side B)."""
    from zstest.manifests import read_object
    from zstest.perf.render import write_outputs
    from zstest.perf.samples import load_side_runs
    from zstest.perf.verdict import compare_runs
    out = series_dir / "perf"
    cmp = compare_runs(load_side_runs("A", PERF_RUNS / case / "a"),
                       load_side_runs("B", PERF_RUNS / case / "b"))
    write_outputs(cmp, out)
    shutil.copytree(PERF_RUNS / case / "b", out / "b")
    return read_object(out / "perf.json")


def _passed_run(series_dir: Path, outcome):
    from zstest.watch.execute import SeriesRun
    shutil.copytree(RESULTS, series_dir / "results")
    return SeriesRun("passed", 0, base="0123456789ab of linux-source-6.1",
                     results_dirs=[series_dir / "results"], perf=outcome)


# ------------------------------------------------------------------ options

def test_perf_defaults_are_compare_perfs_and_zstest_toml_sets_them(tmp_path):
    from zstest.commands.compare_cmd import compare_command
    from zstest.commands.watch_cmd import PERF_DEFAULTS
    from zstest.perf.run import DEFAULT_SUITE
    compare = {p.name: p.default for p in compare_command.params}
    assert PERF_DEFAULTS == {"suite": DEFAULT_SUITE, "runs": compare["runs"],
                             "warmup": compare["warmup"]}
    env = {"ZSTEST_CACHE": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    # [watch] perf = true takes effect: with --matrix the bot says perf stays local
    (tmp_path / "zstest.toml").write_text('[watch]\nperf = true\nperf-runs = 2\n')
    res = run_zstest("watch", "--dir", tmp_path / "w", "--lore-url", "http://127.0.0.1:9/zs",
                     "--once", "--matrix", tmp_path / "cells", cwd=tmp_path, env=env, timeout=120)
    assert "--perf is local only" in res.stdout, res.stdout + res.stderr
    assert res.returncode == 2 and "Traceback" not in res.stderr        # the server is down
    for toml, words in (('[watch]\nperf-runs = 0\n', "key 'watch.perf-runs'"),
                        ('[watch]\nperf-suite = "nosuch"\nperf = true\n', "--perf-suite 'nosuch'")):
        (tmp_path / "zstest.toml").write_text(toml)
        res = run_zstest("watch", "--dir", tmp_path / "w", "--lore-url", "http://127.0.0.1:9/zs",
                         "--once", cwd=tmp_path, env=env, timeout=120)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and words in lines[0], res.stderr


# ------------------------------------------------------------------ the step's outcomes

def test_a_series_that_did_not_pass_is_not_measured_and_says_why(tmp_path):
    from zstest.watch import perfrun
    from zstest.watch.execute import SeriesRun
    watcher = _watcher(tmp_path)
    row = _add_series(watcher)
    run = perfrun.after_functional(watcher, row, SeriesRun(
        "does not apply", 3, "patch 1/1 does not apply on linux-source-6.1"))
    assert run.perf.state == "skipped" and run.final_verdict == "does not apply"
    watcher.finish(row, run)
    done = watcher.state.series_by_key(row.key)
    assert (done.verdict, done.exit_code) == ("does not apply", 3)
    assert done.perf == "perf not run: the series did not pass (does not apply)"
    series_dir = watcher.series_dir(row.key)
    assert not (series_dir / "perf").exists()
    reply = (series_dir / "reply.txt").read_text()
    assert "Perf:     not run: the series did not pass (does not apply)." in reply
    assert "Tested-by" not in reply
    page = (watcher.cfg.directory / "index.html").read_text()
    assert "not run: the series did not pass (does not apply)" in page
    watcher.close()


@pytest.fixture
def identity(tmp_path, monkeypatch):
    """A git identity to sign with, whatever this host's: the Tested-by is then offered or
    withheld by the verdict alone."""
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tname = Ada Tester\n\temail = ada@example.org\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))


def test_a_perf_regression_reaches_verdict_reply_page_and_kcidb(tmp_path, identity):
    from zstest.watch.perfstep import outcome_of
    watcher = _watcher(tmp_path)
    row = _add_series(watcher)
    series_dir = watcher.series_dir(row.key)
    perf = _place_comparison(series_dir, "waste")
    regressed = [m for m in perf["metrics"] if m["verdict"] == "regressed"]
    assert perf["exit_code"] == 1 and regressed
    outcome = outcome_of(perf)
    first = f"{regressed[0]['name']} {regressed[0]['change_pct']:+.1f}%"
    assert outcome.text.startswith(f"perf regressed: {first}")
    watcher.finish(row, _passed_run(series_dir, outcome))

    done = watcher.state.series_by_key(row.key)
    # the functional run passed and stays so (exit 0); the verdict says the perf regression
    assert (done.status, done.verdict, done.exit_code) == ("done", "perf regressed", 0)
    assert done.perf == outcome.text
    reply = (series_dir / "reply.txt").read_text()
    assert reply.splitlines()[4] == "zstest results: PASSED"
    assert f"Perf:     regressed: {first}" in reply and "no Tested-by until" in reply
    table = (series_dir / "perf" / "perf.txt").read_text().splitlines()
    assert all(("  " + line).rstrip() in reply for line in table if line)
    assert "Tested-by" not in reply.replace("no Tested-by until", "")
    assert_report_is_the_reply(series_dir)
    page = (watcher.cfg.directory / "index.html").read_text()
    assert ">perf regressed</span>" in page and f"{len(regressed)} regressed (" in page
    plot = Path(regressed[0]["plot"]).name
    assert f'src="series/{row.key}/perf/plots/{plot}"' in page
    assert f'href="series/{row.key}/perf/summary.txt"' in page
    # KCIDB: each run of the series' kernel (side B) gives every metric as a number; A's none
    kcidb = json.loads((series_dir / "kcidb.json").read_text())
    numbers = [t for t in kcidb["tests"] if "number" in t and t["path"] != "zstest.boot"]
    b_runs = sorted((series_dir / "perf" / "b").glob("run-*"))
    per_metric = {}
    for t in numbers:
        per_metric.setdefault(t["misc"]["metric"], []).append(t["number"]["value"])
    for m in perf["metrics"]:
        assert sorted(per_metric[m["name"]]) == sorted(m["values_b"]), m["name"]
        assert len(per_metric[m["name"]]) == len(b_runs)
    watcher.close()


def test_no_regression_keeps_passed_and_the_tested_by_with_the_table(tmp_path, identity):
    from zstest.watch.perfstep import outcome_of
    watcher = _watcher(tmp_path)
    row = _add_series(watcher)
    series_dir = watcher.series_dir(row.key)
    perf = _place_comparison(series_dir, "comment")
    outcome = outcome_of(perf)
    assert perf["exit_code"] == 0 and outcome.state == "ok"
    watcher.finish(row, _passed_run(series_dir, outcome))
    done = watcher.state.series_by_key(row.key)
    assert (done.verdict, done.exit_code, done.perf) == ("passed", 0, outcome.text)
    reply = (series_dir / "reply.txt").read_text()
    lines = reply.splitlines()
    # the table comes before the Tested-by trailer, which stays
    at_table = lines.index("  " + (series_dir / "perf" / "perf.txt").read_text().splitlines()[0])
    at_tested = lines.index("Tested-by: Ada Tester <ada@example.org>")
    assert at_table < at_tested
    assert "Perf:     no regression" in reply
    assert_report_is_the_reply(series_dir)
    watcher.close()


def assert_report_is_the_reply(series_dir: Path) -> None:
    """report.txt and reply.txt say one thing (the reply is the report under mail headers):
    neither offers a Tested-by the other withholds."""
    report = (series_dir / "report.txt").read_text()
    reply = (series_dir / "reply.txt").read_text()
    head, _, body = reply.partition("\n\n")
    assert head.startswith("Subject: Re: ") and body == report


def test_a_failed_perf_run_withholds_the_tested_by_in_report_and_reply(tmp_path, identity):
    from zstest.watch.perfstep import outcome_of
    watcher = _watcher(tmp_path)
    row = _add_series(watcher)
    series_dir = watcher.series_dir(row.key)
    perf = _place_comparison(series_dir, "comment")
    outcome = outcome_of(dict(perf, failed_runs=["B run-02: the guest did not boot"]))
    assert outcome.state == "failed"
    watcher.finish(row, _passed_run(series_dir, outcome))
    assert watcher.state.series_by_key(row.key).verdict == "perf run failed"
    report = (series_dir / "report.txt").read_text()
    assert report.startswith("zstest results: PASSED")
    assert "Perf:     a run of the series' kernel did not pass (B run-02" in report
    assert "Tested-by:" not in report and "no Tested-by until" in report
    assert_report_is_the_reply(series_dir)
    watcher.close()


def test_a_perf_step_that_could_not_measure_leaves_the_tested_by(tmp_path, identity):
    from zstest.watch.perfstep import PerfOutcome
    watcher = _watcher(tmp_path)
    row = _add_series(watcher)
    series_dir = watcher.series_dir(row.key)
    outcome = PerfOutcome("error", "perf not measured: the base does not build")
    watcher.finish(row, _passed_run(series_dir, outcome))
    report = (series_dir / "report.txt").read_text()
    assert "Perf:     not measured: the base does not build." in report
    assert "Tested-by: Ada Tester <ada@example.org>" in report.splitlines()
    assert_report_is_the_reply(series_dir)
    watcher.close()


# ------------------------------------------------------------------ state

def test_a_stop_during_the_perf_step_keeps_the_functional_results(tmp_path):
    """The bot killed while measuring: the restart takes the recorded functional run and
    runs only the perf step (here the restart is without --perf: nothing boots)."""
    from zstest.watch.state import PERF_PENDING
    watcher = _watcher(tmp_path)
    row = _add_series(watcher)
    series_dir = watcher.series_dir(row.key)
    shutil.copytree(RESULTS, series_dir / "results")
    (series_dir / "build").mkdir()
    shutil.copy(REPO / "tests" / "data" / "b4check" / "demo-v1-hotunplug" / "build.json",
                series_dir / "build")
    with watcher.state.transaction() as db:        # as after_functional leaves it, then killed
        watcher.state.update_series(db, row.id, status="running", runs=1, verdict="passed",
                                    exit_code=0, perf=PERF_PENDING)
    watcher.close()
    said = []
    restarted = _watcher(tmp_path, perf=False, echo=said.append)
    restarted.hold_directory()
    assert any("was stopped during its perf step (only that runs again)" in s for s in said)
    queued = restarted.state.series_by_key(row.key)
    assert queued.status == "queued" and "during its perf step" in queued.message
    results = series_dir / "results" / "results.json"
    os.utime(results, (1_000_000_000, 1_000_000_000))
    assert restarted.run_next()
    done = restarted.state.series_by_key(row.key)
    assert (done.status, done.verdict, done.runs, done.perf) == ("done", "passed", 2, "")
    assert results.stat().st_mtime == 1_000_000_000, "the functional run was not redone"
    assert not any(s.startswith("zstest: watch: running ") for s in said)
    restarted.close()


def test_a_state_file_without_the_perf_column_gets_it(tmp_path):
    from zstest.watch.state import SCHEMA, WatchState
    path = tmp_path / "watch.sqlite"
    old = SCHEMA.replace(",\n    perf TEXT NOT NULL DEFAULT ''", "")
    assert old != SCHEMA
    with sqlite3.connect(path) as db:
        db.executescript(old)
        db.execute("INSERT INTO series (hash, root, key, title, author, revision, total, "
                   "present, revkey, status, queued) VALUES ('h', 'r', 'k', 't', 'a', 1, 1, 1, "
                   "'rk', 'done', 0)")
    state = WatchState(path)
    [row] = state.all_series()
    assert (row.key, row.perf) == ("k", "")
    state.close()


# ------------------------------------------------------------------ a real run (slow)

@pytest.mark.slow
def test_perf_waste_posted_is_flagged_on_memory_and_a_stop_redoes_only_the_perf(tmp_path,
                                                                                 kernel_build):
    """perf-waste posted; the bot runs it (boot suite), SIGTERM while it measures; the restart
    keeps the functional results and measures again: flagged on memory, exactly."""
    from public_inbox import PublicInbox, missing_tools, threaded
    from test_watch import _spawn_watch, _wait_for
    if missing_tools():
        pytest.skip(f"public-inbox tools missing: {missing_tools()}")
    inbox = PublicInbox(tmp_path / "pi")
    inbox.seed()
    patch = next((FIXTURES / "perf-waste").glob("*.patch")).read_bytes()
    inbox.deliver(threaded(patch, "perf-waste-1@zstest.invalid", None))
    inbox.start()
    d, log = tmp_path / "watch", tmp_path / "watch.log"
    d.mkdir()
    args = ("--once", "--feed", "new", "--backfill", "--suite", "boot", "--perf", "--perf-suite",
            "perf-small", "--perf-k", "memory", "--perf-runs", "1", "--perf-warmup", "0")
    try:
        proc = _spawn_watch(d, inbox.url, *args)
        try:
            _wait_for(lambda: _rows(d) and _rows(d)[0]["perf"] == "pending", 900, proc, log)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)     # measuring: the base build or a boot
            code = proc.wait(120)
        assert code == 130, log.read_text()[-3000:]
        [row] = _rows(d)
        assert row["status"] == "queued" and "during its perf step" in row["message"], row
        series_dir = d / "series" / row["key"]
        kept = (series_dir / "results" / "results.json").stat().st_mtime
        res = run_zstest("watch", "--dir", d, "--lore-url", inbox.url, *args, timeout=1800)
    finally:
        inbox.stop()
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "running " not in res.stdout and "measuring it against its base" in res.stdout
    assert (series_dir / "results" / "results.json").stat().st_mtime == kept
    [row] = _rows(d)
    assert (row["status"], row["verdict"], row["exit_code"], row["runs"]) == \
        ("done", "perf regressed", 0, 2), res.stdout[-3000:]
    perf = json.loads((series_dir / "perf" / "perf.json").read_text())
    regressed = {m["name"]: m for m in perf["metrics"] if m["verdict"] == "regressed"}
    assert "mem.written.mem_used_total" in regressed, res.stdout[-3000:]
    assert all(m["exact"] and m["change_pct"] >= 1 for m in regressed.values())
    assert row["perf"].startswith("perf regressed: ")
    assert perf["setup"]["order"] == "A B" and perf["setup"]["suite"] == "perf-small"
    # A is the tree the series was applied on, built without it; B the series' own build
    base = json.loads((series_dir / "perf" / "builds" / "a" / "build.json").read_text())
    built = json.loads((series_dir / "build" / "build.json").read_text())
    assert base.get("series") is None and base["kernel"]["base"] == built["kernel"]["base"]
    assert perf["setup"]["build_b"] == str(series_dir / "build")
    reply = (series_dir / "reply.txt").read_text()
    assert "Perf:     regressed: " in reply and "zstest compare --perf: " in reply
    assert "Tested-by:" not in reply
    assert ">perf regressed</span>" in (d / "index.html").read_text()
    kcidb = json.loads((series_dir / "kcidb.json").read_text())
    assert any(t.get("misc", {}).get("metric") == "mem.written.mem_used_total"
               and t["number"]["value"] == regressed["mem.written.mem_used_total"]["values_b"][0]
               for t in kcidb["tests"] if "number" in t)


def _rows(d: Path) -> list:
    """The state's series; [] before the bot made its state file."""
    if not (d / "watch.sqlite").is_file():
        return []
    try:
        with sqlite3.connect(d / "watch.sqlite") as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM series")]
    except sqlite3.OperationalError:        # the bot is creating its tables
        return []
