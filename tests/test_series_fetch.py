"""Series manifests and `zstest series fetch`, against a local lore server serving real mboxes."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from lore_server import LocalLore
from zstest.errors import BadInput
from zstest.series.manifest import (check_against_manifest, find_by_msgid, find_manifest,
                                    load_manifest, load_manifests)
from zstest.series.parse import build_series, read_mails

MANIFEST = REPO / "kernel-patches" / "nonlru-migration" / "series.toml"
V4_COVER = "1461743305-19970-1-git-send-email-minchan@kernel.org"
V5_COVER = "1462760433-32357-1-git-send-email-minchan@kernel.org"
MSGID_HEADER = re.compile(rb"(?im)^(?:message-id|in-reply-to|references):[^\n]*(?:\n[ \t][^\n]*)*")
MSGID_IN_HEADER = re.compile(rb"<([^<>\s]+@[^<>\s]+)>")


# ------------------------------------------------------------------ local lore

@pytest.fixture
def lore():
    """A public-inbox-like server on 127.0.0.1 (url, serve(msgid, mbox bytes), requests)."""
    with LocalLore() as server:
        yield server


def thread_of(shared: Path, rev: int) -> bytes:
    return ((shared / f"nonlru-migration-v{rev}.mbox").read_bytes()
            + (shared / f"nonlru-migration-v{rev}-replies.mbox").read_bytes())


def fetch(*args, cache: Path, manifests: Path = None):
    env = {"ZSTEST_CACHE": str(cache)}
    if manifests is not None:
        env["ZSTEST_KERNEL_PATCHES"] = str(manifests)
    r = run_zstest("series", "fetch", *args, env=env, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def error_line(r) -> str:
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert lines and lines[0].startswith("zstest: error: "), r.stderr
    assert len(lines) == 1, r.stderr
    return lines[0]


# ------------------------------------------------------------------ the real manifest

def test_manifest_loads_v4_to_v7():
    m = load_manifest(MANIFEST)
    assert m.name == "nonlru-migration" and sorted(m.revisions) == [4, 5, 6, 7]
    assert m.newest.number == 7
    assert m.needs.startswith("a 2016 mmotm tree")
    assert m.revisions[4].base == "mmotm-2016-04-06-20-40"
    assert m.revisions[5].base == "mmotm-2016-05-05-17-19"
    for n in (4, 5):
        r = m.revisions[n]
        # v4 and v5: every subject, in order, from the cover letters' shortlogs.
        assert sorted(r.patches) == list(range(1, 13)) and r.patch_count == 12
        assert all(p.subject for p in r.patches.values())
    assert m.revisions[4].patches[11].subject == "zsmalloc: page migration support"
    assert [p.subject for _, p in sorted(m.revisions[4].patches.items())] == \
        [p.subject for _, p in sorted(m.revisions[5].patches.items())]
    assert load_manifests()[0].name == "nonlru-migration"
    assert find_manifest("nonlru-migration").path == MANIFEST


@pytest.mark.parametrize("rev", [4, 5])
def test_every_v4_v5_msgid_is_in_the_real_mbox(shared_series, rev):
    """No invented message-id: each one the manifest names for v4/v5 is in a header of the real mboxes."""
    seen = set()
    for header in MSGID_HEADER.findall(thread_of(shared_series, rev)):
        seen.update(m.decode() for m in MSGID_IN_HEADER.findall(header))
    r = load_manifest(MANIFEST).revisions[rev]
    assert len(r.msgids()) >= 10
    missing = [m for m in r.msgids() if m not in seen]
    assert not missing, f"v{rev} names message-ids absent from the real mboxes: {missing}"


@pytest.mark.parametrize("rev", [4, 5])
def test_v4_v5_manifest_agrees_with_the_real_patches(shared_series, rev):
    """Subjects and message-ids of the patches present in the real mbox match the manifest."""
    mbox = shared_series / f"nonlru-migration-v{rev}.mbox"
    series = build_series(read_mails(mbox), str(mbox), "mbox")
    revision = load_manifest(MANIFEST).revisions[rev]
    assert len(series.patches) >= 7
    assert check_against_manifest(revision, series) == []
    for p in series.patches:
        assert revision.patches[p.index].msgid == p.msgid


def test_find_by_msgid():
    m, r = find_by_msgid(f"<{V5_COVER}>")
    assert m.name == "nonlru-migration" and r.number == 5
    assert find_by_msgid("1463754225-31311-12-git-send-email-minchan@kernel.org")[1].number == 6
    assert find_by_msgid("nobody@example.org") is None


# ------------------------------------------------------------------ validation

GOOD_TOML = '''
name = "demo"
title = "A demo"
needs = "a 6.1 tree"
[revisions.v1]
cover_msgid = "cover-1@example.org"
posted = 2026-11-27
patch_count = 2
[revisions.v1.patches]
1 = { subject = "zsmalloc: one", msgid = "p1@example.org" }
2 = { subject = "zram: two" }
'''


def write_manifest(root: Path, text: str, name: str = "demo") -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "series.toml").write_text(text)
    return d / "series.toml"


def test_valid_small_manifest(tmp_path):
    m = load_manifest(write_manifest(tmp_path, GOOD_TOML))
    assert m.newest.number == 1 and m.newest.needs == "a 6.1 tree"
    assert m.newest.msgids() == ["cover-1@example.org", "p1@example.org"]


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace('title = "A demo"\n', ""), "`title` is missing"),
    (lambda t: t.replace("patch_count = 2", 'patch_count = "two"'),
     "`revisions.v1.patch_count` must be a positive integer"),
    (lambda t: t.replace("[revisions.v1]", "[revisions.one]").replace("revisions.v1.patches",
                                                                    "revisions.one.patches"),
     "`revisions.one` must look like v1"),
    (lambda t: t.replace("2 = {", "3 = {"), "`revisions.v1.patches.3` is not a patch index from 1 to 2"),
    (lambda t: t.replace('"p1@example.org"', '"<p1@example.org>"'),
     "`revisions.v1.patches.1.msgid` '<p1@example.org>' is not a message-id"),
    (lambda t: t.replace('"p1@example.org"', '"cover-1@example.org"'),
     "`revisions.v1.patches.1.msgid` repeats the message-id of `revisions.v1.cover_msgid`"),
    (lambda t: t.replace("posted = 2026-11-27", 'posted = "yesterday"'),
     "`revisions.v1.posted` must be a TOML date"),
    (lambda t: t.replace('needs = "a 6.1 tree"', 'need = "a 6.1 tree"'), "unknown key `need`"),
    (lambda t: t.replace('name = "demo"', 'name = "other"'), "`name` is 'other' but the manifest lives in demo/"),
    (lambda t: t + "[oops\n", "is not valid TOML"),
])
def test_manifest_errors_name_file_and_key(tmp_path, edit, words):
    path = write_manifest(tmp_path, edit(GOOD_TOML))
    with pytest.raises(BadInput) as exc:
        load_manifest(path)
    assert str(path) in exc.value.message and words in exc.value.message, exc.value.message


def test_broken_manifest_via_cli_is_one_sentence(tmp_path):
    write_manifest(tmp_path / "kp", GOOD_TOML.replace("patch_count = 2", "patch_count = 0"))
    r = fetch("demo", cache=tmp_path / "cache", manifests=tmp_path / "kp")
    assert r.returncode == 2
    assert "patch_count` must be a positive integer" in error_line(r)


# ------------------------------------------------------------------ zstest series fetch

def test_fetch_by_name_and_rev(shared_series, lore, tmp_path):
    url, serve = lore.url, lore.serve
    serve(V5_COVER, thread_of(shared_series, 5))
    out = tmp_path / "v5.mbox"
    r = fetch("nonlru-migration", "--rev", "5", "--lore-url", url, "--out", out,
              cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert lore.requests == [f"/all/{V5_COVER}/t.mbox.gz"]
    assert "manifest:  nonlru-migration v5, posted 2016-05-09 against mmotm-2016-05-05-17-19" in r.stdout
    assert "revision:  v5" in r.stdout and "patches:   7 of 12" in r.stdout
    assert "11/12 zsmalloc: page migration support" not in r.stdout
    assert "missing:   2/12, 3/12, 8/12, 10/12, 11/12" in r.stdout
    assert "needs:     this series needs a 2016 mmotm tree: " in r.stdout
    assert "does not apply to 6.1 or 6.12" in r.stdout
    assert "warning" not in r.stderr, r.stderr
    assert out.read_bytes() == thread_of(shared_series, 5)


def test_fetch_default_is_the_newest_revision(lore, tmp_path):
    url = lore.url  # nothing served: v7's thread is not in the local archive
    r = fetch("nonlru-migration", "--lore-url", url, cache=tmp_path / "cache")
    assert r.returncode == 2
    assert lore.requests == ["/all/1464736881-24886-1-git-send-email-minchan@kernel.org/t.mbox.gz"]
    assert "HTTP 404" in error_line(r)


def test_fetch_by_msgid_json_and_cache(shared_series, lore, tmp_path):
    url, serve = lore.url, lore.serve
    serve(V4_COVER, thread_of(shared_series, 4))
    r = fetch(f"<{V4_COVER}>", "--json", "--lore-url", url, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["name"] == "nonlru-migration" and data["revision"]["revision"] == 4
    assert data["series"]["revision"] == 4 and data["series"]["missing"] == [1, 3]
    assert data["warnings"] == [] and data["needs"].startswith("this series needs a 2016 mmotm tree")
    # Cached: the server is no longer asked.
    lore.threads.clear()
    r = fetch(V4_COVER, "--lore-url", url, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert len(lore.requests) == 1
    # A msgid with the wrong --rev is refused.
    r = fetch(V4_COVER, "--rev", "5", "--lore-url", url, cache=tmp_path / "cache")
    assert r.returncode == 2 and "is v4 of nonlru-migration, not v5" in error_line(r)


def test_subject_mismatch_is_a_warning(shared_series, lore, tmp_path):
    url, serve = lore.url, lore.serve
    thread = thread_of(shared_series, 4)
    edited = thread.replace(b"Subject: [PATCH v4 06/12] zsmalloc: use accessor\n",
                            b"Subject: [PATCH v4 06/12] zsmalloc: use accessors everywhere\n")
    assert edited != thread
    serve(V4_COVER, edited)
    r = fetch("nonlru-migration", "--rev", "4", "--lore-url", url, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    warnings = [l for l in r.stderr.splitlines() if l.startswith("zstest: warning: ")]
    assert warnings == ["zstest: warning: patch 6/12 is 'zsmalloc: use accessors everywhere', "
                        "the manifest says 'zsmalloc: use accessor'."]


def test_wrong_thread_is_a_warning(shared_series, lore, tmp_path):
    url, serve = lore.url, lore.serve
    serve(V4_COVER, thread_of(shared_series, 5))  # a server answering with another revision
    r = fetch("nonlru-migration", "--rev", "4", "--lore-url", url, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "zstest: warning: the fetched thread is v5, the manifest's is v4." in r.stderr
    assert ("patch 4/12 has message-id <1462760433-32357-5-git-send-email-minchan@kernel.org>, "
            "the manifest says <1461743305-19970-5-git-send-email-minchan@kernel.org>.") in r.stderr


def test_unknown_name_and_rev_list_the_known_ones(tmp_path):
    r = fetch("no-such-series", cache=tmp_path / "cache")
    assert r.returncode == 2
    assert "known: nonlru-migration" in error_line(r)
    r = fetch("nonlru-migration", "--rev", "3", cache=tmp_path / "cache")
    assert r.returncode == 2
    assert "known revisions: 4, 5, 6, 7" in error_line(r)


def test_unreachable_lore(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    r = fetch("nonlru-migration", "--rev", "5", "--lore-url", f"http://127.0.0.1:{port}/all",
              cache=tmp_path / "cache")
    assert r.returncode == 2  # lore.py's code for an unreachable server (bad input)
    assert "cannot reach" in error_line(r) and V5_COVER in error_line(r)


def test_series_list(tmp_path):
    r = run_zstest("series", "list", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "nonlru-migration: Support non-lru page migration" in r.stdout
    assert re.search(r"v4  2016-04-27  12 patches  base mmotm-2016-04-06-20-40", r.stdout)
    assert "v6  2016-05-20  12 patches  base not recorded" in r.stdout
    r = run_zstest("series", "list", env={"ZSTEST_KERNEL_PATCHES": str(tmp_path)}, timeout=60)
    assert r.returncode == 0 and "no series manifests" in r.stdout
