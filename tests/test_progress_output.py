"""Output for people and for CI logs: build progress cadence without a TTY, one live line on
a TTY (a real pseudo-terminal), NO_COLOR / TERM=dumb, --quiet, and --make-arg's way into
every make call, build.json and the reproducer.

The "long build" is a real subprocess printing kbuild-style "  CC" lines slowly, followed
through proc.run's on_line exactly as _Builder.make does; the interval is injected short.
"""

from __future__ import annotations

import json
import os
import re
import select
import sys
import threading
import time

import pytest

from conftest import run_zstest
from test_settings import make_tree
from zstest import proc
from zstest.progress import Progress, wants_live_line

SLOW_MAKE = r"""
import sys, time
for i in range(8):
    print(f"  CC      mm/unit{i}.o", flush=True)
    time.sleep(0.1)
print("  LD      vmlinux.o", flush=True)
time.sleep(2.0)                        # a long silent link
for i in range(4):
    print(f"  CC [M]  drivers/block/zram/z{i}.o", flush=True)
    time.sleep(0.1)
"""


class Recorder:
    """A stream that remembers when each write happened (not a TTY)."""

    def __init__(self):
        self.writes = []
        self.lock = threading.Lock()

    def write(self, text):
        with self.lock:
            self.writes.append((time.monotonic(), text))

    def flush(self):
        pass

    def isatty(self):
        return False


def test_ci_log_gets_a_line_at_least_every_interval(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = Recorder()
    interval = 0.5
    progress = Progress(out=out, interval=interval)
    assert progress.live is False                    # not a TTY: plain lines
    t0 = time.monotonic()
    progress.set_stage("build")
    proc.run([sys.executable, "-c", SLOW_MAKE], timeout=60, on_line=progress.on_line)
    t1 = time.monotonic()
    progress.done("zstest build: ok in 3 s -> /tmp/b")
    text = "".join(t for _, t in out.writes)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text), repr(text)   # no \r, no ESC
    lines = text.splitlines()
    pattern = re.compile(r"^zstest build: build: (\d+) units? compiled, \d+ s elapsed$")
    progress_lines = [l for l in lines if pattern.match(l)]
    assert lines[-1] == "zstest build: ok in 3 s -> /tmp/b"
    assert len(progress_lines) == len(lines) - 1, lines
    # The cadence: from the start to the end of the command, never a gap above the interval
    # (plus the timer's wake-up period and scheduling slack on a loaded 2-core machine).
    stamps = [t0] + [t for t, s in out.writes if pattern.match(s.strip())] + [t1]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert max(gaps) <= interval + 0.45, gaps
    # Lines kept coming during the silent link, and the counts are the CC lines seen so far.
    during_link = [s for t, s in out.writes if t0 + 1.2 < t < t0 + 2.6]
    assert len(during_link) >= 2, out.writes
    counts = [int(pattern.match(l).group(1)) for l in progress_lines]
    assert counts == sorted(counts) and 8 in counts and progress.compiled == 12


def test_live_line_on_a_real_tty_and_quiet_prints_nothing(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty:
        assert wants_live_line(tty)
        monkeypatch.setenv("NO_COLOR", "1")
        assert not wants_live_line(tty)
        monkeypatch.delenv("NO_COLOR")
        monkeypatch.setenv("TERM", "dumb")
        assert not wants_live_line(tty)
        monkeypatch.setenv("TERM", "xterm")
        progress = Progress(out=tty, interval=0.2)
        assert progress.live
        progress.set_stage("build")
        for i in range(3):
            time.sleep(0.3)                  # the live line is redrawn at most twice a second
            progress.on_line(f"  CC      mm/u{i}.o")
        time.sleep(0.7)                      # the timer redraws the line (elapsed ticks on)
        progress.done("zstest build: ok")
    data = b""
    while select.select([master], [], [], 0.5)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:                       # EIO: the slave side is closed and drained
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    data = data.decode()
    assert "\r\x1b[K" in data and "3 units compiled" in data
    assert data.count("\n") == data.count("zstest build: ok")          # one line, redrawn
    quiet_out = Recorder()
    quiet = Progress(out=quiet_out, interval=0.05, quiet=True)
    quiet.set_stage("build")
    time.sleep(0.2)
    quiet.on_line("  CC      mm/x.o")
    quiet.done("zstest build: ok")
    assert quiet_out.writes == []


@pytest.fixture
def env(tmp_path):
    (tmp_path / "xdg").mkdir()
    return {"ZSTEST_CACHE": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
            "ZSTEST_KERNEL": "", "NO_COLOR": "1"}


def test_quiet_build_prints_only_the_error(tmp_path, env):
    tree = make_tree(tmp_path / "linux", git=True)
    loud = run_zstest("build", "--out", tmp_path / "b1", cwd=tree, env=env, timeout=300)
    assert loud.returncode == 4
    assert "zstest build: config: 0 units compiled" in loud.stderr
    quiet = run_zstest("build", "--quiet", "--out", tmp_path / "b2", cwd=tree, env=env,
                       timeout=300)
    assert quiet.returncode == 4
    assert quiet.stdout == ""
    # make's own output stays in build.log; the terminal gets the error sentence only
    assert [l for l in quiet.stderr.splitlines() if l.startswith("zstest")] == \
        [l for l in quiet.stderr.splitlines() if l.startswith("zstest: error:")]
    assert "units compiled" not in quiet.stderr


def test_make_args_reach_every_make_call_build_json_and_reproducer(tmp_path, env):
    tree = make_tree(tmp_path / "linux", git=True)
    (tree / "zstest.toml").write_text('config = ["base"]\n')
    proc_ = run_zstest("build", "--make-arg", "LLVM=1", "--make-arg", "KCFLAGS=-Wno-x",
                       "--out", tmp_path / "b", cwd=tree, env=env, timeout=300)
    assert proc_.returncode == 4, proc_.stderr
    m = json.loads((tmp_path / "b" / "build.json").read_text())
    assert m["make_args"] == ["LLVM=1", "KCFLAGS=-Wno-x"]
    assert "--make-arg LLVM=1 --make-arg KCFLAGS=-Wno-x" in m["reproducer"]
    # a value that came from zstest.toml is in the reproducer too
    assert m["reproducer"].endswith("--config base")
    # the config step already ran with them (LLVM=1 changes what Kconfig offers), ccache kept
    assert "'CC=ccache clang' LLVM=1 KCFLAGS=-Wno-x -s tinyconfig` exited with 2" in proc_.stderr


@pytest.mark.parametrize("arg, words", [("junk", "takes VAR=VALUE"),
                                        ("O=/tmp/x", "zstest sets O= itself")])
def test_bad_make_arg_is_exit_2(tmp_path, env, arg, words):
    tree = make_tree(tmp_path / "linux")
    proc_ = run_zstest("build", "--make-arg", arg, "--out", tmp_path / "b", cwd=tree, env=env,
                       timeout=120)
    assert proc_.returncode == 2, proc_.stderr
    errors = [l for l in proc_.stderr.splitlines() if l.startswith("zstest: error:")]
    assert len(errors) == 1 and words in errors[0] and "Traceback" not in proc_.stderr
