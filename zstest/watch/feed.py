"""What a public-inbox server lists as new: its Atom feeds, read (pure) and addressed.

public-inbox-httpd serves, per inbox URL (https://lore.kernel.org/all, or any inbox):
  - `<url>/?q=QUERY&x=A`: the search results as Atom, newest first (needs the inbox's Xapian
    index; `dfn:PATH` matches a file name in a message's diff) — the default, `--feed search`;
  - `<url>/new.atom`: the newest messages of the inbox, any subject — `--feed new`, for an
    inbox without a search index;
  - `<url>/<msgid>/t.mbox.gz`: the whole thread of a message (series/lore.py fetches it).
Every entry links to `<url>/<msgid>/`; the message-id is read from that link.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import List

from ..errors import BadInput
from .threads import SEARCH_QUERY

ATOM = "{http://www.w3.org/2005/Atom}"
FEEDS = ("search", "new")


@dataclass(frozen=True)
class FeedEntry:
    msgid: str
    title: str
    updated: str


def feed_url(lore_url: str, feed: str, query: str = SEARCH_QUERY) -> str:
    base = lore_url.rstrip("/")
    if feed == "new":
        return f"{base}/new.atom"
    return f"{base}/?{urllib.parse.urlencode({'q': query, 'x': 'A'})}"


def msgid_from_link(href: str) -> str:
    """The message-id of an entry's link `<inbox>/<msgid>/` ('' when the link is not one)."""
    path = urllib.parse.urlsplit(href).path.rstrip("/")
    last = urllib.parse.unquote(path.rsplit("/", 1)[-1]) if path else ""
    return last if "@" in last and not any(c.isspace() or c in "<>" for c in last) else ""


def parse_feed(path: Path, url: str) -> List[FeedEntry]:
    """The entries of an Atom feed file, oldest first; BadInput when it is not Atom."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise BadInput(f"{url} did not answer an Atom feed ({exc}).") from None
    if root.tag != f"{ATOM}feed":
        raise BadInput(f"{url} did not answer an Atom feed (its root is <{root.tag}>).")
    entries: List[FeedEntry] = []
    for entry in root.iter(f"{ATOM}entry"):
        link = entry.find(f"{ATOM}link")
        msgid = msgid_from_link(link.get("href", "")) if link is not None else ""
        if not msgid:
            continue        # an entry that names no message cannot be fetched: skipped
        entries.append(FeedEntry(msgid, (entry.findtext(f"{ATOM}title") or "").strip(),
                                 (entry.findtext(f"{ATOM}updated") or "").strip()))
    return list(reversed(entries))      # the feeds list newest first
