"""A real public-inbox for the watch tests: Debian's public-inbox 1.9, nothing of ours.

`PublicInbox(root)` makes a v2 inbox with public-inbox-init (Xapian index: the search feed
works), delivers messages with public-inbox-mda and serves it with
public-inbox-httpd on 127.0.0.1 on a free port. Its own HOME and PI_CONFIG go to those
commands only: zstest itself keeps the session's cache.
"""

from __future__ import annotations

import mailbox
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "kernel-patches" / "demo-migrated"
NAME = "zs"
ADDRESS = "zs@zstest.invalid"
TOOLS = ("public-inbox-init", "public-inbox-mda", "public-inbox-httpd")


def missing_tools() -> List[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PublicInbox:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, PI_CONFIG=str(self.root / "config"),
                        HOME=str(self.root / "home"), PI_EMERGENCY=str(self.root / "emergency"),
                        ORIGINAL_RECIPIENT=ADDRESS)
        self._run(["public-inbox-init", "-V2", "-L", "full", NAME, str(self.root / "inbox"),
                   f"http://127.0.0.1/{NAME}", ADDRESS])
        # no spamc on a test machine; a spam check is not what these tests are about
        self._run(["git", "config", "-f", str(self.root / "config"),
                   "publicinboxmda.spamcheck", "none"])
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0

    def _run(self, argv, data: bytes = b"") -> None:
        res = subprocess.run(argv, input=data, env=self.env, capture_output=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({res.returncode}): {res.stderr[-2000:]!r}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{NAME}"

    def deliver(self, raw: bytes) -> None:
        """One message into the inbox, as the list's MTA hands it over."""
        self._run(["public-inbox-mda", "--no-precheck"], raw)

    def seed(self) -> None:
        """One plain message before the server starts: public-inbox-httpd that first sees an
        inbox with no message keeps serving it without its search index (every ?q= is 404)."""
        self.deliver(SEED)

    def start(self) -> "PublicInbox":
        for _ in range(3):        # a free port taken between the probe and the bind: next one
            self.port = _free_port()
            log = open(self.root / "httpd.log", "ab")
            self.proc = subprocess.Popen(
                ["public-inbox-httpd", "-W0", "-l", f"http://127.0.0.1:{self.port}"],
                env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                start_new_session=True)
            log.close()
            if self._wait_ready(30):
                return self
            self.stop()
        raise RuntimeError(f"public-inbox-httpd did not come up: {self.root / 'httpd.log'}")

    def _wait_ready(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/new.atom", timeout=5):
                    return True
            except urllib.error.HTTPError:
                return True         # an empty inbox has no new.atom yet: the server answered
            except OSError:
                time.sleep(0.2)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(20)
        self.proc = None


SEED = (f"From: List Admin <admin@zstest.invalid>\nTo: {ADDRESS}\nSubject: this list is open\n"
        f"Date: Mon, 7 Dec 2026 04:00:00 +0000\nMessage-ID: <seed@zstest.invalid>\n\n"
        f"Patches for zsmalloc and zram go here.\n").encode()


def demo_mails(rev: str) -> List[bytes]:
    """The demo series revision as git send-email posts it: the cover, then each patch in
    reply to it, with Message-IDs demo-<rev>-<k>@zstest.invalid."""
    out = []
    cover = f"demo-{rev}-0@zstest.invalid"
    for k, patch in enumerate(sorted((DEMO / rev).glob("*.patch"))):
        out.append(threaded(patch.read_bytes(), f"demo-{rev}-{k}@zstest.invalid",
                            None if k == 0 else cover))
    return out


def threaded(data: bytes, msgid: str, parent: Optional[str]) -> bytes:
    """A format-patch file with the headers git send-email adds (Message-ID, To, threading)."""
    first, rest = data.split(b"\n", 1) if data.startswith(b"From ") else (b"", data)
    extra = f"Message-ID: <{msgid}>\nTo: {ADDRESS}\n"
    if parent:
        extra += f"In-Reply-To: <{parent}>\nReferences: <{parent}>\n"
    return (first + b"\n" if first else b"") + extra.encode() + rest


def mbox_messages(path: Path) -> List[bytes]:
    """The messages of a stored mbox, bytes as stored."""
    box = mailbox.mbox(str(path), create=False)
    try:
        return [box.get_bytes(key) for key in box.keys()]
    finally:
        box.close()
