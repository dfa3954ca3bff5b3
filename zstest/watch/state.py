"""The bot's memory: one SQLite file (stdlib sqlite3, rollback journal: no side files).

Every change is one transaction, so Ctrl-C, SIGTERM or a power cut leave the file as it was
before the change or after it. A restart reads it and goes on: a message seen is not fetched
again, a series done is not run again; a series found `running` (the bot was stopped during
its run) goes back to the queue, since its run never finished.

Tables:
  meta(key, value)                  feed baseline done, last poll, last poll error
  messages(msgid, seen)             every feed entry handled
  threads(root, status, ...)        a thread by its root message-id: waiting (a zsmalloc series
                                    not complete yet), series (handed on), duplicate (its patchset
                                    hash ran already), foreign (touches no zsmalloc/zram file),
                                    nopatch (no patch in it), bad (could not be fetched or read)
  series(id, hash, ...)             one per patchset hash: queued, running, done, superseded
                                    (a newer revision was queued before it ran), dispatched
                                    (--matrix: cells written for CI); its `perf` column: ''
                                    (not asked), `pending` (the functional run passed and is
                                    recorded, the perf step is to come: a restart runs only
                                    that), else the perf step's outcome in words
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional

from ..errors import BadInput

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS messages (msgid TEXT PRIMARY KEY, seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS threads (
    root TEXT PRIMARY KEY, status TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '', first_seen REAL NOT NULL, checked REAL NOT NULL,
    series_id INTEGER, attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, hash TEXT UNIQUE NOT NULL, root TEXT NOT NULL, key TEXT UNIQUE NOT NULL,
    title TEXT NOT NULL, author TEXT NOT NULL, revision INTEGER NOT NULL, total INTEGER NOT NULL,
    present INTEGER NOT NULL, missing TEXT NOT NULL DEFAULT '', files TEXT NOT NULL DEFAULT '',
    revkey TEXT NOT NULL, status TEXT NOT NULL, verdict TEXT NOT NULL DEFAULT '',
    exit_code INTEGER, message TEXT NOT NULL DEFAULT '', base TEXT NOT NULL DEFAULT '',
    queued REAL NOT NULL, started REAL, finished REAL, runs INTEGER NOT NULL DEFAULT 0,
    subject TEXT NOT NULL DEFAULT '', note TEXT NOT NULL DEFAULT '',
    perf TEXT NOT NULL DEFAULT '');
"""
# Columns added after the first state files were written: (name, its declaration).
ADDED_COLUMNS = (("perf", "TEXT NOT NULL DEFAULT ''"),)
PERF_PENDING = "pending"
THREAD_STATES = ("waiting", "series", "duplicate", "foreign", "nopatch", "bad")
SERIES_STATES = ("queued", "running", "done", "superseded", "dispatched")


@dataclass
class SeriesRow:
    id: int
    hash: str
    root: str
    key: str
    title: str
    author: str
    revision: int
    total: int
    present: int
    missing: str
    files: str
    revkey: str
    status: str
    verdict: str
    exit_code: Optional[int]
    message: str
    base: str
    queued: float
    started: Optional[float]
    finished: Optional[float]
    runs: int
    subject: str            # the root message's subject as posted (the reply's Re:)
    note: str               # what the page says besides the verdict (comment-only, superseded by)
    perf: str = ""          # '' not asked, PERF_PENDING, else the perf step's outcome in words

    @property
    def incomplete(self) -> bool:
        return bool(self.missing)


@dataclass
class ThreadRow:
    root: str
    status: str
    title: str
    note: str
    first_seen: float
    checked: float
    series_id: Optional[int]
    attempts: int           # fetches that failed in a row (a server hiccup is tried again)


