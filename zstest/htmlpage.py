"""The results page: one static index.html (plain HTML and CSS, no script) of series runs.

One row per series run: series (linked to its thread), revision, verdict, tests, coverage of
the series' lines, perf change, and under it the decoded splats and the links to logs, the
report, the reply draft, KCIDB JSON and plots. It is read by opening the file or from any
static web server: links are relative to the page where the files are below it.

Everything shown comes from untrusted text (subjects, authors, console lines, test names):
every piece goes through html.escape, and a link is either an http(s) URL or a relative path
(quoted), never anything a browser would run.
"""

from __future__ import annotations

import html
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .errors import BadInput
from .fsutil import write_text_atomic
from .manifests import (PERF_JSON, ResultsManifest, build_of_results, find_results, load_results,
                        read_object)

PAGE = "index.html"
MAX_SPLATS = 5
MAX_TEST_LOGS = 40
PLOT_SUFFIXES = (".png", ".svg")
# verdict word -> CSS class (colour); anything else is grey
VERDICT_CLASS = {"passed": "pass", "failed": "fail", "does not apply": "fail",
                 "does not build": "fail", "did not boot": "fail", "error": "error",
                 "waiting": "wait", "queued": "wait", "running": "wait",
                 "superseded": "other", "dispatched": "wait", "interrupted": "error",
                 "perf regressed": "fail", "perf run failed": "fail"}


@dataclass
class SplatCell:
    title: str
    test: str = ""
    location: str = ""           # the first decoded frame with a file:line
    patch: str = ""              # the patch it points at


@dataclass
class PageRow:
    """One series run as the page shows it. Paths are absolute; the page makes them relative."""
    title: str
    verdict: str
    revision: str = ""
    link: str = ""               # the thread (an http(s) URL) or ""
    author: str = ""
    note: str = ""               # incomplete, superseded, comment-only, the error sentence...
    when: str = ""
    tests: str = ""              # "18 passed, 1 failed"
    coverage: str = ""
    perf: str = ""
    anchor: str = ""
    where: str = ""              # the results dir, relative to what the page was made of
    splats: List[SplatCell] = field(default_factory=list)
    files: List[Tuple[str, Path]] = field(default_factory=list)     # (label, file)
    plots: List[Path] = field(default_factory=list)


# ---------------------------------------------------------------- reading a results dir

def _counts(results: ResultsManifest) -> str:
    counts: Dict[str, int] = {}
    for t in results.tests:
        counts[t.get("status") or "?"] = counts.get(t.get("status") or "?", 0) + 1
    order = ["passed", "failed", "error", "skipped", "interrupted"]
    keys = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
    return ", ".join(f"{counts[k]} {k}" for k in keys)


def _coverage(results: ResultsManifest) -> str:
    coverage = results.data.get("coverage")
    patches = coverage.get("patches") if isinstance(coverage, dict) else None
    if not isinstance(patches, list):
        return ""
    done = sum(p.get("executed") or 0 for p in patches if isinstance(p, dict))
    total = sum(p.get("executable") or 0 for p in patches if isinstance(p, dict))
    if not total:
        return "no line gcov counts"
    return f"{done}/{total} changed lines run ({100 * done // total}%)"


def _splats(results: ResultsManifest) -> List[SplatCell]:
    from .decode import results_splats
    cells = []
    for test, splat in results_splats(results.data, results.results_dir)[:MAX_SPLATS]:
        decoded = splat.get("decoded") if isinstance(splat.get("decoded"), dict) else {}
        frame = next((f for f in decoded.get("frames") or []
                      if isinstance(f, dict) and f.get("file") and f.get("line")), None)
        patch = next((p for p in decoded.get("patches") or [] if isinstance(p, dict)), None)
        cells.append(SplatCell(
            title=f"[{splat.get('kind', '?')}] {splat.get('title', '')}", test=test,
            location=(f"{frame.get('function') or '?'} at {frame['file']}:{frame['line']}"
                      if frame else ""),
            patch=(f"patch {patch.get('index')}: {patch.get('subject', '')}" if patch else "")))
    return cells


