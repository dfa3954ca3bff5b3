"""Guest I/O that keeps running while a test migrates pages under it."""

from __future__ import annotations

import shlex
import time
from typing import List, Optional

from .tools import ToolReport, parse_tool_output


class BackgroundIO:
    """zsfill loops started detached in the guest, all stopped by one stop file.

    Each loop is `zsfill ... --until STOP`: it repeats its pass until the stop file
    exists, then prints its summary, so a reader that saw a bad block during the
    migration reports it even if a later pass reads good data.
    """

    def __init__(self, guest, name: str = "bgio"):
        self.guest = guest
        self.stop_file = f"/tmp/{name}.stop"
        self.jobs: List[str] = []   # output files
        self.guest.check(f"rm -f {self.stop_file}")
        self._prefix = name

    def start(self, zsfill_cmd: str) -> str:
        out = f"/tmp/{self._prefix}.{len(self.jobs)}.out"
        # setsid + redirected fds: the SSH session ends at once, the loop keeps going
        self.guest.check(f"setsid sh -c {shlex.quote(zsfill_cmd + ' --until ' + self.stop_file)} "
                         f"> {out} 2>&1 < /dev/null &")
        self.jobs.append(out)
        return out

    def stop(self, timeout: float = 120.0) -> List[Optional[ToolReport]]:
        """Create the stop file, wait for every loop's summary line, return the reports."""
        self.guest.check(f"touch {self.stop_file}")
        deadline = time.monotonic() + timeout
        reports: List[Optional[ToolReport]] = [None] * len(self.jobs)
        while time.monotonic() < deadline:
            for i, out in enumerate(self.jobs):
                if reports[i] is None:
                    text = self.guest.run(f"cat {out}").stdout
                    reports[i] = parse_tool_output(text)
            if all(r is not None for r in reports):
                break
            time.sleep(0.5)
        return reports
