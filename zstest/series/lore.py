"""Fetch a thread mbox from a lore-style public-inbox server, cached by message-id."""

from __future__ import annotations

import gzip
import hashlib
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

from ..cache import cache_dir, file_lock
from ..errors import BadInput

DEFAULT_LORE_URL = "https://lore.kernel.org/all"
FETCH_TIMEOUT_S = 30


def thread_url(msgid: str, lore_url: str = DEFAULT_LORE_URL) -> str:
    return f"{lore_url.rstrip('/')}/{urllib.parse.quote(msgid, safe='@.+-_=')}/t.mbox.gz"


def fetch_thread(msgid: str, lore_url: str = DEFAULT_LORE_URL) -> Path:
    """The thread of msgid as an mbox file in cache_dir('lore'); fetched once."""
    url = thread_url(msgid, lore_url)
    key = hashlib.sha256(url.encode()).hexdigest()[:20]
    target = cache_dir("lore") / f"{key}.mbox"
    if target.is_file() and target.stat().st_size > 0:
        return target
    with file_lock(cache_dir("locks") / f"lore-{key}.lock"):
        if target.is_file() and target.stat().st_size > 0:
            return target
        try:
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise BadInput(f"{lore_url} has no thread for message-id <{msgid}> "
                               f"(HTTP 404 for {url}).") from None
            raise BadInput(f"{lore_url} answered HTTP {exc.code} for {url}.") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BadInput(f"cannot reach {lore_url} to fetch <{msgid}>: {reason}.") from None
        try:
            data = gzip.decompress(payload)
        except (OSError, EOFError, zlib.error):
            raise BadInput(f"{url} did not return a gzipped mbox.") from None
        tmp = target.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.rename(target)
    return target