def _perf(directory: Path) -> Tuple[str, List[Path]]:
    """perf.json (`zstest compare --perf`) in directory: its change in words, and its plots."""
    path = directory / PERF_JSON
    if not path.is_file():
        return "", []
    try:
        data = read_object(path)
    except BadInput:
        return "perf.json unreadable", []
    metrics = [m for m in data.get("metrics") or [] if isinstance(m, dict)]
    words = []
    for verdict in ("regressed", "improved"):
        moved = [m for m in metrics if m.get("verdict") == verdict]
        if moved:
            named = ", ".join(f"{m.get('name')} {_pct(m.get('change_pct'))}" for m in moved[:3])
            words.append(f"{len(moved)} {verdict} ({named})")
    text = "; ".join(words) or (f"no significant change in {len(metrics)} metrics"
                                if metrics else str(data.get("summary") or ""))
    plots = [p for p in (_plot_file(directory, m.get("plot")) for m in metrics) if p]
    return text, plots


def _plot_file(directory: Path, plot: Any) -> Optional[Path]:
    """A metric's plot, by its name in the comparison's plots/ (perf.json records where it was
    written; a copied tree or another machine has it here), never a file outside it."""
    if not isinstance(plot, str) or not plot:
        return None
    candidate = directory / "plots" / Path(plot).name
    inside = candidate.resolve().is_relative_to(directory.resolve())
    return candidate if inside and candidate.is_file() and candidate.suffix in PLOT_SUFFIXES \
        else None


def _pct(value: Any) -> str:
    return f"{value:+.1f}%" if isinstance(value, (int, float)) else "?"


def verdict_of(results: ResultsManifest) -> str:
    return {"passed": "passed", "failed": "failed"}.get(results.status or "", results.status
                                                       or "error")


def results_row(results_dir: Path, **given: Any) -> PageRow:
    """A row from a results dir (and the build it ran, when it is still there); given fields
    (title, link, verdict, note ...) win over what the files say."""
    results = load_results(results_dir)
    build = build_of_results(results)
    series = build.series if build else None
    title = (series.cover_subject or (series.patches[0].subject if series.patches else "")
             if series else "") or "no series: base tree"
    row = PageRow(title=title, verdict=verdict_of(results),
                  revision=f"v{series.revision}" if series and series.revision else "",
                  when=str(results.data.get("started") or ""), tests=_counts(results),
                  coverage=_coverage(results), splats=_splats(results), anchor=results_dir.name)
    # next to the results, or in a perf/ beside them (zstest watch --perf: series/<key>/perf/)
    perf_dir = next((d for d in (results_dir, results_dir.parent, results_dir.parent / "perf")
                     if (d / PERF_JSON).is_file()), None)
    if perf_dir is not None:
        row.perf, row.plots = _perf(perf_dir)
    row.files = _result_files(results_dir, results.console_log)
    row.plots += sorted(p for p in results_dir.glob("*") if p.suffix in PLOT_SUFFIXES)
    for key, value in given.items():
        if value not in (None, ""):
            setattr(row, key, value)
    return row


def _result_files(results_dir: Path, console_log: str) -> List[Tuple[str, Path]]:
    files = [(name, results_dir / name) for name in
             (console_log, "summary.txt", "results.json", "junit.xml")
             if (results_dir / name).is_file()]
    logs = sorted((results_dir / "tests").glob("*.log"))[:MAX_TEST_LOGS]
    return files + [(f"tests/{p.name}", p) for p in logs]


