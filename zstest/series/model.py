"""The series model: what a patch series holds, whatever source it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional


@dataclass
class Patch:
    index: int
    total: int
    subject: str            # as posted, without the [PATCH ...] prefix
    author: str
    date: str
    msgid: str
    files: List[str] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    raw: bytes = b""        # this one message as a file `git am` takes
    trailers: List[dict] = field(default_factory=list)   # from the thread's replies: tag, who, msgid

    def to_dict(self) -> dict:
        return {"index": self.index, "total": self.total, "subject": self.subject,
                "author": self.author, "date": self.date, "msgid": self.msgid,
                "files": list(self.files), "added": self.added, "removed": self.removed,
                "trailers": [dict(t) for t in self.trailers]}


@dataclass
class Series:
    source: str
    kind: str               # mbox, format-patch-dir, quilt, git-range, msgid, lore-url, stdin
    revision: int
    cover_subject: Optional[str]
    cover_body: Optional[str]
    patches: List[Patch]
    missing: List[int]
    total: int
    base_commit: Optional[str] = None
    problems: List[str] = field(default_factory=list)
    prefix_flags: List[str] = field(default_factory=list)   # e.g. RFC, RESEND
    msgid: Optional[str] = None      # the thread's message-id (the cover's, else patch 1's)

    def to_dict(self) -> dict:
        return {"source": self.source, "kind": self.kind, "revision": self.revision,
                "cover_subject": self.cover_subject, "total": self.total,
                "base_commit": self.base_commit, "msgid": self.msgid, "prefix_flags": list(self.prefix_flags),
                "patches": [p.to_dict() for p in self.patches],
                "missing": list(self.missing), "problems": list(self.problems)}
