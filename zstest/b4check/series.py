"""Which series a b4 check is about: b4's tracking file, else the thread by message-id from the
configured lore server, else the message alone.

b4 (review_tui) runs a check command in the repository's top directory with the message on
stdin and, for a tracked series, B4_TRACKING_FILE naming a JSON dump of its tracking commit:
series.thread-blob is the thread's mbox stored as a git blob in that repository (b4 reads it
with `git cat-file blob`), series.header-info.msgid the cover's message-id, series.base-commit
the commit b4 applied the series on.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from ..errors import BadInput, ZstestError
from ..gitsafe import read_objects
from ..proc import CommandError
from ..series.lore import fetch_thread
from ..series.model import Series
from ..series.parse import build_series, mail_from_bytes, parse_subject, read_mails

TRACKING_ENV = "B4_TRACKING_FILE"
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


@dataclass
class FoundSeries:
    series: Series
    mbox: bytes                  # the messages the series was read from (for --series)
    how: str                     # where it came from, for the reviewer
    target_msgid: str            # the message b4 asked about
    target_index: Optional[int]  # its patch index; None for a cover letter (a series check)
    notes: List[str] = field(default_factory=list)   # the ways that did not work, and why
    base: Optional[str] = None   # the commit b4 applied it on (in b4's repository)


def _mails_of(data: bytes, origin: str):
    with tempfile.NamedTemporaryFile(prefix="zstest-b4check-", suffix=".mbox") as tmp:
        tmp.write(data)
        tmp.flush()
        mails = read_mails(Path(tmp.name))
    for mail in mails:
        mail.origin = origin
    return mails


def _tracking(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{TRACKING_ENV}={path} is not b4's tracking JSON ({exc}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("series"), dict):
        raise BadInput(f"{TRACKING_ENV}={path} has no `series` object: not b4's tracking JSON.")
    return data


def _thread_blob(topdir: Path, sha: str) -> bytes:
    """The thread b4 stored in the repository as a blob (what b4's get_thread_mbox reads)."""
    if not _SHA.match(sha):
        raise BadInput(f"b4's thread-blob {sha[:80]!r} is not an object id.")
    git_dir = topdir / ".git"
    if not git_dir.is_dir():
        raise BadInput(f"{topdir} has no .git directory to read b4's thread blob from.")
    try:
        # b4's repository is read through zstest's own (gitsafe): its config and hooks unread
        res = read_objects(git_dir, ["cat-file", "blob", sha], timeout=60)
    except CommandError as exc:
        raise BadInput(f"b4's thread blob {sha[:12]} is not in {topdir} "
                       f"({_last(exc.tail)}).") from None
    return res.stdout.encode("utf-8", "replace")


def _last(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _target(message: bytes) -> tuple:
    mail = mail_from_bytes(message, 0, "standard input")
    prefix = parse_subject(mail.subject)
    index = prefix.index if prefix.is_patch and prefix.index else None
    return mail, index


def _with_target(series: Series, mbox: bytes, how: str, mail, index, notes,
                 base: Optional[str] = None) -> FoundSeries:
    by_msgid = {p.msgid: p.index for p in series.patches if p.msgid}
    if mail.msgid and mail.msgid in by_msgid:
        index = by_msgid[mail.msgid]
    elif mail.msgid and mail.msgid == series.msgid and series.cover_subject is not None:
        index = None
    return FoundSeries(series, mbox, how, mail.msgid, index, notes, base)


def find_series(message: bytes, topdir: Path, lore_url: str,
                tracking_file: Optional[Path] = None) -> FoundSeries:
    """The series the message belongs to; BadInput when none can be read (the message alone is
    a cover letter, or holds no diff)."""
    if not message.strip():
        raise BadInput("standard input is empty: b4 passes the message to check there.")
    mail, index = _target(message)
    notes: List[str] = []
    msgid, base = mail.msgid, None
    if tracking_file is not None:
        try:
            tracking = _tracking(tracking_file)
            series_info = tracking["series"]
            base = series_info.get("base-commit") if isinstance(
                series_info.get("base-commit"), str) else None
            msgid = (series_info.get("header-info") or {}).get("msgid") or msgid
            blob = series_info.get("thread-blob")
            if isinstance(blob, str) and blob:
                data = _thread_blob(topdir, blob)
                series = build_series(_mails_of(data, "b4's tracked thread"), "b4 tracking",
                                      "mbox")
                return _with_target(series, data, "b4's tracked thread", mail, index, notes, base)
            notes.append("b4's tracking file names no thread blob")
        except ZstestError as exc:
            notes.append(exc.message)
    if msgid:
        try:
            mbox = fetch_thread(msgid, lore_url)
            data = mbox.read_bytes()
            series = build_series(read_mails(mbox), msgid, "msgid")
            series.msgid = series.msgid or msgid
            return _with_target(series, data, f"the thread of <{msgid}> from {lore_url}", mail,
                                index, notes, base)
        except ZstestError as exc:
            notes.append(exc.message)
    alone = _alone(message, mail)
    try:
        series = build_series([alone], "standard input", "stdin")
    except BadInput as exc:
        raise BadInput(" ".join(notes + [f"the message alone: {exc.message}"])) from None
    return _with_target(series, alone.raw, "the patch alone (no thread found)", alone,
                        1 if index is not None else None, notes, base)


def _alone(message: bytes, mail):
    """The message as a one-patch series: `[PATCH 11/12] x` alone is `[PATCH] x`, so that it
    is tested by itself instead of refused as a series with 11 patches missing."""
    prefix = parse_subject(mail.subject)
    if not prefix.is_patch or not prefix.index:
        return mail
    msg = email.message_from_bytes(message, policy=email.policy.compat32)
    del msg["Subject"]
    words = ["PATCH"] + ([f"v{prefix.revision}"] if prefix.revision > 1 else [])
    msg["Subject"] = f"[{' '.join(words)}] {prefix.title}"
    return mail_from_bytes(msg.as_bytes(), 0, "standard input")
