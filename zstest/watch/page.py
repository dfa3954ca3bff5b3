"""The watch's results page: the state's series (newest first) and waiting threads as rows."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

from ..errors import BadInput
from ..htmlpage import PageRow, results_row, write_page
from ..manifests import has_results
from .perfstep import without_perf_word
from .state import PERF_PENDING, SeriesRow
from .threads import lore_thread_link
from .view import WatcherView

SERIES_FILES = ("thread.mbox", "report.txt", "reply.txt", "kcidb.json", "bot-error.txt",
                "build/build.log", "build/build.json", "build/apply.json",
                "perf/summary.txt", "perf/perf.json", "perf/junit.xml")


def _when(ts: Optional[float]) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else ""


def _note(row: SeriesRow) -> str:
    parts = []
    if row.missing:
        names = ", ".join(f"{i}/{row.total}" for i in row.missing.split(",") if i)
        parts.append(f"incomplete: {names} never arrived")
    if row.note:
        parts.append(row.note)
    first = row.message.split("\n", 1)[0].strip()
    if first and row.verdict != "passed":
        parts.append(first)
    return "; ".join(parts)


def series_row(watcher: "WatcherView", row: SeriesRow) -> PageRow:
    from .execute import results_dir_for
    series_dir = watcher.series_dir(row.key)
    verdict = row.verdict if row.status == "done" else row.status
    given = dict(title=row.title, link=lore_thread_link(watcher.cfg.lore_url, row.root),
                 revision=f"v{row.revision}", author=row.author, verdict=verdict,
                 note=_note(row), when=_when(row.finished or row.started or row.queued),
                 anchor=row.key)
    results = [results_dir_for(series_dir, s, i == 0)
               for i, s in enumerate(watcher.cfg.run.suites)]
    results = [d for d in results if has_results(d)]
    page_row = None
    if results and row.status == "done":
        try:
            page_row = results_row(results[0], **given)
        except BadInput:
            page_row = None
    if page_row is None:
        page_row = PageRow(**given)
    if not page_row.perf and row.perf and row.perf != PERF_PENDING:
        page_row.perf = without_perf_word(row.perf)      # why it was not measured
    page_row.files = [(name, series_dir / name) for name in SERIES_FILES
                      if (series_dir / name).is_file()] + page_row.files
    for extra in results[1:]:
        page_row.files += [(f"{extra.name}/{label}", path)
                           for label, path in results_row(extra).files]
    return page_row


def thread_rows(watcher: "WatcherView") -> List[PageRow]:
    rows = []
    for thread in watcher.state.waiting_threads():
        rows.append(PageRow(title=thread.title, verdict="waiting", note=thread.note,
                            link=lore_thread_link(watcher.cfg.lore_url, thread.root),
                            when=_when(thread.first_seen)))
    return rows


def write(watcher: "WatcherView") -> Path:
    rows = thread_rows(watcher) + [series_row(watcher, r)
                                   for r in reversed(watcher.state.all_series())]
    page_dir = watcher.cfg.page_dir or watcher.cfg.directory
    last_error = watcher.state.get("last_error")
    subtitle = f"{watcher.cfg.lore_url} ({watcher.cfg.feed} feed)" + \
        (f" · last poll failed: {last_error}" if last_error else "")
    return write_page(rows, page_dir, title="zstest watch: zsmalloc/zram series",
                      subtitle=subtitle)
