"""The cache under ~/.cache/zstest: kernel sources, ccache, images, builds.

ZSTEST_CACHE overrides the location (tests and CI use it to share one cache).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tarfile
from pathlib import Path

from .errors import PrereqMissing

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


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive flock, so two zstest runs do not unpack or import at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
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
        with tarfile.open(tarball) as tf:
            members = [m for m in tf.getmembers() if _safe_member(m)]
            tf.extractall(tmp, members=members)
        inner = tmp / f"linux-source-{version}"
        inner.rename(target)
        shutil.rmtree(tmp)
    return target


def _safe_member(member: tarfile.TarInfo) -> bool:
    name = member.name
    return not (name.startswith("/") or ".." in Path(name).parts)
