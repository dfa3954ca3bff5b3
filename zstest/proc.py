"""The one way zstest runs an external command.

Every command is logged, has a timeout, never goes through a shell, and on
failure raises CommandError carrying the command, its exit code and the tail
of its output.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, IO, Mapping, Optional, Sequence

log = logging.getLogger("zstest.proc")

TAIL_LINES = 30


@dataclass
class CommandResult:
    argv: list
    returncode: int
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandError(Exception):
    """An external command failed or timed out."""

    def __init__(self, argv: Sequence[str], returncode: Optional[int], output: str,
                 timed_out: bool = False, timeout: Optional[float] = None):
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        self.timed_out = timed_out
        self.timeout = timeout
        super().__init__(self.summary())

    @property
    def tail(self) -> str:
        return "\n".join(self.output.rstrip().splitlines()[-TAIL_LINES:])

    def summary(self) -> str:
        cmd = shlex.join(str(a) for a in self.argv)
        if self.timed_out:
            return f"`{cmd}` did not finish within {self.timeout:g} s"
        return f"`{cmd}` exited with {self.returncode}"


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the group first (make deletes its half-written target), SIGKILL after grace_s."""
    if grace_s > 0 and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace_s)
        except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
            pass
    _kill_group(proc)


def run(argv: Sequence[str], *, timeout: float = 600, cwd: "str | Path | None" = None,
        env: Optional[Mapping[str, str]] = None, check: bool = True,
        input: Optional[str] = None, log_file: Optional[IO[str]] = None,
        on_line: Optional[Callable[[str], None]] = None, stop_grace_s: float = 0,
        unset: Sequence[str] = ()) -> CommandResult:
    """Run argv (a list, never a shell string) and return its result.

    With log_file or on_line, output is streamed line by line (stderr merged
    into stdout) as it comes, so a long build's log is on disk while it runs.
    The child runs in its own process group so a timeout or Ctrl-C kills all
    of it, not only the first process. stop_grace_s > 0: on a timeout or Ctrl-C the group gets
    SIGTERM and that long to clean up before SIGKILL. unset: names dropped from the inherited
    environment (git's GIT_DIR and friends must not reach a git zstest runs).
    """
    argv = [str(a) for a in argv]
    full_env = None
    if env is not None or unset:
        full_env = {k: v for k, v in os.environ.items() if k not in set(unset)}
        full_env.update(env or {})
    log.debug("run: %s (cwd=%s, timeout=%s)", shlex.join(argv), cwd, timeout)
    start = time.monotonic()
    streaming = log_file is not None or on_line is not None
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=full_env, text=True, errors="replace",
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if streaming else subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise CommandError(argv, None, f"{argv[0]}: command not found ({exc})") from None

    try:
        if streaming:
            stdout, stderr = _stream(proc, timeout, input, log_file, on_line, argv, stop_grace_s)
        else:
            try:
                stdout, stderr = proc.communicate(input=input, timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop_group(proc, stop_grace_s)
                stdout, stderr = proc.communicate()
                raise CommandError(argv, None, (stdout or "") + (stderr or ""),
                                   timed_out=True, timeout=timeout) from None
    except BaseException:
        # Ctrl-C, SIGTERM or a timeout: never leave the child behind.
        if proc.poll() is None:
            _stop_group(proc, stop_grace_s)
            proc.wait()
        raise
    duration = time.monotonic() - start
    result = CommandResult(argv, proc.returncode, stdout or "", stderr or "", duration)
    log.debug("exit %s after %.1fs: %s", proc.returncode, duration, argv[0])
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, result.stdout + result.stderr)
    return result


def _stream(proc, timeout, input, log_file, on_line, argv, stop_grace_s=0):
    if input is not None:
        proc.stdin.write(input)
        proc.stdin.close()
    timed_out = threading.Event()

    def on_timeout():
        timed_out.set()
        _stop_group(proc, stop_grace_s)

    timer = threading.Timer(timeout, on_timeout)
    timer.daemon = True
    timer.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if log_file is not None:
                log_file.write(line)
                log_file.flush()
            if on_line is not None:
                on_line(line.rstrip("\n"))
        proc.wait()
    finally:
        timer.cancel()
    out = "".join(lines)
    if timed_out.is_set():
        raise CommandError(argv, None, out, timed_out=True, timeout=timeout)
    return out, ""


def which(name: str) -> Optional[str]:
    """shutil.which that also looks in sbin dirs (dropbear lives in /usr/sbin)."""
    import shutil
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin:/usr/local/sbin"
    return shutil.which(name, path=path)
