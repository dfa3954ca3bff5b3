"""Build progress for a person at a terminal and for a CI log.

A terminal (stderr is a TTY, NO_COLOR unset, TERM not dumb) gets one live line, redrawn
with \\r. Anything else gets plain lines, no control characters, one at every stage change
and one at least every `interval` seconds while a stage runs (a CI job with a no-output
limit must not die during a 9-minute cold build), from a timer thread: make may be silent
for minutes while it links vmlinux. Each line says the stage, the units compiled so far
(kbuild's "  CC " lines) and the time elapsed. quiet: nothing but the final line's caller.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional, TextIO

CI_INTERVAL_S = 30.0


def wants_live_line(stream: TextIO) -> bool:
    """One redrawn line only where a person watches a capable terminal."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM", "") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """Stage, units compiled and elapsed time: a live line on a tty, periodic lines otherwise."""

    def __init__(self, live: Optional[bool] = None, out: Optional[TextIO] = None,
                 interval: float = CI_INTERVAL_S, quiet: bool = False, label: str = "zstest build"):
        self.out = out if out is not None else sys.stderr
        self.live = wants_live_line(self.out) if live is None else live
        self.interval = interval
        self.quiet = quiet
        self.label = label
        self.start = time.monotonic()
        self.stage = ""
        self.compiled = 0
        self._last_write = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def set_stage(self, stage: str) -> None:
        self.stage = stage
        if self.quiet:
            return
        self._write(force=True)
        if self._thread is None:
            self._thread = threading.Thread(target=self._tick, name="zstest-progress", daemon=True)
            self._thread.start()

    def on_line(self, line: str) -> None:
        """proc.run's on_line: every line of make's output."""
        if line.startswith("  CC "):
            self.compiled += 1
        if self.live and not self.quiet:
            self._write()

    def line(self) -> str:
        units = f"{self.compiled} unit{'s' if self.compiled != 1 else ''} compiled"
        return f"{self.label}: {self.stage}: {units}, {self.elapsed():.0f} s elapsed"

    def _tick(self) -> None:
        # Wake often enough to keep the cadence; write only when a line is due.
        period = min(1.0, self.interval / 4)
        while not self._stop.wait(period):
            self._write()

    def _write(self, force: bool = False) -> None:
        with self._lock:
            if self._stop.is_set() and not force:
                return
            now = time.monotonic()
            due = self.interval if not self.live else 0.5
            if not force and now - self._last_write < due:
                return
            self._last_write = now
            try:
                if self.live:
                    self.out.write(f"\r\x1b[K[{self.elapsed():6.0f} s] {self.stage}: "
                                   f"{self.compiled} units compiled")
                else:
                    self.out.write(self.line() + "\n")
                self.out.flush()
            except (OSError, ValueError):
                pass   # a closed or broken stderr must not fail the build

    def close(self) -> None:
        """Stop the timer thread (and clear the live line)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            if self.live and not self.quiet and self._last_write:
                try:
                    self.out.write("\r\x1b[K")
                    self.out.flush()
                except (OSError, ValueError):
                    pass
                self._last_write = 0.0

    def done(self, text: str) -> None:
        self.close()
        if self.quiet:
            return   # the command prints its own verdict line
        try:
            self.out.write(text.rstrip() + "\n")
            self.out.flush()
        except (OSError, ValueError):
            pass
