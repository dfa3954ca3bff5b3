"""textsafe: any text comes out printable (no ESC, no control character) and plain text unchanged."""

from __future__ import annotations

from hypothesis import given, strategies as st

from fuzzing import fuzz
from zstest.textsafe import one_line, printable

PIECES = st.one_of(st.text(max_size=8), st.sampled_from(
    ["\x1b[31m", "\x1b]0;title\x07", "\x1b]8;;http://x\x1b\\", "\x9b2J", "\x1bc", "\x1b", "\x07",
     "\r", "\t", "\n", "\u202e", "\x00", "\x7f", "\x85"]))


@fuzz(150)
@given(parts=st.lists(PIECES, max_size=12))
def test_printable_leaves_nothing_a_terminal_obeys(parts):
    text = "".join(parts)
    out = printable(text)
    assert all(ch == "\n" or ch.isprintable() for ch in out), repr(out)
    assert printable(out) == out
    line = one_line(text, 40)
    assert "\n" not in line and len(line) <= 40 and all(ch.isprintable() for ch in line)


@fuzz(60)
@given(text=st.text(alphabet=st.characters(categories=["L", "N", "P", "Zs"]), max_size=40))
def test_plain_text_is_unchanged(text):
    assert printable(text) == "".join(" " if ch.isspace() else ch for ch in text)
