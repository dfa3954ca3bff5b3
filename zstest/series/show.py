"""Human-readable text of a Series for `zstest series show`."""

from __future__ import annotations

from ..textsafe import printable
from .model import Series


def format_series(series: Series) -> str:
    width = len(str(series.total))
    flags = f" [{' '.join(series.prefix_flags)}]" if series.prefix_flags else ""
    lines = [f"source:    {series.source} ({series.kind})",
             f"revision:  v{series.revision}{flags}",
             f"cover:     {series.cover_subject if series.cover_subject is not None else '(none)'}",
             f"base:      {series.base_commit or '(not stated)'}",
             *([f"msgid:     <{series.msgid}>"] if series.msgid else []),
             f"patches:   {len(series.patches)} of {series.total}"]
    for p in series.patches:
        lines.append(f"  {p.index:>{width}}/{p.total} {p.subject}")
        lines.append(f"  {'':>{2 * width + 1}} {p.author}  +{p.added}/-{p.removed}")
        for f in p.files:
            lines.append(f"  {'':>{2 * width + 1}}   {f}")
        for t in p.trailers:
            lines.append(f"  {'':>{2 * width + 1}}   {t['tag']}: {t['who']}")
    if series.missing:
        lines.append("missing:   " + ", ".join(f"{i}/{series.total}" for i in series.missing))
    if series.problems:
        lines.append("problems:")
        lines += [f"  - {p}" for p in series.problems]
    # subjects, names and paths come from the mail: no escape sequence reaches the terminal
    return "\n".join(printable(line, keep_newlines=False) for line in lines)
