"""Property-based fuzzing of the lore client (series/lore.py) against a real local server
(tests/lore_server.py, 127.0.0.1) answering generated garbage: any answer ends in a cached mbox
or one sentence and exit 2, within the deadline, writing nothing outside the cache's lore/.
"""

from __future__ import annotations

import gzip
import itertools
import time

import pytest
from hypothesis import given, strategies as st

from fuzzing import assert_one_sentence, files_under, fuzz
from lore_server import LocalLore
from zstest.errors import ZstestError
from zstest.series import lore as lore_mod

MBOX = b"From x Mon Sep 17 00:00:00 2001\nFrom: a <a@b>\nSubject: [PATCH] x\n\nbody\n"
STATUS = st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 404 Not Found",
                          b"HTTP/1.1 302 Found", b"HTTP/1.1 500 x", b"HTTP/1.1 999 ?",
                          b"HTTP/9 200", b"200 OK", b"", b"HTTP/1.1 200 OK" + b" x" * 40000])
HEADER = st.one_of(
    st.sampled_from([b"Content-Length: 0", b"Content-Length: 10", b"Content-Length: -1",
                     b"Content-Length: 99999999999999999999", b"Content-Length: x",
                     b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
                     b"Content-Encoding: gzip", b"Location: /all/x@y/t.mbox.gz",
                     b"Location: http://[::1", b"Connection: close", b": empty", b"X" * 70000,
                     b"folded:\r\n continued"]),
    st.binary(max_size=40))
BODY = st.one_of(st.just(gzip.compress(MBOX)), st.binary(max_size=200),
                 st.binary(max_size=64).map(gzip.compress),
                 st.just(gzip.compress(MBOX)[:20]),
                 st.just(b"5\r\nabcde\r\n0\r\n\r\n"), st.just(b"zz\r\n"),
                 st.just(gzip.compress(MBOX) * 2))


@st.composite
def answer(draw) -> bytes:
    headers = draw(st.lists(HEADER, max_size=4))
    many = [b"X-Many: y"] * draw(st.sampled_from([0, 0, 150]))
    sep = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    return sep.join([draw(STATUS)] + headers + many) + sep + sep + draw(BODY)


@pytest.fixture(scope="module")
def server():
    with LocalLore() as lore:
        yield lore


_ids = itertools.count()


@fuzz(60)
@given(reply=answer())
def test_any_answer_is_an_mbox_or_one_sentence(server, tmp_path_factory, monkeypatch, reply):
    home = tmp_path_factory.mktemp("lore")
    monkeypatch.setenv("ZSTEST_CACHE", str(home / "cache"))
    monkeypatch.setattr(lore_mod, "FETCH_DEADLINE_S", 5)
    msgid = f"fuzz{next(_ids)}@x"
    server.serve_bytes(msgid, reply)
    start = time.monotonic()
    try:
        path = lore_mod.fetch_thread(msgid, server.url)
    except ZstestError as err:
        assert_one_sentence(err)
        path = None
    assert time.monotonic() - start < 5 + 3
    written = files_under(home)
    assert all(f.startswith("cache") for f in written), written
    mboxes = [f for f in written if f.endswith(".mbox")]
    assert mboxes == ([str(path.relative_to(home))] if path else []), (mboxes, path)
