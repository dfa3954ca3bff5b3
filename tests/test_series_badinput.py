"""Bad series input: one sentence, exit 2, no traceback."""

from __future__ import annotations

import os

import pytest

from conftest import REPO, run_zstest
from lore_server import LocalLore
from zstest.errors import BadInput
from zstest.series import load_series

GOOD = REPO / "kernel-patches" / "fixtures" / "good-3"
DATA = REPO / "tests" / "data" / "series"


def good_patches():
    return sorted(GOOD.glob("*.patch"))


def show(path, *extra, env=None):
    r = run_zstest("series", "show", *extra, str(path), env=env, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def one_error_line(r) -> str:
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert lines and lines[0].startswith("zstest: error: "), r.stderr
    return lines[0]


def test_empty_file(tmp_path):
    f = tmp_path / "empty.mbox"
    f.write_bytes(b"")
    r = show(f)
    assert r.returncode == 2
    assert "is empty" in one_error_line(r)


def test_plain_text_is_no_mbox(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("Shopping list\n\nmilk\neggs\nbread\n")
    r = show(f)
    assert r.returncode == 2
    assert "neither an mbox nor a patch" in one_error_line(r)


def test_binary_garbage(tmp_path):
    f = tmp_path / "garbage.mbox"
    f.write_bytes(os.urandom(4096))
    r = show(f)
    assert r.returncode == 2
    assert "binary data" in one_error_line(r)


def test_truncated_mbox(tmp_path):
    data = b"".join(p.read_bytes() for p in good_patches())
    # Cut the last patch in the middle of its last hunk.
    cut = data.rindex(b"\n@@ ") + 200
    f = tmp_path / "cut.mbox"
    f.write_bytes(data[:cut])
    r = show(f)
    assert r.returncode == 2
    line = one_error_line(r)
    assert "looks truncated" in line and "3/3" in line


def test_mbox_truncated_before_last_diff(tmp_path):
    data = b"".join(p.read_bytes() for p in good_patches())
    cut = data.rindex(b"\ndiff --git")
    f = tmp_path / "cut-early.mbox"
    f.write_bytes(data[:cut])
    r = show(f)
    assert r.returncode == 2
    assert "looks truncated: its last message, patch 3/3, ends before its diff" in one_error_line(r)


def test_malformed_hunk(tmp_path):
    text = good_patches()[0].read_text()
    head, sep, rest = text.partition("\n@@ ")
    body = rest.split("\n", 1)[1]
    # A line that is neither context nor +/- inside the hunk.
    broken = head + sep + rest.split("\n", 1)[0] + "\n" + "GARBAGE LINE\n" + body
    f = tmp_path / "0001-broken.patch"
    f.write_text(broken)
    r = show(f)
    assert r.returncode == 2
    assert "is malformed" in one_error_line(r)


def test_patch_writing_outside_tree(tmp_path):
    text = good_patches()[0].read_text()
    evil = text.replace("a/mm/zsmalloc.c", "a/../../etc/zsmalloc.c").replace(
        "b/mm/zsmalloc.c", "b/../../etc/zsmalloc.c")
    assert evil != text
    f = tmp_path / "evil.patch"
    f.write_text(evil)
    r = show(f)
    assert r.returncode == 2
    assert "writes outside the tree (../../etc/zsmalloc.c)" in one_error_line(r)


def test_absolute_path_refused(tmp_path):
    text = good_patches()[0].read_text()
    evil = text.replace("diff --git a/mm/zsmalloc.c b/mm/zsmalloc.c\n", "").replace(
        "--- a/mm/zsmalloc.c", "--- /etc/zsmalloc.c").replace("+++ b/mm/zsmalloc.c", "+++ /etc/zsmalloc.c")
    f = tmp_path / "abs.patch"
    f.write_text(evil)
    with pytest.raises(BadInput, match="writes outside the tree"):
        load_series(str(f))


def test_series_with_gap_is_shown(tmp_path):
    d = tmp_path / "gap"
    d.mkdir()
    for p in good_patches():
        if not p.name.startswith("0002"):
            (d / p.name).write_bytes(p.read_bytes())
    r = show(d, "--json")
    assert r.returncode == 0, r.stderr
    import json
    assert json.loads(r.stdout)["missing"] == [2]


def test_nonexistent_source():
    r = show("/nonexistent/series.mbox")
    assert r.returncode == 2
    assert "no file, directory, git range" in one_error_line(r)


def test_dir_without_patches(tmp_path):
    (tmp_path / "README").write_text("nothing\n")
    r = show(tmp_path)
    assert r.returncode == 2
    assert "holds no *.patch files" in one_error_line(r)


# ------------------------------------------------------------------ lore msgid

@pytest.fixture
def lore_server():
    with LocalLore() as server:
        yield server


def test_msgid_fetch_from_local_lore(shared_series, lore_server, tmp_path):
    msgid = "1461743305-19970-1-git-send-email-minchan@kernel.org"
    thread = ((shared_series / "nonlru-migration-v4.mbox").read_bytes()
              + (shared_series / "nonlru-migration-v4-replies.mbox").read_bytes())
    lore_server.serve(msgid, thread)
    env = {"ZSTEST_CACHE": str(tmp_path / "cache")}
    r = show(f"<{msgid}>", "--json", "--lore-url", lore_server.url, env=env)
    assert r.returncode == 0, r.stderr
    import json
    data = json.loads(r.stdout)
    assert data["kind"] == "msgid" and data["revision"] == 4 and data["missing"] == [1, 3]
    assert len(list((tmp_path / "cache" / "lore").glob("*.mbox"))) == 1
    # Cached: a second show works with the server gone.
    lore_server.threads.clear()
    r = show(msgid, "--lore-url", lore_server.url, env=env)
    assert r.returncode == 0, r.stderr


def test_msgid_404(lore_server, tmp_path):
    r = show("no-such-thread@example.org", "--lore-url", lore_server.url,
             env={"ZSTEST_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2
    line = one_error_line(r)
    assert "HTTP 404" in line and "no-such-thread@example.org" in line


def test_msgid_unreachable_lore(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = show("x@example.org", "--lore-url", f"http://127.0.0.1:{port}/all",
             env={"ZSTEST_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 2
    assert "cannot reach" in one_error_line(r)


def test_an_mbox_over_the_cap_is_refused_unread(tmp_path):
    """A 300 MiB mbox (sparse: nothing is written) was read whole; it is refused by its size."""
    big = tmp_path / "big.mbox"
    with open(big, "wb") as fh:
        fh.write(b"From x Mon Sep 17 00:00:00 2001\n")
        fh.truncate(300 << 20)
    r = show(big)
    assert r.returncode == 2
    assert "300 MiB" in one_error_line(r)
