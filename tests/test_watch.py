"""`zstest watch` on a real public-inbox (public-inbox-init, -mda, -httpd on 127.0.0.1).

Fast tests (no kernel) use `--matrix` where a run would be (a queued series is written out as
CI cells instead). Each bad input and its outcome:
  - a thread that never completes: `waiting` until --complete-timeout, then taken as it is,
    marked incomplete (test_thread_that_never_completes_...; run for real: ..._does_not_apply)
  - a series that touches zsmalloc only in a comment: a zsmalloc series, noted
    (test_comment_only_series_is_a_zsmalloc_series)
  - a reply that quotes a patch: not listed by the dfn: search, and on new.atom its thread's
    patchset hash is unchanged: nothing new (test_baseline_..., test_search_feed_...)
  - a revision posted while the previous one runs: runs after it (slow test); one posted before
    the previous one ran supersedes it (test_an_older_revision_still_queued_...)
  - a server that is down or answers garbage: the poll fails with one sentence, a bad thread
    fails alone and is given up after 3 fetches (test_server_down_..., test_garbage_...)
  - SIGTERM in the loop or during a run, SIGKILL, a second bot, a state file that is not SQLite
    (test_loop_..., the slow test, test_a_run_left_running_..., test_a_second_bot_...)
Slow tests (the shared 6.1 build, incremental): demo v1 runs while v2 is posted, SIGTERM during
v2's run, the restart runs v2 and nothing else; the 2016 series (incomplete, from another tree)
is run after --complete-timeout and does not apply.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from lore_server import LocalLore
from public_inbox import PublicInbox, demo_mails, mbox_messages, missing_tools, threaded

DATA = REPO / "tests" / "data" / "watch"
pytestmark = pytest.mark.skipif(bool(missing_tools()),
                                reason=f"public-inbox tools missing: {missing_tools()}")


@pytest.fixture
def inbox(tmp_path):
    pi = PublicInbox(tmp_path / "pi")
    pi.seed()
    pi.start()
    yield pi
    pi.stop()


def _state(directory: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(directory / "watch.sqlite"))


def _series(directory: Path) -> list:
    with _state(directory) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM series ORDER BY id")]


def _threads(directory: Path) -> dict:
    with _state(directory) as db:
        return {r[0]: (r[1], r[2]) for r in db.execute("SELECT root, status, note FROM threads")}


def _searchable(inbox: PublicInbox, msgid: str, seconds: float = 90) -> None:
    """Wait until the server's search lists msgid: public-inbox-httpd reopens its Xapian index
    30 s after a search used it, so a new message is found up to ~35 s after delivery."""
    from zstest.watch.feed import feed_url
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(feed_url(inbox.url, "search"), timeout=10) as resp:
                if msgid.encode() in resp.read():
                    return
        except urllib.error.HTTPError:
            pass                # 404: no match yet
        time.sleep(2)
    pytest.fail(f"{msgid} never listed by the search of {inbox.url}")


def _watch(directory: Path, url: str, *args, timeout=600):
    return run_zstest("watch", "--dir", directory, "--lore-url", url, *args, timeout=timeout)


# ------------------------------------------------------------------ pure parts, recorded data

def test_search_feed_recorded_from_public_inbox_gives_message_ids():
    from zstest.watch.feed import parse_feed
    entries = parse_feed(DATA / "search.atom", "recorded")
    ids = [e.msgid for e in entries]
    assert "demo-v1-2@zstest.invalid" in ids and "demo-v2-3@zstest.invalid" in ids
    assert all("@" in i and "/" not in i for i in ids)
    assert entries[-1].title.startswith("[PATCH v2 1/3]")       # newest last


def test_thread_decisions_on_real_mails(tmp_path, shared_series):
    from zstest.series.parse import build_series, read_mails
    from zstest.watch.threads import classify, only_comments_changed, patchset_hash
    v4 = classify(build_series(read_mails(shared_series / "nonlru-migration-v4.mbox"), "v4", "mbox"))
    assert v4.ours and not v4.complete and v4.series.missing == [1, 3]
    assert "mm/zsmalloc.c" in v4.files
    # patch 2/12 alone (mm/migrate.c, include/linux/...): not a zsmalloc/zram series
    p2 = [m for m in read_mails(shared_series / "nonlru-migration-v4.mbox")
          if " 02/12]" in m.subject or " 2/12]" in m.subject]
    alone = classify(build_series(p2, "p2", "mbox"))
    assert alone.series is not None and not alone.ours and "no zsmalloc/zram file" in alone.reason
    # the comment-only patch is ours by the diffstat, and known to change only a comment
    comment = classify(build_series(read_mails(DATA / "comment-only.patch"), "c", "mbox"))
    assert comment.ours and comment.complete and only_comments_changed(comment.series.patches[0])
    assert not only_comments_changed(v4.series.patches[-1])
    # the patchset hash ignores the mail around the diff, not the diff
    mbox = tmp_path / "v2.mbox"
    mbox.write_bytes(b"".join(demo_mails("v2")))
    v2 = build_series(read_mails(mbox), "v2", "mbox")
    resent = tmp_path / "v2-resend.mbox"
    resent.write_bytes(b"".join(m.replace(b"[PATCH v2", b"[PATCH RESEND v2")
                                .replace(b"Fri, 27 Nov", b"Sat, 28 Nov") for m in demo_mails("v2")))
    assert patchset_hash(build_series(read_mails(resent), "r", "mbox").patches) == \
        patchset_hash(v2.patches)
    v1 = tmp_path / "v1.mbox"
    v1.write_bytes(b"".join(demo_mails("v1")))
    assert patchset_hash(build_series(read_mails(v1), "v1", "mbox").patches) != \
        patchset_hash(v2.patches)


# ------------------------------------------------------------------ the bot on public-inbox

def test_baseline_then_a_new_series_then_a_reply_quoting_a_patch(inbox, tmp_path):
    """--feed new (every message): a reply is listed too, and is no new series."""
    d, cells = tmp_path / "watch", tmp_path / "cells"
    watch = ("--once", "--feed", "new", "--matrix", cells, "--suite", "boot")
    for raw in demo_mails("v1"):
        inbox.deliver(raw)
    res = _watch(d, inbox.url, *watch)
    assert res.returncode == 0, res.stderr
    # the seed message and demo v1's cover and 3 patches
    assert "first poll: 5 message(s) on the feed recorded as seen" in res.stdout, res.stdout
    assert _series(d) == [] and not cells.exists()

    for raw in demo_mails("v2"):           # posted after the bot started
        inbox.deliver(raw)
    res = _watch(d, inbox.url, *watch)
    assert res.returncode == 0, res.stderr
    [row] = _series(d)
    assert (row["status"], row["revision"], row["total"], row["missing"]) == \
        ("dispatched", 2, 3, "")
    assert row["root"] == "demo-v2-0@zstest.invalid"
    assert "mm/zsmalloc.c" in row["files"] and "drivers/block/zram/zram_drv.c" in row["files"]
    # the cells are what the CI templates take: a matrix file and zstest matrix's job list
    from zstest.matrix import expand, load_matrix
    from zstest.series import load_series
    out = cells / row["key"]
    [cell] = expand(load_matrix(out / "matrix.toml"))
    assert json.loads((out / "cells.json").read_text()) == [cell]
    assert cell["suite"] == "boot" and cell["name"].startswith(row["key"] + "-")
    assert len(load_series(cell["series"]).patches) == 3

    # a review reply that quotes patch 2's diff: fetched, its thread's patchset hash is the same
    inbox.deliver((DATA / "reply-quoting-patch.eml").read_bytes())
    res = _watch(d, inbox.url, *watch)
    assert res.returncode == 0, res.stderr
    assert [r["id"] for r in _series(d)] == [row["id"]] and "queued" not in res.stdout
    with _state(d) as db:
        assert db.execute("SELECT 1 FROM messages WHERE msgid = 'review-v2-2@zstest.invalid'"
                          ).fetchone()
    assert _threads(d)["demo-v2-0@zstest.invalid"][0] == "series"
    page = (d / "index.html").read_text()
    assert page.count('<tr class="series"') == 1 and "dispatched" in page


def test_search_feed_lists_patches_not_a_reply_quoting_one(inbox, tmp_path):
    """--feed search (dfn:): public-inbox indexes a message's own diff, not a quoted one."""
    d, cells = tmp_path / "watch", tmp_path / "cells"
    res = _watch(d, inbox.url, "--once", "--matrix", cells)          # baseline: no patch yet
    assert res.returncode == 0 and "first poll: 0 message(s)" in res.stdout, res.stderr
    for raw in demo_mails("v2"):
        inbox.deliver(raw)
    inbox.deliver((DATA / "reply-quoting-patch.eml").read_bytes())
    _searchable(inbox, "demo-v2-3@zstest.invalid")
    res = _watch(d, inbox.url, "--once", "--matrix", cells)
    assert res.returncode == 0, res.stderr
    [row] = _series(d)
    assert row["root"] == "demo-v2-0@zstest.invalid" and row["status"] == "dispatched"
    with _state(d) as db:
        listed = {r[0] for r in db.execute("SELECT msgid FROM messages")}
    assert {"demo-v2-1@zstest.invalid", "demo-v2-3@zstest.invalid"} <= listed
    assert "review-v2-2@zstest.invalid" not in listed