class WatchState:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=DELETE")
            with self.transaction():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self._add_columns()
        except sqlite3.DatabaseError as exc:
            raise BadInput(f"{self.path} is not a zstest watch state file ({exc}).") from None

    def _add_columns(self) -> None:
        """A state file of an older zstest gets the columns added since (their defaults)."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(series)")}
        for name, declaration in ADDED_COLUMNS:
            if name not in have:
                self.db.execute(f"ALTER TABLE series ADD COLUMN {name} {declaration}")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic change: committed whole, or rolled back (also on Ctrl-C)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta

    def get(self, key: str, default: str = "") -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def put(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- messages

    def unseen(self, msgids: List[str]) -> List[str]:
        return [m for m in msgids
                if not self.db.execute("SELECT 1 FROM messages WHERE msgid = ?", (m,)).fetchone()]

    def mark_seen(self, db: sqlite3.Connection, msgids: List[str]) -> None:
        now = time.time()
        db.executemany("INSERT OR IGNORE INTO messages (msgid, seen) VALUES (?, ?)",
                       [(m, now) for m in msgids])

    # -- threads

    _THREAD_COLUMNS = "root, status, title, note, first_seen, checked, series_id, attempts"

    def thread(self, root: str) -> Optional[ThreadRow]:
        row = self.db.execute(f"SELECT {self._THREAD_COLUMNS} FROM threads WHERE root = ?",
                              (root,)).fetchone()
        return ThreadRow(*row) if row else None

    def waiting_threads(self) -> List[ThreadRow]:
        rows = self.db.execute(f"SELECT {self._THREAD_COLUMNS} FROM threads "
                               "WHERE status = 'waiting' ORDER BY first_seen")
        return [ThreadRow(*r) for r in rows]

    def set_thread(self, db: sqlite3.Connection, root: str, status: str, title: str = "",
                   note: str = "", series_id: Optional[int] = None, attempts: int = 0) -> None:
        """Insert or update a thread; its first_seen stays the first one."""
        assert status in THREAD_STATES, status
        now = time.time()
        db.execute("INSERT INTO threads (root, status, title, note, first_seen, checked, "
                   "series_id, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(root) DO "
                   "UPDATE SET status = excluded.status, title = excluded.title, "
                   "note = excluded.note, checked = excluded.checked, "
                   "series_id = excluded.series_id, attempts = excluded.attempts",
                   (root, status, title, note, now, now, series_id, attempts))

    def threads(self) -> List[ThreadRow]:
        rows = self.db.execute(f"SELECT {self._THREAD_COLUMNS} FROM threads ORDER BY first_seen")
        return [ThreadRow(*r) for r in rows]

    # -- series

    _SERIES_COLUMNS = ("id, hash, root, key, title, author, revision, total, present, missing, "
                       "files, revkey, status, verdict, exit_code, message, base, queued, started, "
                       "finished, runs, subject, note, perf")

    def series_by_hash(self, digest: str) -> Optional[SeriesRow]:
        row = self.db.execute(f"SELECT {self._SERIES_COLUMNS} FROM series WHERE hash = ?",
                              (digest,)).fetchone()
        return SeriesRow(*row) if row else None

    def series_by_key(self, key: str) -> Optional[SeriesRow]:
        row = self.db.execute(f"SELECT {self._SERIES_COLUMNS} FROM series WHERE key = ?",
                              (key,)).fetchone()
        return SeriesRow(*row) if row else None

    def all_series(self, status: Optional[str] = None) -> List[SeriesRow]:
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self.db.execute(f"SELECT {self._SERIES_COLUMNS} FROM series {where} ORDER BY id",
                               args)
        return [SeriesRow(*r) for r in rows]

    def add_series(self, db: sqlite3.Connection, **fields) -> int:
        fields.setdefault("status", "queued")
        fields.setdefault("queued", time.time())
        names = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        cur = db.execute(f"INSERT INTO series ({names}) VALUES ({marks})", tuple(fields.values()))
        return int(cur.lastrowid)

    def update_series(self, db: sqlite3.Connection, series_id: int, **fields) -> None:
        if "status" in fields:
            assert fields["status"] in SERIES_STATES, fields["status"]
        sets = ", ".join(f"{k} = ?" for k in fields)
        db.execute(f"UPDATE series SET {sets} WHERE id = ?", (*fields.values(), series_id))

    def requeue_interrupted(self) -> List[SeriesRow]:
        """Series left `running` by a bot that was stopped: back in the queue, in one change."""
        stopped = self.all_series("running")
        if stopped:
            with self.transaction() as db:
                for row in stopped:
                    self.update_series(db, row.id, status="queued", started=None,
                                       message=stopped_message(row, "the bot stopped"))
        return stopped


def stopped_message(row: SeriesRow, who: str) -> str:
    """What a series put back in the queue says: all of it runs again, or only its perf step."""
    if row.perf == PERF_PENDING:
        return f"{who} during its perf step; the functional results are kept, the perf step " \
               f"runs again"
    return f"{who} during its run; run again"
