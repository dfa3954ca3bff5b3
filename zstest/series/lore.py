"""Fetch a thread mbox from a lore-style public-inbox server, cached by message-id."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

from ..cache import cache_dir, file_lock
from ..errors import BadInput
from ..textsafe import one_line

DEFAULT_LORE_URL = "https://lore.kernel.org/all"
FETCH_TIMEOUT_S = 30             # per socket operation
FETCH_DEADLINE_S = 180           # connect, headers and body: a server trickling bytes cannot hold us
# A zsmalloc thread is a few MB; a hostile or broken server (or a gzip bomb) gets cut off.
MAX_COMPRESSED_BYTES = 32 << 20
MAX_MBOX_BYTES = 256 << 20
CHUNK_BYTES = 64 << 10


# The server for message-ids and lore URLs when a caller names none: --lore-url or the config's
# lore_url, set once per command by the CLI option, so that build/bisect/mutate need not carry it.
_default_lore_url = DEFAULT_LORE_URL

# https://lore.kernel.org/r/<msgid>, /<list>/<msgid>/, /<list>/<msgid>/T/, .../t.mbox.gz, .../raw
LORE_URL = re.compile(r"^https?://[^/\s]+/(?:[^/\s]+/)?(?P<msgid>[^/\s]*(?:@|%40)[^/\s]*)"
                      r"(?:/(?:[tT]|raw|t\.mbox\.gz|t\.atom)?/?)?(?:[?#]\S*)?$")


def set_default_lore_url(url: str | None) -> None:
    global _default_lore_url
    _default_lore_url = (url or DEFAULT_LORE_URL).rstrip("/") or DEFAULT_LORE_URL


def default_lore_url() -> str:
    return _default_lore_url


def msgid_from_url(url: str) -> str | None:
    """The message-id a lore URL names (its host is not contacted: the lore server is configured)."""
    m = LORE_URL.match(url.strip())
    if not m:
        return None
    msgid = urllib.parse.unquote(m.group("msgid")).strip("<>")
    return msgid if re.fullmatch(r"[^\s<>@/]+@[^\s<>@/]+", msgid) else None


def lore_link(msgid: str) -> str:
    """The public link of a message, as b4 and the kernel's Link: trailers write it."""
    return f"https://lore.kernel.org/r/{urllib.parse.quote(msgid, safe='@.+-_=')}"


def thread_url(msgid: str, lore_url: str = DEFAULT_LORE_URL) -> str:
    return f"{lore_url.rstrip('/')}/{urllib.parse.quote(msgid, safe='@.+-_=')}/t.mbox.gz"


