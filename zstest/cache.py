"""The cache under ~/.cache/zstest: kernel sources, ccache, images, builds.

ZSTEST_CACHE overrides the location (tests and CI use it to share one cache).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path
from typing import Optional

from .errors import PrereqMissing
from .proc import run, which

log = logging.getLogger("zstest.cache")

# How long a stage waits for another zstest holding the same cache lock (a cold kernel build
# holds its objdir lock for tens of minutes); ZSTEST_LOCK_TIMEOUT (seconds) overrides it.
LOCK_WAIT_S = 3 * 3600
LOCK_POLL_S = 0.2

DEFAULT_KERNEL_VERSION = "6.1"


def cache_root() -> Path:
    root = os.environ.get("ZSTEST_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "zstest")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(*parts: str) -> Path:
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def lock_wait_s() -> float:
    try:
        return float(os.environ.get("ZSTEST_LOCK_TIMEOUT", LOCK_WAIT_S))
    except ValueError:
        return LOCK_WAIT_S


def lock_holder(path: Path) -> str:
    """Who holds the lock file path, as its holder wrote it: "pid 123 (zstest build ...) since 12:00:01"."""
    try:
        info = json.loads(Path(path).read_text() or "{}")
        since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])} ({str(info.get('command', '?'))[:80]}) since {since}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def file_lock(path: Path, timeout: Optional[float] = None):
    """An exclusive flock, so two zstest runs do not unpack, import or build at once.

    The holder writes its pid, command and start time into the lock file; a waiter says whom it
    waits for, and gives up after timeout (default lock_wait_s()) with exit 6: a busy cache is a
    host condition, as a missing tool is.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    timeout = lock_wait_s() if timeout is None else timeout
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            start = time.monotonic()
            log.warning("waiting for %s, held by %s", path.name, lock_holder(path))
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() - start >= timeout:
                        raise PrereqMissing(
                            f"the cache lock {path} is still held by {lock_holder(path)} after "
                            f"{timeout:g} s; wait for it to finish or stop it "
                            f"(ZSTEST_LOCK_TIMEOUT sets the wait).") from None
                    time.sleep(LOCK_POLL_S)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps({"pid": os.getpid(), "since": time.time(),
                                 "command": " ".join(["zstest"] + sys.argv[1:])}) + "\n")
            fh.flush()
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def debian_source_tarball(version: str = DEFAULT_KERNEL_VERSION) -> Path:
    return Path(f"/usr/src/linux-source-{version}.tar.xz")


def default_kernel_tree(version: str = DEFAULT_KERNEL_VERSION) -> Path:
    """Debian's linux-source-VERSION, unpacked once into the cache."""
    target = cache_dir("src") / f"linux-source-{version}"
    if (target / "Makefile").is_file():
        return target
    tarball = debian_source_tarball(version)
    if not tarball.is_file():
        raise PrereqMissing(
            f"{tarball} is missing: install it with `apt-get install linux-source-{version}` "
            f"(ci/setup does this) or pass --kernel DIR.")
    with file_lock(cache_root() / "locks" / f"src-{version}.lock"):
        if (target / "Makefile").is_file():
            return target
        tmp = target.with_name(target.name + ".unpacking")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        unpack_tarball(tarball, tmp)
        inner = tmp / f"linux-source-{version}"
        inner.rename(target)
        shutil.rmtree(tmp)
    return target


# Debian's linux-source tarballs are multi-block xz: decompressed on every core (6.1 here: 7 s,
# against 27 s for Python's tarfile), and the first build of an empty cache waits for it.
XZ_OPT_PARALLEL = {"XZ_OPT": "-T0"}
UNPACK_TIMEOUT_S = 1800


def unpack_tarball(tarball: Path, dest: Path) -> None:
    """tarball's members into dest, never outside it. GNU tar (xz on every core) strips a
    leading '/' and refuses a name with '..' (exit 2: an error here); without tar or xz,
    Python's tarfile, the same members skipped."""
    tar, xz = which("tar"), which("xz")
    if tar is None or xz is None or not str(tarball).endswith(".xz"):
        with tarfile.open(tarball) as tf:
            tf.extractall(dest, members=[m for m in tf.getmembers() if _safe_member(m)])
        return
    res = run([tar, "-x", "-J", "--no-same-owner", "-f", str(tarball), "-C", str(dest)],
              env=XZ_OPT_PARALLEL, timeout=UNPACK_TIMEOUT_S, check=False)
    if not res.ok:
        lines = [ln.split(": ", 1)[-1] for ln in (res.stderr or res.stdout).splitlines()]
        # tar's own notes ("Removing leading ...", "Exiting with failure ...") are not the reason
        said = [ln for ln in lines if ln and not ln.startswith(("Removing leading", "Exiting"))]
        raise PrereqMissing(f"{tarball} could not be unpacked (tar: "
                            f"{(said or ['exit ' + str(res.returncode)])[0]}); reinstall the "
                            f"package that ships it or pass --kernel DIR.")


def _safe_member(member: tarfile.TarInfo) -> bool:
    name = member.name
    return not (name.startswith("/") or ".." in Path(name).parts)
