"""Detect what a series source argument is and load it into a Series."""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

from ..errors import BadInput
from ..gitsafe import run_git
from ..proc import CommandError
from .lore import default_lore_url, fetch_thread, msgid_from_url
from .model import Series
from .parse import (MAX_MBOX_BYTES, Mail, build_series, parse_subject, plain_patch_mail,
                    read_mails)

GIT_RANGE = re.compile(r"^[^\s.][^\s]*?\.\.\.?[^\s]+$|^[^\s]+\.\.$|^\.\.[^\s]+$")
MSGID = re.compile(r"^<?[^\s<>@/]+@[^\s<>@/]+>?$")
PATCH_SUFFIXES = (".patch", ".diff", ".mbox", ".eml")


def load_series(src: str, *, git_tree: Optional[Path] = None,
                lore_url: Optional[str] = None) -> Series:
    """Load a series from an mbox (b4's .mbx too), `-` (an mbox on stdin), a format-patch dir,
    a quilt dir, a git range A..B, a message-id or a lore URL (its msgid, from lore_url)."""
    lore_url = lore_url or default_lore_url()
    if src == "-":
        series = build_series(_stdin_mails(), "-", "stdin")
        return series
    if src.startswith(("https://", "http://")):
        msgid = msgid_from_url(src)
        if msgid is None:
            raise BadInput(f"{src} names no message-id (expected a lore URL such as "
                           f"https://lore.kernel.org/r/<message-id>).")
        series = build_series(read_mails(fetch_thread(msgid, lore_url)), src, "lore-url")
        series.msgid = msgid
        return series
    path = Path(src).expanduser()
    if path.is_dir():
        if (path / "series").is_file():
            return build_series(_quilt_mails(path), src, "quilt")
        return build_series(_patch_dir_mails(path), src, "format-patch-dir")
    if path.exists():
        if not path.is_file():
            raise BadInput(f"{src} is not a regular file or directory.")
        mails = read_mails(path)
        cover = path.with_suffix(".cover")
        if path.suffix == ".mbx" and cover.is_file():
            # `b4 am` writes the cover letter next to the patches: X.mbx + X.cover
            mails = read_mails(cover) + mails
            for position, mail in enumerate(mails):
                mail.position = position
        return build_series(mails, src, "mbox")
    if src.startswith("-"):
        # git would read it as an option (--output-directory=/x..HEAD), not as a range
        raise BadInput(f"{src} is no file, directory, git range A..B, message-id or lore URL "
                       f"(a series source cannot start with '-', but `-` alone reads stdin).")
    if GIT_RANGE.match(src) and not src.startswith("/"):
        return _git_range(src, git_tree or Path.cwd())
    if MSGID.match(src):
        msgid = src.strip("<>")
        mbox = fetch_thread(msgid, lore_url)
        series = build_series(read_mails(mbox), src, "msgid")
        series.msgid = msgid
        return series
    raise BadInput(f"{src} is no file, directory, git range A..B, message-id, lore URL or `-`.")


_stdin_copy: Optional[Path] = None


def _stdin_mails() -> List[Mail]:
    """The mbox on standard input, read once per process (bisect and --each load it again)."""
    global _stdin_copy
    if _stdin_copy is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise BadInput("`-` reads an mbox from standard input, but standard input is a "
                           "terminal (pipe one in: `b4 am -o - MSGID | zstest ... -`).")
        data = sys.stdin.buffer.read(MAX_MBOX_BYTES + 1)
        if len(data) > MAX_MBOX_BYTES:
            raise BadInput(f"standard input holds more than {MAX_MBOX_BYTES >> 20} MiB; no patch "
                           f"series is that large.")
        if not data.strip():
            raise BadInput("standard input is empty: expected an mbox or a patch file.")
        fd, name = tempfile.mkstemp(prefix="zstest-stdin-",
                                    suffix=f"-{hashlib.sha256(data).hexdigest()[:12]}.mbox")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        _stdin_copy = Path(name)
        atexit.register(_stdin_copy.unlink, missing_ok=True)
    mails = read_mails(_stdin_copy)
    for mail in mails:
        mail.origin = "standard input"
    return mails


def _patch_dir_mails(path: Path) -> List[Mail]:
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in PATCH_SUFFIXES)
    if not files:
        raise BadInput(f"{path} holds no *.patch files and no quilt `series` file.")
    mails: List[Mail] = []
    for f in files:
        for m in read_mails(f):
            m.position = len(mails)
            mails.append(m)
    return mails


def _quilt_mails(path: Path) -> List[Mail]:
    names = []
    for line in (path / "series").read_text(errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line.split()[0])
    if not names:
        raise BadInput(f"{path}/series lists no patches.")
    mails: List[Mail] = []
    for name in names:
        f = path / name
        if not f.is_file():
            raise BadInput(f"{path}/series names {name}, which does not exist.")
        for m in read_mails(f):
            if not m.subject:
                m = plain_patch_mail(f.read_text(errors="replace"), f.name, 0, str(f))
            m.position = len(mails)
            mails.append(m)
    # quilt's order is the series file's, whatever numbers the patches carry.
    total = len(mails)
    for i, m in enumerate(mails, 1):
        prefix = parse_subject(m.subject)
        words = prefix.flags + ["PATCH"] + ([f"v{prefix.revision}"] if prefix.revision > 1 else [])
        m.subject = f"[{' '.join(words)} {i}/{total}] {prefix.title}"
    return mails


def _git_range(rev_range: str, git_tree: Path) -> Series:
    if not (git_tree / ".git").exists() and not (git_tree / "HEAD").is_file():
        raise BadInput(f"{rev_range} looks like a git range but {git_tree} is not a git tree "
                       f"(pass --git-tree DIR).")
    with tempfile.TemporaryDirectory(prefix="zstest-range-") as tmp:
        try:
            # Read-only on the user's repository: format-patch writes only into tmp.
            run_git(["-C", str(git_tree), "format-patch", "--no-signature", "-n",
                 "--subject-prefix=PATCH", "--no-cover-letter", "-o", tmp, "--end-of-options",
                 rev_range],
                timeout=300, trusted=git_tree)
        except CommandError as exc:
            raise BadInput(f"git cannot list the range {rev_range} in {git_tree}: "
                           f"{exc.tail.strip().splitlines()[-1] if exc.tail.strip() else exc}.") from None
        if not any(Path(tmp).iterdir()):
            raise BadInput(f"the range {rev_range} in {git_tree} holds no commits.")
        return build_series(_patch_dir_mails(Path(tmp)), rev_range, "git-range")
