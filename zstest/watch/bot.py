"""The bot: poll the feed, decide per thread, queue by patchset hash, run one series at a time.

A poll reads the feed (feed.py). The first poll of a new state file only records what the feed
lists (the bot starts from now; `--backfill` takes those too). Every message not seen before
has its thread fetched as the server has it now (series/lore.py) and decided (threads.py):
  - not a series (no patch in it) or not ours (no zsmalloc/zram file in its diffs): recorded;
  - a patchset hash that was queued or run already (a reply, a RESEND, a re-post): nothing new;
  - ours but incomplete: `waiting`, fetched again at every poll until it is complete or
    `--complete-timeout` has passed since it was first seen; then it is run as it is (the
    patches that arrived), marked incomplete on the page and in the reply, with no Tested-by;
  - ours and complete: queued.
A queued series with a newer revision queued (same title and author) is `superseded` and never
run. A new revision that arrives while an older one runs is seen at the next poll, after that
run: the run is never cut short, and the new revision is queued and run next.
A fetch that fails (server down, garbage) fails that thread only, and is tried again at the
next polls (3 times); a poll whose feed fails is logged and the next poll comes as planned.
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set

from ..errors import BadInput, ZstestError
from ..fsutil import write_text_atomic
from ..series.lore import DEFAULT_LORE_URL, fetch_thread_now, fetch_url
from ..series.parse import Mail, build_series, read_mails
from . import page as watch_page
from . import perfrun
from .execute import RunConfig, SeriesRun, run_series, write_outputs
from .feed import feed_url, parse_feed
from .state import PERF_PENDING, SeriesRow, WatchState, stopped_message
from .threads import (SEARCH_QUERY, ThreadInfo, classify, only_comments_changed, patchset_hash,
                      revision_key, series_title)

STATE_FILE = "watch.sqlite"
MAX_FETCH_ATTEMPTS = 3


@dataclass
class WatchConfig:
    directory: Path                          # the state file, series/<key>/ and index.html
    lore_url: str = DEFAULT_LORE_URL
    feed: str = "search"                     # search (dfn: query) or new (new.atom)
    query: str = SEARCH_QUERY
    run: RunConfig = field(default_factory=RunConfig)
    backfill: bool = False
    matrix_dir: Optional[Path] = None        # --matrix: write CI cells instead of running
    page_dir: Optional[Path] = None          # default: directory
    tree_label: str = "6.1"                  # the cells' tree axis


class Watcher:
    def __init__(self, cfg: WatchConfig, echo: Callable[[str], None] = print):
        self.cfg = cfg
        self.echo = echo
        cfg.directory.mkdir(parents=True, exist_ok=True)
        self.state = WatchState(cfg.directory / STATE_FILE)
        self.fetch_dir = cfg.directory / ".fetch"
        self.fetch_dir.mkdir(exist_ok=True)

    def say(self, text: str) -> None:
        self.echo(f"zstest: watch: {text}")

    def series_dir(self, key: str) -> Path:
        return self.cfg.directory / "series" / key

    # ------------------------------------------------------------ polling

    def poll(self) -> None:
        """One poll: the feed, then every new message's thread and every waiting thread.
        BadInput when the feed itself cannot be read (the state says so too)."""
        url = feed_url(self.cfg.lore_url, self.cfg.feed, self.cfg.query)
        feed_file = self.fetch_dir / "feed.atom"
        try:
            entries = self._read_feed(url, feed_file)
        except BadInput as exc:
            with self.state.transaction() as db:
                self.state.put(db, "last_poll", str(time.time()))
                self.state.put(db, "last_error", exc.message)
            raise
        new = self.state.unseen([e.msgid for e in entries])
        with self.state.transaction() as db:
            self.state.put(db, "last_poll", str(time.time()))
            self.state.put(db, "last_error", "")
            if not self.state.get("baseline"):
                self.state.put(db, "baseline", str(time.time()))
                if not self.cfg.backfill:
                    self.state.mark_seen(db, new)
                    self.say(f"first poll: {len(new)} message(s) on the feed recorded as seen, "
                             f"not run (--backfill takes them)")
                    return
        handled: Set[str] = set()
        for msgid in new:
            if msgid not in handled:
                handled |= self._check(msgid, set(new))
        for thread in self.state.waiting_threads():
            if thread.root not in handled:
                handled |= self._check(thread.root, set())
        self._supersede()

    def _read_feed(self, url: str, feed_file: Path) -> list:
        try:
            fetch_url(url, feed_file, self.cfg.lore_url, f"its {self.cfg.feed} feed")
        except BadInput as exc:
            if self.cfg.feed != "search" or exc.http_status != 404:
                raise
            # public-inbox answers a search that matches nothing with 404: the inbox is
            # there when its new.atom answers
            new_url = feed_url(self.cfg.lore_url, "new")
            fetch_url(new_url, feed_file, self.cfg.lore_url, "its new feed")
            parse_feed(feed_file, new_url)
            return []
        return parse_feed(feed_file, url)

    def _fetch(self, msgid: str) -> Optional[List[Mail]]:
        dest = self.fetch_dir / "thread.mbox"
        fetch_thread_now(msgid, self.cfg.lore_url, dest)
        return read_mails(dest)

    def _check(self, msgid: str, new: Set[str]) -> Set[str]:
        """Fetch and decide msgid's thread; the message-ids it settled (seen from now on)."""
        try:
            mails = self._fetch(msgid)
        except BadInput as exc:
            return self._fetch_failed(msgid, exc.message)
        ids = {m.msgid for m in mails if m.msgid} | {msgid}
        root = _root_of(mails) or msgid
        try:
            info = classify(build_series(mails, f"{self.cfg.lore_url}/{root}/", "lore-url"))
        except BadInput as exc:
            info = classify(None, exc.message)
        settled = (ids & new) | {msgid}
        if not info.ours:
            self._not_ours(root, mails, info, settled)
            return ids
        self._ours(root, info, settled, {m.msgid: m.subject for m in mails if m.msgid})
        return ids

    def _fetch_failed(self, msgid: str, reason: str) -> Set[str]:
        known = self.state.thread(msgid)
        attempts = (known.attempts if known else 0) + 1
        gave_up = attempts >= MAX_FETCH_ATTEMPTS
        with self.state.transaction() as db:
            self.state.set_thread(db, msgid, "bad", note=reason, attempts=attempts)
            if gave_up:
                self.state.mark_seen(db, [msgid])
        self.say(f"<{msgid}>: {reason}" + (" Given up." if gave_up else " Tried again next poll."))
        return {msgid}

    def _not_ours(self, root: str, mails: List[Mail], info: ThreadInfo, settled: Set[str]) -> None:
        known = self.state.thread(root)
        with self.state.transaction() as db:
            self.state.mark_seen(db, list(settled))
            if known is None or known.status not in ("series", "waiting", "duplicate"):
                status = "foreign" if info.series is not None else "nopatch"
                self.state.set_thread(db, root, status, title=mails[0].subject if mails else "",
                                      note=info.reason)

    def _ours(self, root: str, info: ThreadInfo, settled: Set[str],
              subjects: Dict[str, str]) -> None:
        series = info.series
        digest = patchset_hash(series.patches)
        known = self.state.thread(root)
        title = series_title(series)
        same = self.state.series_by_hash(digest)
        if same is not None:
            with self.state.transaction() as db:
                self.state.mark_seen(db, list(settled))
                status = "series" if same.root == (series.msgid or root) else "duplicate"
                self.state.set_thread(db, root, status, title=title, series_id=same.id,
                                      note="" if status == "series" else f"as {same.key}")
            return
        now = time.time()
        waited = now - (known.first_seen if known else now)
        if not info.complete and waited < self.cfg.run.complete_timeout_s:
            missing = ", ".join(f"{i}/{series.total}" for i in series.missing)
            note = f"{len(series.patches)}/{series.total} patches; waiting for {missing or 'the rest'}"
            with self.state.transaction() as db:
                self.state.mark_seen(db, list(settled))
                self.state.set_thread(db, root, "waiting", title=title, note=note)
            if known is None or known.note != note:
                self.say(f"<{root}> {title!r}: {note}")
            return
        self._queue(root, info, digest, settled, subjects)

    def _queue(self, root: str, info: ThreadInfo, digest: str, settled: Set[str],
               subjects: Dict[str, str]) -> None:
        series = info.series
        title = series_title(series)
        key = _series_key(title, series.revision, digest)
        series_dir = self.series_dir(key)
        series_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.fetch_dir / "thread.mbox", series_dir / "thread.mbox")
        ours = [p for p in series.patches if any(f in info.files for f in p.files)]
        note = ("changes only comments in zsmalloc/zram files (still run: the diffstat decides)"
                if ours and all(only_comments_changed(p) for p in ours) else "")
        root_msgid = series.msgid or root
        with self.state.transaction() as db:
            self.state.mark_seen(db, list(settled))
            series_id = self.state.add_series(
                db, hash=digest, root=root_msgid, key=key, title=title,
                author=series.patches[0].author, revision=series.revision, total=series.total,
                present=len(series.patches), missing=",".join(map(str, series.missing)),
                files=" ".join(info.files), revkey=revision_key(series), note=note,
                subject=subjects.get(root_msgid) or _root_subject(series))
            self.state.set_thread(db, root, "series", title=title, series_id=series_id)
        gap = f", {len(series.missing)} missing" if series.missing else ""
        self.say(f"queued {key}: {title!r} v{series.revision}, {len(series.patches)}/"
                 f"{series.total} patches{gap}")

    def _supersede(self) -> None:
        rows = self.state.all_series()
        for row in rows:
            if row.status != "queued":
                continue
            newer = [o for o in rows if o.revkey == row.revkey and o.revision > row.revision
                     and o.status != "superseded"]
            if newer:
                with self.state.transaction() as db:
                    self.state.update_series(db, row.id, status="superseded",
                                             note=f"v{newer[-1].revision} came before it ran")
                self.say(f"{row.key} superseded by {newer[-1].key}; not run")

    # ------------------------------------------------------------ running

    def run_next(self) -> bool:
        """Run the oldest queued series; False when none is queued."""
        queued = self.state.all_series("queued")
        if not queued:
            return False
        row = queued[0]
        series_dir = self.series_dir(row.key)
        recorded = perfrun.recorded_run(self, row)
        with self.state.transaction() as db:
            self.state.update_series(db, row.id, status="running", started=time.time(),
                                     runs=row.runs + 1, message="")
        self.write_page()
        try:
            run = recorded or self._run_functional(row, series_dir)
            run = perfrun.after_functional(self, row, run)
        except KeyboardInterrupt:
            now = self.state.series_by_key(row.key) or row
            with self.state.transaction() as db:
                self.state.update_series(db, row.id, status="queued", started=None,
                                         message=stopped_message(now, "stopped") +
                                         " at the next start")
            self.write_page()
            raise
        self.finish(row, run)
        return True

    def _run_functional(self, row: SeriesRow, series_dir: Path) -> SeriesRun:
        self.say(f"running {row.key} (suites: {', '.join(self.cfg.run.suites)})")
        try:
            return run_series(series_dir, row, self.cfg.run, self.echo)
        except ZstestError as exc:
            return SeriesRun("error", exc.exit_code, exc.message)
        except Exception as exc:     # a bug of ours on one series must not stop the bot
            write_text_atomic(series_dir / "bot-error.txt", traceback.format_exc())
            return SeriesRun("error", 2, f"zstest failed on this series ({type(exc).__name__}: "
                                         f"{exc}); see bot-error.txt")

    def finish(self, row: SeriesRow, run: SeriesRun) -> None:
        series_dir = self.series_dir(row.key)
        try:
            write_outputs(series_dir, row, run, self.cfg.run, self.echo)
        except (ZstestError, OSError) as exc:
            self.say(f"{row.key}: the report could not be written: {exc}")
        with self.state.transaction() as db:
            self.state.update_series(db, row.id, status="done", verdict=run.final_verdict,
                                     exit_code=run.exit_code, message=run.message,
                                     base=run.base, finished=time.time(),
                                     perf=run.perf.text if run.perf is not None else "")
        self.write_page()
        perf = f"; {run.perf.text}" if run.perf is not None else ""
        self.say(f"{row.key}: {run.final_verdict} (exit {run.exit_code}{perf}); reply draft in "
                 f"{series_dir / 'reply.txt'}")

    # ------------------------------------------------------------ the loop

    def work(self, all_queued: bool) -> None:
        """Run (or, with --matrix, dispatch) queued series: all of them, or the next one."""
        if self.cfg.matrix_dir is not None:
            from .cells import dispatch_all
            dispatch_all(self)
            return
        while self.run_next() and all_queued:
            pass

    def hold_directory(self) -> None:
        """One polling bot per directory (two would run the same queued series); --collect
        needs no hold: it only finishes dispatched series, one transaction each."""
        import fcntl
        path = self.cfg.directory / "watch.lock"
        self._lock_file = open(path, "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "another process"
            raise BadInput(f"another zstest watch ({holder}) polls from {self.cfg.directory}; "
                           f"stop it first or give another --dir.") from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(f"pid {os.getpid()}\n")
        self._lock_file.flush()
        # only the holder may say a `running` series was left by a bot that is gone
        for row in self.state.requeue_interrupted():
            what = "perf step (only that runs again)" if row.perf == PERF_PENDING else "run"
            self.say(f"{row.key} was stopped during its {what}; queued again")

    def once(self) -> int:
        self.hold_directory()
        try:
            self.poll()
        finally:
            self.write_page()
        self.work(all_queued=True)
        self.write_page()
        return 0

    def forever(self, interval_s: float) -> None:
        self.hold_directory()
        while True:
            try:
                self.poll()
            except BadInput as exc:
                self.say(f"poll failed: {exc.message} Next poll in {interval_s:g} s.")
            self.write_page()
            self.work(all_queued=False)
            if self.cfg.matrix_dir is None and self.state.all_series("queued"):
                continue        # poll again before the next run: a newer revision may be in
            time.sleep(interval_s)

    def write_page(self) -> Optional[Path]:
        try:
            return watch_page.write(self)
        except (ZstestError, OSError) as exc:
            self.say(f"the results page could not be written: {exc}")
            return None

    def close(self) -> None:
        self.state.close()


def _root_of(mails: List[Mail]) -> str:
    """The thread's root: the message none of whose parents is in the thread."""
    ids = {m.msgid for m in mails if m.msgid}
    for mail in mails:
        parents = {mail.in_reply_to, *mail.references} - {""}
        if mail.msgid and not parents & ids:
            return mail.msgid
    return next((m.msgid for m in mails if m.msgid), "")


def _root_subject(series) -> str:
    """The subject the reply answers when its message is not in the thread: rebuilt."""
    tag = " ".join([f for f in series.prefix_flags if f != "RESEND"] + ["PATCH"])
    rev = f" v{series.revision}" if series.revision > 1 else ""
    first = series.patches[0]
    if series.cover_subject:
        return f"[{tag}{rev} 0/{series.total}] {series.cover_subject}"
    return f"[{tag}{rev} {first.index}/{series.total}] {first.subject}"


def _series_key(title: str, revision: int, digest: str) -> str:
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in title.lower())
    slug = "-".join(part for part in slug.split("-") if part)[:32].strip("-") or "series"
    return f"{time.strftime('%Y%m%d', time.gmtime())}-{slug}-v{revision}-{digest[:8]}"