def check_lore_url(lore_url: str) -> None:
    """BadInput unless lore_url is an http(s) URL with a host (`http://[::1` raised ValueError)."""
    try:
        parts = urllib.parse.urlsplit(lore_url)
        parts.port      # a port that is no number raises here
    except ValueError as exc:
        raise BadInput(f"--lore-url {lore_url!r} is not a URL: {exc}.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"--lore-url {lore_url!r} is not an http:// or https:// URL with a host.")


def fetch_thread(msgid: str, lore_url: str = DEFAULT_LORE_URL) -> Path:
    """The thread of msgid as an mbox file in cache_dir('lore'); fetched once."""
    check_lore_url(lore_url)
    url = thread_url(msgid, lore_url)
    key = hashlib.sha256(url.encode()).hexdigest()[:20]
    target = cache_dir("lore") / f"{key}.mbox"
    if target.is_file() and target.stat().st_size > 0:
        return target
    with file_lock(cache_dir("locks") / f"lore-{key}.lock"):
        if target.is_file() and target.stat().st_size > 0:
            return target
        tmp = target.with_suffix(".part")
        try:
            _download(url, tmp, lore_url, msgid)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


class _Watchdog:
    """Shuts every socket of one download down at its deadline, wherever the reader is blocked
    (connect, the status line, headers, body): a per-operation timeout alone lets a server
    sending a byte every few seconds hold zstest forever."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.fired = False
        self._socks: list = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return max(0.001, self.at - time.monotonic())

    def watch(self, sock) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.fired:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._socks:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock) -> None:
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)   # the raw socket, also under TLS
    except OSError:
        pass


def _watched(base, watchdog: _Watchdog):
    """A connection class of base whose socket the watchdog knows from the moment it connects."""
    class Watched(base):
        def connect(self):
            self.timeout = min(self.timeout or FETCH_TIMEOUT_S, watchdog.remaining())
            super().connect()
            watchdog.watch(self.sock)
    return Watched


def _opener(watchdog: _Watchdog):
    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(_watched(http.client.HTTPConnection, watchdog), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(_watched(http.client.HTTPSConnection, watchdog), req,
                                context=self._context)
    return urllib.request.build_opener(HTTP, HTTPS)


def fetch_thread_now(msgid: str, lore_url: str, dest: Path) -> Path:
    """The thread of msgid as the server has it now, into dest (not cached: it may grow)."""
    check_lore_url(lore_url)
    _download(thread_url(msgid, lore_url), dest, lore_url, msgid)
    return dest


def fetch_url(url: str, dest: Path, lore_url: str, what: str) -> Path:
    """url's plain body (an Atom feed) into dest, never cached, with fetch_thread's deadline and
    compressed-size cap: `zstest watch` polls feeds that change between polls."""
    check_lore_url(lore_url)
    _download(url, dest, lore_url, what, body=_copy_into)
    return dest


def _download(url: str, dest: Path, lore_url: str, msgid: str, body=None) -> None:
    """The gunzipped body of url (body: another reader of it) into dest, within the size caps
    and the total deadline."""
    watchdog = _Watchdog(FETCH_DEADLINE_S)
    late = BadInput(f"fetching {url} did not finish within {FETCH_DEADLINE_S:g} s.")
    try:
        with _opener(watchdog).open(url, timeout=min(FETCH_TIMEOUT_S, FETCH_DEADLINE_S)) as resp, \
                open(dest, "wb") as out:
            (body or _inflate_into)(resp, out, url, watchdog)
    except BadInput:
        raise
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and body is None:
            raise BadInput(f"{lore_url} has no thread for message-id <{msgid}> "
                           f"(HTTP 404 for {url}).") from None
        # http_status: public-inbox answers a search with no match with 404
        raise BadInput(f"{lore_url} answered HTTP {exc.code} for {url}.",
                       http_status=exc.code) from None
    except zlib.error:
        raise BadInput(f"{url} did not return a gzipped mbox.") from None
    except Exception as exc:
        if watchdog.fired:
            raise late from None
        if isinstance(exc, (http.client.HTTPException, ValueError)):
            # a bad status line, too long or too many headers, broken chunks, a short body
            raise BadInput(f"{lore_url} did not answer proper HTTP for {url} "
                           f"({type(exc).__name__}: {one_line(str(exc), 80)}).") from None
        if isinstance(exc, (urllib.error.URLError, OSError)):
            reason = getattr(exc, "reason", exc)
            what = msgid if body else f"<{msgid}>"
            raise BadInput(f"cannot reach {lore_url} to fetch {what}: {reason}.") from None
        raise
    finally:
        watchdog.cancel()


def _chunks(resp, url: str, watchdog: _Watchdog, what: str):
    """resp's body in chunks, within the deadline and the size cap (what: for the sentence)."""
    received = 0
    while True:
        if watchdog.fired:
            raise BadInput(f"fetching {url} did not finish within {FETCH_DEADLINE_S:g} s.")
        chunk = resp.read1(CHUNK_BYTES)
        if not chunk:
            return
        received += len(chunk)
        if received > MAX_COMPRESSED_BYTES:
            raise BadInput(f"{url} sent more than {MAX_COMPRESSED_BYTES >> 20} MiB; "
                           f"no {what} is that large.")
        yield chunk


def _copy_into(resp, out, url: str, watchdog: _Watchdog) -> None:
    for chunk in _chunks(resp, url, watchdog, "feed"):
        out.write(chunk)


def _inflate_into(resp, out, url: str, watchdog: _Watchdog) -> None:
    written = 0
    inflate = zlib.decompressobj(wbits=31)      # 31: gzip framing
    for chunk in _chunks(resp, url, watchdog, "thread mbox"):
        while chunk:
            # max_length: a gzip bomb never inflates past the cap in memory
            data = inflate.decompress(chunk, MAX_MBOX_BYTES - written + 1)
            written += len(data)
            if written > MAX_MBOX_BYTES:
                raise BadInput(f"{url} inflates to more than {MAX_MBOX_BYTES >> 20} MiB; "
                               f"no thread mbox is that large.")
            out.write(data)
            chunk = inflate.unconsumed_tail
            if inflate.eof and inflate.unused_data:
                # another gzip member follows
                chunk, inflate = inflate.unused_data + chunk, zlib.decompressobj(wbits=31)
    if watchdog.fired:
        raise BadInput(f"fetching {url} did not finish within {FETCH_DEADLINE_S:g} s.")
    if not inflate.eof or written == 0:
        raise BadInput(f"{url} did not return a gzipped mbox.")
