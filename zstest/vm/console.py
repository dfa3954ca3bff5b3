"""Serial console monitor: every byte to console.log, splats found live.

A background thread reads QEMU's serial port (a pexpect child on a pty) for
the whole life of the guest, appends every byte to the log (flushed at once,
so the file is whole even if zstest is killed), and feeds complete lines to
the splat scanner. A kernel panic sets `panicked`, and any fatal report (an oops, a
BUG, a soft lockup, a hung task...: splats.is_fatal) sets `fatal`, as soon as its
title line arrives, so a blocked SSH command can give up without waiting for its own
timeout. A fresh guest after a crash appends to the same log (`append=True`): line
numbers go on from the lines already there, so a splat's line is a line of the file.
Memory holds only the last MEMORY_BYTES of output (marks are offsets from this guest's first
byte, so they stay valid); console.log holds all of it.
"""

from __future__ import annotations

import bisect
import os
import re
import select
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ..splats import Splat, SplatScanner, is_fatal

PANIC = re.compile(r"Kernel panic - not syncing")
# What the monitor keeps in memory: console.log has every byte; marks stay absolute offsets.
MEMORY_BYTES = 16 << 20
# A line longer than this (a guest printing without newlines) is scanned by its start only.
LINE_MAX_BYTES = 64 << 10


