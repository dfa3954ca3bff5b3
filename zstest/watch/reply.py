"""The reply draft to a series' thread: mail headers, then the series' report.txt (what
`zstest report` prints, with the notes below; report_text makes it, draft heads it).

A run that produced results.json is `report.render_report`'s text (Tested-by when everything
passed). A run that never booted a kernel (a patch that does not apply, a build that fails) has
no results.json: the draft says the same things in the same 72-column layout (series, base,
the error sentence and git's or the compiler's lines). An incomplete series (patches that never
arrived) says which were missing, and never offers a Tested-by: not the whole series was tested.
With --perf, the comparison's table (what `zstest compare --perf` prints) comes before the
Tested-by; a perf regression (or a failed perf run of the series' kernel) is said in a note
under the headline, and the report then offers no Tested-by either: the maintainer should see
the numbers first. report.txt and reply.txt are one text, so they never disagree on that.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import List, Optional

WIDTH = 72
FIELD = 10


def _field(label: str, value: str) -> List[str]:
    return textwrap.wrap(value, width=WIDTH, initial_indent=f"{label + ':':<{FIELD}}",
                         subsequent_indent=" " * FIELD, break_long_words=False,
                         break_on_hyphens=False) or [f"{label}:"]


def headers(subject: str, msgid: str) -> List[str]:
    subject = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    out = [f"Subject: {_one_line(subject)}"]
    if msgid:
        out += [f"In-Reply-To: <{_one_line(msgid)}>", f"References: <{_one_line(msgid)}>"]
    return out + [""]


def _one_line(text: str) -> str:
    # a header value is one line whatever the subject held (no header injection)
    return " ".join(text.split())


def missing_note(missing: str, total: int, waited_s: float) -> List[str]:
    if not missing:
        return []
    names = ", ".join(f"{i}/{total}" for i in missing.split(",") if i)
    return _field("Note", f"patches {names} never arrived within {_span(waited_s)}; "
                          f"the patches that did were tested as they are.") + [""]


def perf_note(words: str, withholds_tested_by: bool) -> List[str]:
    """The perf step's outcome under the headline (perfstep.PerfOutcome.words)."""
    tail = "; no Tested-by until that is explained." if withholds_tested_by else "."
    return _field("Perf", words + tail) + [""]


def with_perf_section(body: str, heading: str, table: List[str]) -> str:
    """body (a report) with the perf comparison's table before its Tested-by (or before
    "How to reproduce:", else at the end)."""
    lines = body.rstrip("\n").splitlines()
    while table and not table[-1].strip():
        table = table[:-1]
    section = _field("Perf", heading) + table
    at = next((i for i, l in enumerate(lines) if l.startswith("Tested-by:")), None)
    if at is None:
        at = next((i for i, l in enumerate(lines) if l.startswith("How to reproduce:")),
                  len(lines))
    while at > 0 and not lines[at - 1].strip():
        at -= 1
    return "\n".join(lines[:at] + [""] + section + lines[at:]).rstrip("\n") + "\n"


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def failure_text(verdict: str, title: str, revision: int, total: int, error: str,
                 detail: str = "", base: str = "") -> str:
    """A run that left no results.json, laid out as `zstest report` lays out its text."""
    lines = [f"zstest results: {verdict.upper()}", ""]
    lines += _field("Series", f"{title} (v{revision}, {total} patches)")
    if base:
        lines += _field("Base", base)
    lines += [""] + _field("Error", error)
    if detail.strip():
        lines += [""] + ["  " + l.rstrip() for l in detail.strip().splitlines()[:40]]
    return "\n".join(lines) + "\n"


def _without_tested_by(lines: List[str]) -> List[str]:
    """lines without the Tested-by trailer, and its continuation lines (a long one wraps)."""
    out: List[str] = []
    inside = False
    for line in lines:
        inside = line.startswith("Tested-by:") or (inside and line.startswith(" "))
        if not inside:
            out.append(line)
    return out


def report_text(body: str, note: Optional[List[str]] = None, tested_by: bool = True) -> str:
    """report.txt: body (a report or a failure's text) with the notes (incomplete series, perf)
    under its headline and, unless tested_by, without its Tested-by."""
    lines = body.rstrip("\n").splitlines()
    if not tested_by:
        lines = _without_tested_by(lines)
    if note:
        lines = lines[:2] + note + lines[2:]
    return _plain("\n".join(lines) + "\n")


def draft(subject: str, msgid: str, report: str) -> str:
    """reply.txt: report.txt under the mail headers, so the two never disagree."""
    return _plain("\n".join(headers(subject, msgid)) + "\n" + report)


def _plain(text: str) -> str:
    # console and mail text is untrusted: keep the draft plain text
    return "".join(ch for ch in text if ch == "\n" or (ch.isprintable() and ch != "\x1b"))


def write_draft(path: Path, text: str) -> Path:
    from ..fsutil import write_text_atomic
    return write_text_atomic(path, text)