def test_thread_that_never_completes_waits_then_goes_as_it_is(inbox, tmp_path, shared_series):
    d, cells = tmp_path / "watch", tmp_path / "cells"
    for raw in mbox_messages(shared_series / "nonlru-migration-v4.mbox"):
        inbox.deliver(raw)        # cover + 10 of 12 patches: 01/12 and 03/12 never come
    res = _watch(d, inbox.url, "--once", "--backfill", "--matrix", cells)
    assert res.returncode == 0, res.stderr
    assert _series(d) == []
    root = "1461743305-19970-1-git-send-email-minchan@kernel.org"
    status, note = _threads(d)[root]
    assert status == "waiting" and "1/12, 3/12" in note, note
    assert "waiting" in (d / "index.html").read_text()
    # still incomplete at the next poll; once --complete-timeout has passed it goes as it is
    res = _watch(d, inbox.url, "--once", "--matrix", cells, "--complete-timeout", "0")
    assert res.returncode == 0, res.stderr
    [row] = _series(d)
    assert (row["status"], row["present"], row["missing"]) == ("dispatched", 10, "1,3")
    assert "incomplete: 1/12, 3/12 never arrived" in (d / "index.html").read_text()


def test_comment_only_series_is_a_zsmalloc_series(inbox, tmp_path):
    d, cells = tmp_path / "watch", tmp_path / "cells"
    watch = ("--once", "--feed", "new", "--matrix", cells)
    _watch(d, inbox.url, *watch)                                      # baseline: the seed
    inbox.deliver(threaded((DATA / "comment-only.patch").read_bytes(),
                           "comment-only@zstest.invalid", None))
    res = _watch(d, inbox.url, *watch)
    assert res.returncode == 0, res.stderr
    [row] = _series(d)
    assert row["status"] == "dispatched" and row["files"] == "mm/zsmalloc.c"
    assert row["note"].startswith("changes only comments")


