"""Pure decisions about one thread: is it a zsmalloc/zram series, is it complete, what is it.

A thread counts as a zsmalloc/zram series when one of its patches' diffs touches a zsmalloc or
zram path (ZSMALLOC_PATHS) — read from the diff itself, never from the subject. A patch that
changes only a comment in mm/zsmalloc.c is such a series too: the diffstat is the rule, and a
comment-only change still needs to apply and build on the maintainer's tree. A reply that quotes
a patch is a reply (parse.build_series keeps "Re:" mails out of the patches), never a patch.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import List, Optional

from ..patchset import patch_text, series_patchset_hash
from ..series.diff import analyze_diff
from ..series.model import Patch, Series

# The files whose change makes a thread ours (prefixes end with "/").
ZSMALLOC_PATHS = (
    "mm/zsmalloc.c",
    "mm/zpdesc.h",
    "include/linux/zsmalloc.h",
    "drivers/block/zram/",
    "Documentation/admin-guide/blockdev/zram.rst",
    "Documentation/ABI/testing/sysfs-block-zram",
    "Documentation/mm/zsmalloc.rst",
    "Documentation/vm/zsmalloc.rst",
)
# The same set as a public-inbox search (dfn: = a file name in a diff): the server's prefilter;
# the decision is still ours, on the thread's own diffs.
SEARCH_QUERY = " OR ".join(f"dfn:{p.rstrip('/')}" for p in ZSMALLOC_PATHS)


def is_zsmalloc_path(path: str) -> bool:
    return any(path.startswith(p) if p.endswith("/") else path == p for p in ZSMALLOC_PATHS)


def zsmalloc_files(series: Series) -> List[str]:
    """The zsmalloc/zram files the series' patches change, in order of first appearance."""
    found: List[str] = []
    for patch in series.patches:
        for path in patch.files:
            if is_zsmalloc_path(path) and path not in found:
                found.append(path)
    return found


def patchset_hash(patches: List[Patch]) -> str:
    """KCIDB's patchset_hash over the patches' diffs (zstest/patchset.py, as kcidb.json writes
    it): a RESEND or a re-post in a new thread hashes the same; a changed line does not."""
    return series_patchset_hash(sorted(patches, key=lambda p: p.index))


def series_title(series: Series) -> str:
    """The cover letter's title, else patch 1's (without the [PATCH ...] prefix)."""
    if series.cover_subject:
        return series.cover_subject
    return series.patches[0].subject if series.patches else ""


def revision_key(series: Series) -> str:
    """What two revisions of one series share: the title (case and spacing folded) and the
    author's address. A newer queued revision makes an older queued one superseded."""
    title = re.sub(r"\s+", " ", series_title(series)).strip().lower()
    author = series.patches[0].author if series.patches else ""
    m = re.search(r"<([^<>]+)>", author)
    return f"{title}\0{(m.group(1) if m else author).strip().lower()}"


@dataclass
class ThreadInfo:
    """What a thread holds, as the bot needs it."""
    series: Optional[Series]          # None: no patch in the thread
    files: List[str] = field(default_factory=list)     # zsmalloc/zram files changed
    reason: str = ""                  # why it is not ours, or not a series

    @property
    def ours(self) -> bool:
        return self.series is not None and bool(self.files)

    @property
    def complete(self) -> bool:
        s = self.series
        return s is not None and not s.missing and len(s.patches) >= s.total > 0


def classify(series: Optional[Series], problem: str = "") -> ThreadInfo:
    """A parsed thread (or the reason it did not parse) -> ThreadInfo."""
    if series is None:
        return ThreadInfo(None, reason=problem or "the thread holds no patch")
    files = zsmalloc_files(series)
    if not files:
        touched = sorted({f for p in series.patches for f in p.files})
        shown = ", ".join(touched[:3]) + (" ..." if len(touched) > 3 else "")
        return ThreadInfo(series, reason=f"its patches touch no zsmalloc/zram file ({shown})")
    return ThreadInfo(series, files)


def only_comments_changed(patch: Patch) -> bool:
    """Every added or removed line of the patch is in a C comment (or blank): still a zsmalloc
    patch by the diffstat rule; the page and the reply say so."""
    diff = patch_text(patch.raw)
    changed = [l[1:].strip() for l in diff.splitlines()
               if l[:1] in "+-" and not l.startswith(("+++", "---"))]
    return bool(changed) and analyze_diff(diff).has_diff and all(
        not l or l.startswith(("/*", "*", "//")) or l.endswith("*/") for l in changed)


def lore_thread_link(lore_url: str, msgid: str) -> str:
    return f"{lore_url.rstrip('/')}/{urllib.parse.quote(msgid, safe='@.+-_=')}/"
