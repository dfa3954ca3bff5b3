"""Small file-system helpers every stage uses for its state files."""

from __future__ import annotations

import os
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
