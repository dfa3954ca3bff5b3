"""Property-based fuzzing of the mbox/patch intake (zstest/series/): any bytes, any mail, any
diff ends in a Series or one sentence and exit 2, never a traceback; what `series show` prints
is printable; git's own view (gitview) agrees or refuses; time is linear in the input's size.
"""

from __future__ import annotations

import base64
import quopri

from hypothesis import given, strategies as st

from budget import assert_within_budget, real_mbox_bytes
from fuzzing import assert_cli_ok_or_one_sentence, assert_one_sentence, files_under, fuzz, run_cli
from zstest.errors import BadInput, ZstestError
from zstest.series import format_series, load_series
from zstest.series.gitview import check_series
from zstest.series.parse import parse_subject

# ------------------------------------------------------------------ strategies

NAME_PARTS = st.sampled_from(["mm", "zsmalloc.c", "..", ".git", ".GIT", "a b", "x", "", "é",
                              "\\303\\244", '"q"', "\t", "b", "dev", "null"])
PATH = st.lists(NAME_PARTS, min_size=1, max_size=4).map("/".join)
QUOTED = PATH.map(lambda p: '"' + p.replace('"', '\\"') + '"')
ANY_PATH = st.one_of(PATH, QUOTED, st.just("/dev/null"), st.just("/etc/passwd"))


@st.composite
def diff_line(draw) -> str:
    kind = draw(st.integers(0, 14))
    a, b = draw(ANY_PATH), draw(ANY_PATH)
    return [
        lambda: f"diff --git a/{a} b/{b}",
        lambda: f"diff --git {a} {b}",
        lambda: f"--- a/{a}",
        lambda: f"+++ b/{b}",
        lambda: "@@ -%d,%d +%d,%d @@" % tuple(draw(st.integers(0, 4)) for _ in range(4)),
        lambda: "+" + draw(st.text(max_size=10)),
        lambda: "-" + draw(st.text(max_size=10)),
        lambda: " " + draw(st.text(max_size=10)),
        lambda: draw(st.sampled_from(["rename from ", "rename to ", "copy from ", "copy to "])) + a,
        lambda: draw(st.sampled_from(["new file mode 100644", "deleted file mode 100644",
                                      "GIT binary patch", "literal 5", "index 1..2 100644",
                                      "\\ No newline at end of file", "---", "Index: " + a,
                                      "base-commit: " + "a" * 40, "Reviewed-by: R <r@x>"])),
        lambda: "From x@y Mon Sep 17 00:00:00 2001",
        lambda: ">From x",
        lambda: draw(st.text(max_size=30)),
        lambda: "",
        lambda: "-- ",
    ][kind]()


SUBJECT_WORDS = st.sampled_from(["[PATCH]", "[PATCH 1/3]", "[PATCH v2 2/3]", "[RFC PATCH 0/2]",
                                 "[PATCH 1/99999999999]", "[PATCH 00/00]", "[PATCH v0]",
                                 "[PATCH 3/2]", "[", "]", "Re:", "Fwd: Re:", "[RESEND]",
                                 "mm: zsmalloc:", "x", "\x1b[31m", "=?utf-8?b?G1sybQ==?=",
                                 "=?utf-8?q?=1B]0;t=07?=", "=?bogus?x?y?=", "[PATCH 1/" + "9" * 40 + "]"])
SUBJECT = st.lists(SUBJECT_WORDS, max_size=6).map(" ".join)


def encode(body: str, how: str) -> tuple[str, str]:
    raw = body.encode("utf-8", "surrogatepass")
    if how == "base64":
        return "base64", base64.encodebytes(raw).decode()
    if how == "quoted-printable":
        return "quoted-printable", quopri.encodestring(raw).decode()
    return "8bit", body


@st.composite
def mail(draw) -> str:
    subject = draw(SUBJECT)
    headers = [f"From: {draw(st.sampled_from(['A <a@b>', '=?utf-8?b?G1s1bQ==?= <x@y>', '', '<>']))}",
               f"Subject: {subject}",
               f"Message-ID: {draw(st.sampled_from(['<m@x>', '<>', '<a b@c>', 'junk', '<' + 'm' * 50 + '@x>']))}"]
    if draw(st.booleans()):
        headers.append(f"In-Reply-To: {draw(st.sampled_from(['<m@x>', '<p@x>', 'x']))}")
    body = "\n".join(draw(st.lists(diff_line(), max_size=25)))
    if not draw(st.booleans()):
        return "\n".join(headers) + "\n\n" + body + "\n"
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        ctype = draw(st.sampled_from(["text/plain; charset=utf-8", "text/plain; charset=bogus",
                                      "application/octet-stream", "text/x-patch", "text/html",
                                      "message/rfc822", "multipart/mixed"]))
        enc, text = encode("\n".join(draw(st.lists(diff_line(), max_size=12))),
                           draw(st.sampled_from(["base64", "quoted-printable", "8bit"])))
        parts.append(f"--B\nContent-Type: {ctype}\nContent-Transfer-Encoding: {enc}\n\n{text}\n")
    return ("\n".join(headers) + "\nMIME-Version: 1.0\n"
            f"Content-Type: multipart/mixed; boundary=\"B\"\n\n{body}\n" + "".join(parts) + "--B--\n")