class ConsoleMonitor:
    def __init__(self, log_path: Path, ignore: Sequence = (), append: bool = False,
                 banner: str = ""):
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        lines_before = 0
        if append and self.log_path.is_file():
            with open(self.log_path, "rb") as old:
                data = old.read()
            lines_before = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        # unbuffered: a byte the kernel printed is on disk at once, and a full disk fails here
        self._fh = open(self.log_path, "ab" if append else "wb", buffering=0)
        self.write_error: Optional[OSError] = None   # the log could not be written (ENOSPC)
        if append and lines_before and banner:
            # zstest's own line between two guests' output (it ends any report left open)
            prefix = b"" if data.endswith(b"\n") else b"\n"
            self._write(prefix + f"zstest: {banner}\n".encode())
            lines_before += 1
        self._line_base = lines_before       # lines of the file before this guest's first byte
        self._data = bytearray()             # the console's last bytes (at most ~MEMORY_BYTES)
        self._base = 0                       # offset of _data[0] in this guest's output
        self._pending = bytearray()          # an incomplete line's first LINE_MAX_BYTES bytes
        self._pending_start = 0              # offset of the incomplete line's start
        self._line_offsets: List[int] = []   # offset of every complete line's start still kept
        self._lines_dropped = 0              # complete lines whose offsets were let go
        self._scanner = SplatScanner(ignore, first_line_no=lines_before + 1)
        self._splats: List[Splat] = []
        self._splat_offsets: List[int] = []
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self.panicked = False
        self.panic_line = ""
        self.fatal: Optional[tuple] = None   # (kind, title, host monotonic time) of the first fatal report
        self.closed = threading.Event()      # the serial port reached EOF (QEMU is gone)
        self.first_byte_wall: Optional[float] = None

    # ---- feeding
    def start(self, child) -> None:
        """Read child's pty (a pexpect spawn) in a daemon thread until EOF.

        The thread reads its own duplicate of the pty's fd with select/os.read and never
        asks pexpect whether QEMU lives: pexpect's read_nonblocking answers EOF by
        waitpid()ing the child, which races the main thread reaping the same QEMU
        ("Did someone else call waitpid() on our process?"). The process is the main
        thread's; the bytes are this thread's.
        """
        fd = os.dup(child.child_fd)

        def pump():
            held = b""
            try:
                while True:
                    try:
                        ready, _, _ = select.select([fd], [], [], 0.2)
                        if not ready:
                            continue
                        data = os.read(fd, 65536)
                    except InterruptedError:
                        continue
                    except (OSError, ValueError):
                        break            # EIO: every end of the pty's slave side is closed
                    if not data:
                        break
                    chunk = held + data
                    # QEMU forces OPOST on its stdio tty, so the pty turned each \n into
                    # \r\n: undo it (exactly) so the log holds QEMU's own bytes.
                    held = b"\r" if chunk.endswith(b"\r") else b""
                    self.feed(chunk[:len(chunk) - len(held)].replace(b"\r\n", b"\n"))
            finally:
                try:
                    os.close(fd)
                except OSError:
                    pass
                if held:
                    self.feed(held)
                self.finish()
        self._thread = threading.Thread(target=pump, name="zstest-console", daemon=True)
        self._thread.start()

    def feed(self, chunk: bytes) -> None:
        now = time.monotonic()
        with self._cond:
            if self.first_byte_wall is None:
                self.first_byte_wall = now
            self._write(chunk)
            offset = self._base + len(self._data)
            self._data += chunk
            start = 0
            while True:
                nl = chunk.find(b"\n", start)
                room = LINE_MAX_BYTES - len(self._pending)
                if nl < 0:
                    self._pending += chunk[start:start + max(room, 0)]
                    break
                self._pending += chunk[start:start + max(min(room, nl - start), 0)]
                self._take_line(bytes(self._pending), self._pending_start, now)
                self._pending = bytearray()
                self._pending_start = offset + nl + 1
                start = nl + 1
            self._trim()
            self._cond.notify_all()

    def _trim(self) -> None:
        """Keep the last MEMORY_BYTES (by a quarter more at most: trimming is amortized)."""
        extra = len(self._data) - MEMORY_BYTES
        if extra <= MEMORY_BYTES // 4:
            return
        del self._data[:extra]
        self._base += extra
        gone = bisect.bisect_left(self._line_offsets, self._base)
        del self._line_offsets[:gone]
        self._lines_dropped += gone

    def _write(self, chunk: bytes) -> None:
        """Append to console.log; on a full disk keep reading (QEMU must never block) in memory."""
        if self.write_error is not None or self._fh.closed:
            return
        view = memoryview(chunk)
        try:
            while view:
                written = self._fh.write(view)
                if not written:
                    raise OSError(28, "No space left on device (nothing written)")
                view = view[written:]
        except OSError as exc:
            self.write_error = exc

    def _take_line(self, line: bytes, offset: int, now: float) -> None:
        text = line.decode("utf-8", errors="replace")
        self._line_offsets.append(offset)
        if not self.panicked and PANIC.search(text):
            self.panicked = True
            self.panic_line = text.strip()
        for splat in self._scanner.feed(text, wall=now):
            self._add_splat(splat, now)
        if self.fatal is None:
            opened = self._scanner.open_report()
            if opened is not None and is_fatal(*opened):
                self.fatal = (opened[0], opened[1], now)

    def _add_splat(self, splat: Splat, now: float) -> None:
        self._splats.append(splat)
        i = splat.line_no - 1 - self._line_base - self._lines_dropped
        self._splat_offsets.append(self._line_offsets[i] if 0 <= i < len(self._line_offsets)
                                   else self._base)
        if self.fatal is None and splat.fatal:
            self.fatal = (splat.kind, splat.title, splat.wall or now)

    def finish(self) -> None:
        with self._cond:
            if self.closed.is_set():
                return
            if self._pending_start < self._base + len(self._data):
                self._take_line(bytes(self._pending), self._pending_start, time.monotonic())
                self._pending = bytearray()
                self._pending_start = self._base + len(self._data)
            for splat in self._scanner.flush():
                self._add_splat(splat, time.monotonic())
            self.closed.set()
            self._cond.notify_all()

    def join(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
        self.finish()
        with self._cond:
            if not self._fh.closed:
                self._fh.close()

    # ---- reading
    def mark(self) -> int:
        """A position in the console (bytes so far); pass it to splats_since/wait_for."""
        with self._cond:
            return self._base + len(self._data)

    def note(self, text: str) -> None:
        """A `zstest: text` line of the host's own into the console (log, scan, line numbers)."""
        with self._cond:
            start = b"\n" if self._pending else b""
        self.feed(start + f"zstest: {text}\n".encode())

    def line_no_at(self, mark: int) -> int:
        """The 1-based line of console.log that holds the byte at mark."""
        with self._cond:
            if mark >= self._pending_start:           # the line not yet ended
                return self._line_base + self._lines_dropped + len(self._line_offsets) + 1
            return (self._line_base + self._lines_dropped
                    + bisect.bisect_right(self._line_offsets, mark))

    @property
    def splats(self) -> List[Splat]:
        with self._cond:
            return list(self._splats)

    def splats_since(self, mark: int) -> List[Splat]:
        with self._cond:
            i = bisect.bisect_left(self._splat_offsets, mark)
            return list(self._splats[i:])

    def text(self, since: int = 0) -> str:
        """The console from mark `since` (from what memory still holds when that is older)."""
        with self._cond:
            return bytes(self._data[max(since - self._base, 0):]).decode("utf-8", errors="replace")

    def tail(self, lines: int = 50) -> str:
        with self._cond:
            data = bytes(self._data[-200 * lines:])
        text = data.decode("utf-8", errors="replace").replace("\r", "")
        return "\n".join(text.splitlines()[-lines:])

    def wait_for(self, regex, timeout: float, since: int = 0,
                 stop: Optional[Callable[[], bool]] = None) -> Optional[re.Match]:
        """The first match of regex in the console after `since`, or None on timeout/EOF/stop()."""
        pattern = re.compile(regex) if isinstance(regex, str) else regex
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                m = pattern.search(bytes(self._data[max(since - self._base, 0):])
                                   .decode("utf-8", errors="replace"))
                if m or self.closed.is_set():
                    return m
                if stop is not None and stop():
                    return None
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.2))