def test_matrix_cells_go_out_and_collect_takes_their_results_back(inbox, tmp_path):
    """--matrix writes the cells; a boot job's results dir (a recorded boot-suite run, with the
    cell.json the job writes) comes back through --collect: report, reply, page, done."""
    from zstest.manifests import save_cell
    d, cells, artifacts = tmp_path / "watch", tmp_path / "cells", tmp_path / "artifacts"
    for raw in demo_mails("v2"):
        inbox.deliver(raw)
    res = _watch(d, inbox.url, "--once", "--backfill", "--matrix", cells, "--suite", "boot")
    assert res.returncode == 0, res.stderr
    [row] = _series(d)
    [cell] = json.loads((cells / row["key"] / "cells.json").read_text())
    job = artifacts / f"results-{cell['name']}"
    shutil.copytree(REPO / "tests" / "data" / "compare" / "boot-good-3", job)
    save_cell(job, cell)
    res = run_zstest("watch", "--dir", d, "--lore-url", inbox.url, "--suite", "boot",
                     "--collect", artifacts)
    assert res.returncode == 0, res.stdout + res.stderr
    [row] = _series(d)
    assert (row["status"], row["verdict"], row["exit_code"]) == ("done", "passed", 0)
    sdir = d / "series" / row["key"]
    assert (sdir / "results" / "results.json").is_file()
    assert (sdir / "reply.txt").read_text().startswith(
        "Subject: Re: [PATCH v2 0/3] zsmalloc: report page migration in pool stats")
    assert ">passed</span>" in (d / "index.html").read_text()
    # nothing dispatched left to collect: one sentence, exit 2
    res = run_zstest("watch", "--dir", d, "--lore-url", inbox.url, "--collect", tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr


def test_an_older_revision_still_queued_is_superseded_not_run(inbox, tmp_path):
    d, cells = tmp_path / "watch", tmp_path / "cells"
    watch = ("--once", "--feed", "new", "--matrix", cells)
    _watch(d, inbox.url, *watch)                                      # baseline: the seed
    for raw in demo_mails("v1") + demo_mails("v2"):      # both posted before the next poll
        inbox.deliver(raw)
    res = _watch(d, inbox.url, *watch)
    assert res.returncode == 0, res.stderr
    v1, v2 = sorted(_series(d), key=lambda r: r["revision"])
    assert (v1["status"], v1["runs"], v1["note"]) == ("superseded", 0, "v2 came before it ran")
    assert v2["status"] == "dispatched" and sorted(p.name for p in cells.iterdir()) == [v2["key"]]
    assert "superseded" in (d / "index.html").read_text()


def test_a_run_left_running_by_a_killed_bot_is_queued_again(inbox, tmp_path):
    """SIGKILL or a power cut leaves a series `running`: the next bot to hold the directory
    queues it again (here --matrix dispatches it) and says so."""
    from zstest.series.parse import build_series, read_mails
    from zstest.watch.state import WatchState
    from zstest.watch.threads import patchset_hash, revision_key
    d, cells = tmp_path / "watch", tmp_path / "cells"
    watch = ("--once", "--feed", "new", "--matrix", cells)
    assert _watch(d, inbox.url, *watch).returncode == 0
    (d / "series" / "killed").mkdir(parents=True)
    mbox = d / "series" / "killed" / "thread.mbox"
    mbox.write_bytes(b"".join(demo_mails("v2")))
    series = build_series(read_mails(mbox), str(mbox), "mbox")
    state = WatchState(d / "watch.sqlite")
    with state.transaction() as db:       # what a bot killed during its run leaves behind
        state.add_series(db, hash=patchset_hash(series.patches), root=series.msgid, key="killed",
                         title="t", author="a", revision=2, total=3, present=3,
                         revkey=revision_key(series), status="running", started=time.time(),
                         runs=1)
    state.close()
    res = _watch(d, inbox.url, *watch)
    assert res.returncode == 0, res.stderr
    assert "killed was stopped during its run; queued again" in res.stdout
    [row] = _series(d)
    assert (row["status"], row["started"]) == ("dispatched", None)
    assert (cells / "killed" / "series.mbox").read_bytes() == mbox.read_bytes()


def test_new_atom_feed_and_a_foreign_thread(inbox, tmp_path, shared_series):
    """--feed new lists every message: a patch touching no zsmalloc/zram file is recorded,
    not run."""
    d, cells = tmp_path / "watch", tmp_path / "cells"
    _watch(d, inbox.url, "--once", "--feed", "new", "--matrix", cells)
    [p2] = [m for m in mbox_messages(shared_series / "nonlru-migration-v4.mbox")
            if b"Subject: [PATCH v4 02/12]" in m]
    inbox.deliver(p2)
    res = _watch(d, inbox.url, "--once", "--feed", "new", "--matrix", cells)
    assert res.returncode == 0, res.stderr
    assert _series(d) == []
    [(status, note)] = _threads(d).values()
    assert status == "foreign" and "no zsmalloc/zram file" in note


def test_server_down_is_one_sentence_and_the_state_says_so(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]       # closed again: nothing listens there
    d = tmp_path / "watch"
    res = _watch(d, f"http://127.0.0.1:{port}/zs", "--once")
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and res.stderr.count("zstest: error:") == 1
    assert "cannot reach" in res.stderr
    with _state(d) as db:
        assert "cannot reach" in db.execute("SELECT value FROM meta WHERE key = 'last_error'"
                                            ).fetchone()[0]
    assert "last poll failed" in (d / "index.html").read_text()


def test_a_second_bot_on_one_dir_and_a_bad_state_file_are_one_sentence(inbox, tmp_path):
    d = tmp_path / "watch"
    d.mkdir()
    proc = _spawn_watch(d, inbox.url, "--interval", "60", "--feed", "new")
    try:
        _wait_for(lambda: (d / "index.html").is_file(), 60, proc, tmp_path / "watch.log")
        res = _watch(d, inbox.url, "--once", "--feed", "new")
        assert res.returncode == 2 and "another zstest watch (pid" in res.stderr, res.stderr
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 130
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "watch.sqlite").write_text("not a database\n")
    res = _watch(bad, inbox.url, "--once")
    assert res.returncode == 2 and "is not a zstest watch state file" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_garbage_feed_and_garbage_thread_do_not_stop_the_bot(tmp_path):
    """A feed that is not Atom fails the poll (exit 2 with --once); a thread that is garbage
    fails that thread only (tried 3 times, then given up) while the good one is dispatched."""
    d, cells = tmp_path / "watch", tmp_path / "cells"
    with LocalLore() as lore:
        lore.raw["/all/new.atom"] = lambda h: _answer(h, b"<html>not a feed</html>")
        res = _watch(d, lore.url, "--once", "--feed", "new", "--backfill", "--matrix", cells)
        assert res.returncode == 2 and "did not answer an Atom feed" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
        # a real public-inbox feed (recorded) naming the demo v2 series and more messages
        feed = (DATA / "search.atom").read_bytes()
        lore.raw["/all/new.atom"] = lambda h: _answer(h, feed)
        lore.serve("demo-v2-0@zstest.invalid", b"".join(demo_mails("v2")))
        for k in (1, 2, 3):
            lore.serve(f"demo-v2-{k}@zstest.invalid", b"".join(demo_mails("v2")))
        for k in (1, 2, 3):
            lore.serve_bytes(f"demo-v1-{k}@zstest.invalid", b"\x00\xffgarbage" * 100)
        for attempt in range(3):
            res = _watch(d, lore.url, "--once", "--feed", "new", "--backfill", "--matrix", cells)
            assert res.returncode == 0, res.stdout + res.stderr
        [row] = _series(d)
        assert row["root"] == "demo-v2-0@zstest.invalid" and row["status"] == "dispatched"
        bad = {k: v for k, v in _threads(d).items() if v[0] == "bad"}
        assert "demo-v1-2@zstest.invalid" in bad, _threads(d)
        with _state(d) as db:
            attempts = db.execute("SELECT attempts FROM threads WHERE root = "
                                  "'demo-v1-2@zstest.invalid'").fetchone()[0]
            seen = db.execute("SELECT 1 FROM messages WHERE msgid = "
                              "'demo-v1-2@zstest.invalid'").fetchone()
        assert attempts == 3 and seen, "given up after three fetches"
        asked = sum(1 for p in lore.requests if p == "/all/demo-v1-2@zstest.invalid/t.mbox.gz")
        assert asked == 3
        res = _watch(d, lore.url, "--once", "--feed", "new", "--matrix", cells)
        assert sum(1 for p in lore.requests
                   if p == "/all/demo-v1-2@zstest.invalid/t.mbox.gz") == asked


