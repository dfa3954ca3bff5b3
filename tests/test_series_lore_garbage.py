"""The lore client against a local server answering broken HTTP: one sentence, exit 2, never a
traceback (issue 26, findings 4 and 5). The server is real (127.0.0.1); only its answers are bad."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pytest

from conftest import run_zstest
from lore_server import LocalLore
from zstest.errors import BadInput
from zstest.series import lore as lore_mod

GOOD = gzip.compress(b"From x\nSubject: [PATCH] x\n\n")


@pytest.fixture
def lore(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSTEST_CACHE", str(tmp_path / "cache"))
    with LocalLore() as server:
        yield server


ANSWERS = {
    "bad-status": b"HTTQ/9 banana\r\n\r\n",
    "no-status": b"\x00\x01\x02garbage without any line end",
    "long-header": b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
    "many-headers": b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "short-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" + GOOD,
    "short-body": b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + GOOD[:10],
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_broken_http_is_one_sentence(lore, name):
    msgid = f"{name}@x"
    lore.serve_bytes(msgid, ANSWERS[name])
    with pytest.raises(BadInput) as err:
        lore_mod.fetch_thread(msgid, lore.url)
    assert "\n" not in str(err.value)
    assert not list((Path(os.environ["ZSTEST_CACHE"]) / "lore").glob("*.mbox"))


def test_broken_http_through_the_cli_is_exit_2(lore, tmp_path):
    lore.serve_bytes("bad@x", ANSWERS["bad-status"])
    proc = run_zstest("series", "show", "bad@x", "--lore-url", lore.url, cwd=tmp_path,
                      env={"ZSTEST_CACHE": str(tmp_path / "cache")}, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:notaport/all", "ftp://x/all",
                                 "http:///all"])
def test_bad_lore_url_is_one_sentence(tmp_path, url):
    proc = run_zstest("series", "show", "a@b", "--lore-url", url, cwd=tmp_path,
                      env={"ZSTEST_CACHE": str(tmp_path / "cache")}, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0], proc.stderr


def test_headers_trickled_hit_the_total_deadline(lore, monkeypatch):
    """A server sending its headers one byte at a time, each well inside the socket timeout:
    the deadline covered only the body, so it was never cut off (finding 4)."""
    headers = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"z" * 400 + b"\r\n\r\n"
    lore.serve_bytes("slowhead@x", headers + GOOD, pause_s=0.02, chunk=1)
    monkeypatch.setattr(lore_mod, "FETCH_DEADLINE_S", 1.0)
    start = time.monotonic()
    with pytest.raises(BadInput, match="did not finish within 1 s"):
        lore_mod.fetch_thread("slowhead@x", lore.url)
    # the trickle alone lasts 8.5 s: cut at the deadline, with slack for a loaded host
    assert time.monotonic() - start < 4


def test_a_good_answer_still_fetches(lore):
    lore.serve_bytes("good@x", b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(GOOD) + GOOD)
    path = lore_mod.fetch_thread("good@x", lore.url)
    assert path.read_bytes() == gzip.decompress(GOOD)