@st.composite
def mbox(draw) -> bytes:
    mails = draw(st.lists(mail(), min_size=1, max_size=4))
    if draw(st.booleans()) and len(mails) == 1:
        data = mails[0]
    else:
        data = "".join(f"From zstest Mon Sep 17 00:00:00 2001\n{m}\n" for m in mails)
    raw = data.encode("utf-8", "surrogatepass")
    noise = draw(st.binary(max_size=8))
    return raw + noise if draw(st.booleans()) else raw


# ------------------------------------------------------------------ properties

def load_or_refuse(path):
    try:
        return load_series(str(path))
    except ZstestError as err:
        assert_one_sentence(err)
        return None


def assert_printable(text: str) -> None:
    assert all(ch == "\n" or ch.isprintable() for ch in text), repr(text)


@fuzz(80)
@given(data=mbox())
def test_any_mbox_is_a_series_or_one_sentence(tmp_path, data):
    path = tmp_path / "in.mbox"
    path.write_bytes(data)
    series = load_or_refuse(path)
    if series is None:
        return
    assert_printable(format_series(series))
    assert 1 <= len(series.patches) and series.total <= 5000
    for patch in series.patches:
        assert not any(".." in f.split("/") for f in patch.files), patch.files
    if len(series.patches) <= 3:
        try:
            check_series(series)      # git's own mailsplit + mailinfo agree, or exit 2
        except BadInput as err:
            assert_one_sentence(err)


@fuzz(60)
@given(data=st.binary(max_size=2000))
def test_any_bytes_are_a_series_or_one_sentence(tmp_path, data):
    path = tmp_path / "in.patch"
    path.write_bytes(data)
    load_or_refuse(path)


@fuzz(15)
@given(data=mbox())
def test_series_show_cli_writes_nothing_and_exits_0_or_2(tmp_path_factory, monkeypatch, data):
    home = tmp_path_factory.mktemp("show")
    monkeypatch.setenv("ZSTEST_CACHE", str(home / "cache"))
    (home / "in.mbox").write_bytes(data)
    before = files_under(home)
    code, out, err = run_cli(["series", "show", str(home / "in.mbox")])
    assert_cli_ok_or_one_sentence(code, err)
    assert_printable(out)
    # only the cache's own empty repository for git's view of the mail (gitview)
    assert {f for f in files_under(home) - before if not f.startswith("cache")} == set()


@fuzz(200)
@given(subject=st.text(max_size=300))
def test_any_subject_parses(subject):
    p = parse_subject(subject)
    assert p.index is None or 0 <= p.index <= 10 ** 9


# ------------------------------------------------------------------ linear time

@fuzz(8)
@given(unit=mail())
def test_time_is_linear_in_the_size_of_a_mail_repeated(tmp_path, unit):
    """Any mail, its body and subject grown to ~64 KiB, reads in the time 64 KiB of real
    patches take here (times budget.FACTOR)."""
    head, _, body = unit.partition("\n\n")
    grown = head.replace("Subject: ", "Subject: " + "[x] " * 2000, 1) + "\n\n" + \
        (body or "x\n") * max(1, (64 << 10) // max(1, len(body)))
    hostile, real = tmp_path / "hostile.mbox", tmp_path / "real.mbox"
    hostile.write_bytes(grown.encode("utf-8", "surrogatepass")[:64 << 10])
    real.write_bytes(real_mbox_bytes(hostile.stat().st_size))
    assert_within_budget(lambda: load_or_refuse(hostile), lambda: load_or_refuse(real),
                         f"{hostile.stat().st_size} bytes of a generated mail")


def test_absurd_headers_and_totals_are_refused_quickly(tmp_path):
    """Finding 4: a huge Subject (10 MB took minutes in the header parser), [PATCH 1/99999999999]
    (a 10^11-entry missing list). Refused with one sentence within the budget of real mails."""
    diff = "---\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    cases = {"subject": f"From: a <a@b>\nSubject: [PATCH] {'word ' * (200 << 10)}\n\n{diff}",
             "total": f"From: a <a@b>\nSubject: [PATCH 1/99999999999] x\n\n{diff}",
             "digits": f"From: a <a@b>\nSubject: [PATCH 1/{'9' * 5000}] x\n\n{diff}"}
    for name, text in cases.items():
        path = tmp_path / f"{name}.patch"
        path.write_text(text)
        real = tmp_path / "real.mbox"
        real.write_bytes(real_mbox_bytes(len(text)))
        assert_within_budget(lambda: load_or_refuse(path), lambda: load_or_refuse(real), name)
        try:
            load_series(str(path))
        except BadInput as err:
            assert_one_sentence(err)
        else:
            raise AssertionError(f"{name}: accepted")