def _answer(handler, body: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "application/atom+xml")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _spawn_watch(d: Path, url: str, *args) -> subprocess.Popen:
    log = open(d.parent / "watch.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "zstest.cli", "watch", "--dir", str(d),
                             "--lore-url", url, *args], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait_for(what, seconds: float, proc: subprocess.Popen, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(1)
    pytest.fail(f"not reached in {seconds} s:\n{log.read_text()[-3000:]}")


def test_loop_sees_messages_arriving_and_sigterm_leaves_the_state_whole(inbox, tmp_path):
    d, cells = tmp_path / "watch", tmp_path / "cells"
    d.mkdir()
    proc = _spawn_watch(d, inbox.url, "--interval", "1", "--feed", "new", "--matrix", str(cells))
    log = tmp_path / "watch.log"
    try:
        _wait_for(lambda: (d / "index.html").is_file(), 60, proc, log)
        for raw in demo_mails("v2"):
            inbox.deliver(raw)
        _wait_for(lambda: [r for r in _series(d) if r["status"] == "dispatched"], 120, proc, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(60)
    assert code == 130, log.read_text()
    with _state(d) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not list(d.glob("watch.sqlite-*")), "one state file, no journal left behind"
    before = _series(d)
    res = _watch(d, inbox.url, "--once", "--feed", "new", "--matrix", cells)
    assert res.returncode == 0 and "queued" not in res.stdout, res.stdout
    assert _series(d) == before


# ------------------------------------------------------------------ real runs (slow)

@pytest.mark.slow
def test_series_run_a_new_revision_waits_and_sigterm_resumes(inbox, tmp_path, kernel_build,
                                                             monkeypatch):
    """Demo v1 runs (boot suite); v2 is posted during that run and runs after it; SIGTERM
    during v2's run puts it back in the queue; the restart runs v2 again and v1 not."""
    # an identity to sign with, whatever this host's git has: the reply's Tested-by is checked
    gitconfig = tmp_path / "gitconfig"
    gitconfig.write_text("[user]\n\tname = Ada Tester\n\temail = a@example.org\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    d = tmp_path / "watch"
    d.mkdir()
    log = tmp_path / "watch.log"
    proc = _spawn_watch(d, inbox.url, "--interval", "2", "--suite", "boot")
    try:
        _wait_for(lambda: (d / "index.html").is_file(), 60, proc, log)
        for raw in demo_mails("v1"):
            inbox.deliver(raw)
        _wait_for(lambda: [r for r in _series(d) if r["status"] == "running"], 300, proc, log)
        for raw in demo_mails("v2"):
            inbox.deliver(raw)
        _wait_for(lambda: [r for r in _series(d) if r["revision"] == 2
                           and r["status"] == "running"], 1800, proc, log)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(120)
    assert code == 130, log.read_text()[-3000:]
    v1, v2 = _series(d)
    assert (v1["status"], v1["verdict"], v1["runs"]) == ("done", "passed", 1), v1
    assert v2["status"] == "queued" and "stopped during its run" in v2["message"], v2
    assert v2["queued"] >= v1["started"], "v2 was posted while v1 ran"
    v1_dir = d / "series" / v1["key"]
    v1_results = (v1_dir / "results" / "results.json").stat().st_mtime

    res = _watch(d, inbox.url, "--once", "--suite", "boot", timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr
    v1, v2 = _series(d)
    assert (v1["runs"], v2["runs"], v2["status"], v2["verdict"]) == (1, 2, "done", "passed")
    assert (v1_dir / "results" / "results.json").stat().st_mtime == v1_results
    for row in (v1, v2):
        sdir = d / "series" / row["key"]
        report = (sdir / "report.txt").read_text()
        assert report.startswith("zstest results: PASSED")
        reply = (sdir / "reply.txt").read_text()
        assert reply.startswith(f"Subject: Re: [PATCH v{row['revision']} 0/3] zsmalloc: report")
        assert f"In-Reply-To: <demo-v{row['revision']}-0@zstest.invalid>" in reply
        assert report in reply and "Tested-by: Ada Tester <a@example.org>" in reply
        if (REPO / "zstest" / "kcidb.py").is_file():
            assert json.loads((sdir / "kcidb.json").read_text())
    page = (d / "index.html").read_text()
    assert page.count('<tr class="series"') == 2 and page.count(">passed</span>") == 2


@pytest.mark.slow
def test_incomplete_series_from_another_tree_does_not_apply(inbox, tmp_path, shared_series,
                                                           kernel_build):
    d = tmp_path / "watch"
    for raw in mbox_messages(shared_series / "nonlru-migration-v4.mbox"):
        inbox.deliver(raw)
    res = _watch(d, inbox.url, "--once", "--backfill", "--complete-timeout", "0",
                 "--suite", "boot", timeout=1800)
    assert res.returncode == 0, res.stdout + res.stderr
    assert len(_series(d)) == 1, res.stdout + res.stderr
    [row] = _series(d)
    assert (row["status"], row["verdict"], row["exit_code"]) == ("done", "does not apply", 3)
    reply = (d / "series" / row["key"] / "reply.txt").read_text()
    # patch 01/12 never came: the first patch applied is 02/12, and it needs 01/12's code
    assert "zstest results: DOES NOT APPLY" in reply and "mm: migrate: support non-lru" in reply
    assert "patches 1/12, 3/12 never arrived" in reply and "Tested-by" not in reply
    assert "does not apply" in (d / "index.html").read_text()
