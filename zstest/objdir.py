"""A make O= object dir that survives a killed make.

kbuild deletes a half-written target when make is stopped by SIGINT/SIGTERM, not when it is
SIGKILLed (a timeout's last resort, or zstest itself killed): a truncated .o or vmlinux then
looks up to date to the next make. So every make runs with a marker file in the objdir, removed
only when make ended by itself; make that ends successfully also refreshes a stamp. The next
build that finds the marker deletes every file the killed make wrote, i.e. every file newer
than the last successful make's stamp (all of them when there was none): a clean of exactly
the partially built files, so the rebuild stays incremental for everything older.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, IO, Mapping, Optional, Sequence

from . import proc

log = logging.getLogger("zstest.objdir")

MAKE_RUNNING = ".zstest-make-running"    # make was started and has not ended by itself yet
MAKE_OK = ".zstest-make-ok"              # mtime: the end of the last successful make
# make gets this long after SIGTERM to delete its half-written targets before SIGKILL
STOP_GRACE_S = 10.0
# never deleted by the cleanup: the configuration is installed again before make anyway
KEEP = {MAKE_RUNNING, MAKE_OK, ".config", ".config.old"}


def run_make_marked(argv: Sequence[str], objdir: Path, *, timeout: float,
                    env: Optional[Mapping[str, str]] = None, log_file: Optional[IO[str]] = None,
                    on_line: Optional[Callable[[str], None]] = None,
                    stop_grace_s: float = STOP_GRACE_S) -> proc.CommandResult:
    """proc.run(argv) for a make into objdir, with the killed-make marker around it."""
    objdir = Path(objdir)
    objdir.mkdir(parents=True, exist_ok=True)
    marker = objdir / MAKE_RUNNING
    marker.write_text(f"{os.getpid()}\n")
    try:
        result = proc.run(argv, env=env, timeout=timeout, log_file=log_file, on_line=on_line,
                          stop_grace_s=stop_grace_s)
    except proc.CommandError as exc:
        if not exc.timed_out and exc.returncode is not None:
            # make failed by itself: kbuild's .DELETE_ON_ERROR removed the broken target
            marker.unlink(missing_ok=True)
        raise
    # Ctrl-C (KeyboardInterrupt) passes through with the marker left in place
    (objdir / MAKE_OK).touch()
    marker.unlink(missing_ok=True)
    return result


def clean_after_killed_make(objdir: Path) -> int:
    """When a make into objdir was killed, delete every file it wrote; returns how many."""
    objdir = Path(objdir)
    marker = objdir / MAKE_RUNNING
    if not marker.exists():
        return 0
    stamp = objdir / MAKE_OK
    since = stamp.stat().st_mtime_ns if stamp.exists() else 0
    removed = 0
    for root, _dirs, files in os.walk(objdir):
        for name in files:
            if root == str(objdir) and name in KEEP:
                continue
            path = os.path.join(root, name)
            try:
                if os.lstat(path).st_mtime_ns > since:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                continue
    marker.unlink()
    log.warning("the last make into %s was killed: removed the %d file(s) it wrote", objdir, removed)
    return removed