# ---------------------------------------------------------------- rendering

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; background: #fff; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
p.meta { color: #555; margin: 0 0 1em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .35em .6em; border-bottom: 1px solid #ddd; }
th { background: #f2f2f2; font-weight: 600; }
tr.series td.title { max-width: 38em; overflow-wrap: anywhere; }
span.verdict { display: inline-block; padding: .05em .5em; border-radius: .6em; font-weight: 600; }
.pass { background: #d7f5dd; color: #0d5a1c; }
.fail { background: #fbdada; color: #8a1010; }
.error { background: #fde7c8; color: #7a4a00; }
.wait { background: #dde8fb; color: #15407a; }
.other { background: #ececec; color: #444; }
td.note, td.small { color: #555; font-size: .92em; }
tr.detail td { border-bottom: 2px solid #ccc; background: #fafafa; }
details summary { cursor: pointer; color: #15407a; }
ul { margin: .2em 0 .4em 1.2em; padding: 0; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: .2em 0; font-size: .92em; }
a { color: #15407a; }
img.plot { max-width: 28em; border: 1px solid #ddd; margin: .3em .3em 0 0; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _href(target: "str | Path", page_dir: Path) -> str:
    """A safe href: an http(s) URL as it is, a file as a path relative to the page (quoted)."""
    if isinstance(target, str):
        parts = urllib.parse.urlsplit(target)
        if parts.scheme in ("http", "https") and parts.netloc:
            return _e(target)
        return ""
    rel = os.path.relpath(Path(target).resolve(), page_dir.resolve())
    return _e(urllib.parse.quote(rel.replace(os.sep, "/")))


def _link(label: str, target: "str | Path", page_dir: Path) -> str:
    href = _href(target, page_dir)
    return f'<a href="{href}">{_e(label)}</a>' if href else _e(label)


def _row_html(row: PageRow, page_dir: Path) -> str:
    cls = VERDICT_CLASS.get(row.verdict, "other")
    title = _link(row.title, row.link, page_dir) if row.link else _e(row.title)
    author = "".join(f'<br><span class="small">{_e(text)}</span>'
                     for text in (row.author, row.where) if text)
    anchor = f' id="{_e(row.anchor)}"' if row.anchor else ""
    cells = [
        f'<td class="title">{title}{author}</td>',
        f"<td>{_e(row.revision)}</td>",
        f'<td><span class="verdict {cls}">{_e(row.verdict)}</span></td>',
        f'<td class="small">{_e(row.tests)}</td>',
        f'<td class="small">{_e(row.coverage)}</td>',
        f'<td class="small">{_e(row.perf)}</td>',
        f'<td class="note">{_e(row.note)}</td>',
        f'<td class="small">{_e(row.when)}</td>',
    ]
    out = [f'<tr class="series"{anchor} data-verdict="{_e(row.verdict)}">' + "".join(cells)
           + "</tr>"]
    detail = _detail_html(row, page_dir)
    if detail:
        out.append(f'<tr class="detail"><td colspan="8">{detail}</td></tr>')
    return "\n".join(out)


def _detail_html(row: PageRow, page_dir: Path) -> str:
    parts = []
    if row.splats:
        items = []
        for s in row.splats:
            extra = [f"during {_e(s.test)}"] if s.test else []
            extra += [_e(s.location)] if s.location else []
            extra += [f"points at {_e(s.patch)}"] if s.patch else []
            items.append(f"<li><pre>{_e(s.title)}</pre>{'; '.join(extra)}</li>")
        parts.append(f'<div class="splats"><b>Splats</b><ul>{"".join(items)}</ul></div>')
    if row.files:
        links = " · ".join(_link(label, path, page_dir) for label, path in row.files)
        parts.append(f'<details><summary>Logs and files ({len(row.files)})</summary>'
                     f"<p>{links}</p></details>")
    if row.plots:
        imgs = "".join(f'<a href="{_href(p, page_dir)}"><img class="plot" alt="{_e(p.name)}" '
                       f'src="{_href(p, page_dir)}"></a>' for p in row.plots)
        parts.append(f"<details><summary>Plots ({len(row.plots)})</summary>{imgs}</details>")
    return "".join(parts)


def render_page(rows: List[PageRow], page_dir: Path, title: str = "zstest results",
                subtitle: str = "") -> str:
    """The whole page, newest row first as given."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    head = ("<tr><th>Series</th><th>Rev</th><th>Verdict</th><th>Tests</th><th>Coverage</th>"
            "<th>Perf</th><th>Note</th><th>When</th></tr>")
    body = "\n".join(_row_html(r, page_dir) for r in rows) or \
        '<tr><td colspan="8">No series yet.</td></tr>'
    meta = f"{_e(subtitle)} · " if subtitle else ""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<h1>{_e(title)}</h1>\n<p class=\"meta\">{meta}{len(rows)} series · generated "
            f"{_e(stamp)} by zstest</p>\n<table>\n<thead>{head}</thead>\n<tbody>\n{body}\n"
            f"</tbody>\n</table>\n</body>\n</html>\n")


def write_page(rows: List[PageRow], page_dir: Path, title: str = "zstest results",
               subtitle: str = "") -> Path:
    page_dir = Path(page_dir)
    try:
        page_dir.mkdir(parents=True, exist_ok=True)
        return write_text_atomic(page_dir / PAGE, render_page(rows, page_dir, title, subtitle))
    except OSError as exc:
        raise BadInput(f"cannot write the results page in {page_dir}: {exc.strerror}.") from None


def page_for_results(root: Path, page_dir: Path) -> Path:
    """`zstest report --html DIR`: a page of every results dir under root (root itself, a
    compare/bisect/matrix tree or a CI artifact download)."""
    found = find_results(Path(root))
    if not found:
        raise BadInput(f"{root} holds no results.json at any depth: give a results directory "
                       f"or a directory holding them.")
    rows = []
    for d in found:
        where = str(d.relative_to(root)) if d != root else d.name
        rows.append(results_row(d, anchor=where, where=where))
    return write_page(rows, page_dir, subtitle=str(root))
