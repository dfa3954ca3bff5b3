"""Small file-system helpers every stage uses for its state files."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path


def write_text_atomic(path: "str | Path", text: str) -> Path:
    """Write text to path via a temporary file in the same directory and os.replace.

    A reader (another zstest, CI collecting artifacts) sees the old file or the new one,
    never half of one, also when this process is killed mid-write.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    # os.umask can only be read by setting it; put it straight back
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def claim_unique_dir(parent: "str | Path", name: str) -> Path:
    """parent/name, or parent/name-2, -3 ...: the first one this process creates itself.

    mkdir without exist_ok is the atomic claim: two runs started in the same second never
    share a directory.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10000):
        candidate = parent / (name if n == 1 else f"{name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent}/{name}-N: no free name left")


def artifact_file(base: "str | Path", name: object) -> "Path | None":
    """base/name resolved, when an artifact names a regular file that stays inside base.

    Artifacts (results.json, build.json) travel between machines: a name like "/etc/passwd",
    "../../x", "/dev/zero" or a symlink out of base is not theirs to read.
    """
    if not isinstance(name, str) or not name or "\0" in name:
        return None
    try:
        root = Path(base).resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not stat.S_ISREG(path.stat().st_mode):
            return None
    except (OSError, ValueError, RuntimeError):
        return None
    return path


def read_tail(path: "str | Path", max_bytes: int) -> str:
    """The last max_bytes of a file as text (the whole file when smaller); a cut first line is
    dropped. A 1 GB console.log costs max_bytes of memory, not 1 GB."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(0, size - max_bytes))
        data = fh.read(max_bytes)
    if size > max_bytes:
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return data.decode("utf-8", errors="replace")


def read_bounded(path: "str | Path", max_bytes: int) -> "str | None":
    """A regular file's text when it holds at most max_bytes, else None (never read whole)."""
    try:
        # O_NONBLOCK: opening a FIFO named as a source file must not wait for a writer
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_size > max_bytes:
                return None
            data = fh.read(max_bytes + 1)
    except OSError:
        return None
    return None if len(data) > max_bytes else data.decode("utf-8", errors="replace")


def read_gzip_bounded(path: "str | Path", max_bytes: int) -> "str | None":
    """A regular gzip file's text when it inflates to at most max_bytes, else None: a
    compressed artifact is untrusted input, never inflated whole before it is measured."""
    import gzip
    import zlib
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as raw:
            if not stat.S_ISREG(os.fstat(raw.fileno()).st_mode):
                return None
            with gzip.GzipFile(fileobj=raw) as fh:
                data = fh.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error):
        return None
    return None if len(data) > max_bytes else data.decode("utf-8", errors="replace")


def output_error(exc: OSError, path: "str | Path", what: str) -> Exception:
    """An output zstest could not write, as one sentence: a full disk is exit 6 (as the runner's
    ENOSPC), a read-only, missing or wrong kind of path is exit 2 (a bad --out)."""
    from .errors import EXIT_PREREQ, BadInput, ZstestError
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ZstestError(f"no space left on device (ENOSPC) writing {what} {path}: free space "
                           f"or write it elsewhere.", exit_code=EXIT_PREREQ)
    return BadInput(f"cannot write {what} {path}: {exc.strerror or exc}.")


@contextlib.contextmanager
def writing(path: "str | Path", what: str):
    """An OSError inside the block becomes output_error's one sentence."""
    try:
        yield
    except OSError as exc:
        raise output_error(exc, path, what) from None


def output_dir(path: "str | Path", what: str) -> Path:
    """path made (with its parents) as an output directory; one sentence when it cannot be."""
    path = Path(path)
    with writing(path, what):
        path.mkdir(parents=True, exist_ok=True)
    return path


def write_output(path: "str | Path", text: str, what: str) -> Path:
    """A user-named output file (--json FILE): written atomically, except a device or FIFO
    (/dev/stdout, /dev/null), which is written in place, never replaced. One sentence on
    failure (output_error)."""
    path = Path(path)
    with writing(path, what):
        try:
            special = not stat.S_ISREG(path.stat().st_mode) and not path.is_dir()
        except FileNotFoundError:
            special = False
        if special:
            with open(path, "w") as fh:
                fh.write(text)
            return path
        return write_text_atomic(path, text)
