"""A patch series' identity: KCIDB's patchset hash, over what `git apply` reads of each patch.

KCIDB defines the patchset hash as the sha256 over the newline-terminated sha256 hashes of each
patch, in order (`sha256sum *.patch | cut -c-64 | sha256sum | cut -c-64`). A posted patch
arrives wrapped in different mail headers depending on where it was fetched from (lore's thread,
b4's stored blob, a local mbox), so each patch's hash is taken over its diff alone: from the
first `diff --git` (or `--- `/`Index: `) line to the end, without the mail signature. The same
patches hash the same whatever carried them; a change to any diff changes the hash.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from typing import Iterable, Optional

_DIFF_START = re.compile(r"(?m)^(diff --git |Index: |--- )")
# git format-patch's signature ("-- \n2.39.2\n") and a list footer after it are not the patch
_SIGNATURE = re.compile(r"(?m)^-- $")


def patch_text(raw: bytes) -> str:
    """The diff of one patch mail (the part `git apply` reads), newlines normalized."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        try:
            parts.append(part.get_content())
        except (LookupError, UnicodeError, AssertionError):
            parts.append((part.get_payload(decode=True) or b"").decode("utf-8", "replace"))
    body = "\n".join(parts).replace("\r\n", "\n")
    start = _DIFF_START.search(body)
    diff = body[start.start():] if start else body
    end = _SIGNATURE.search(diff)
    diff = diff[:end.start()] if end else diff
    return diff.rstrip("\n") + "\n"


def patch_sha256(raw: bytes) -> str:
    """The sha256 (hex) of one patch mail's diff."""
    return hashlib.sha256(patch_text(raw).encode("utf-8", "surrogateescape")).hexdigest()


def patchset_hash(patch_hashes: Iterable[str]) -> str:
    """KCIDB's patchset hash over the patches' sha256s in order; "" for no patch (KCIDB: no
    patches applied)."""
    hashes = list(patch_hashes)
    if not hashes:
        return ""
    return hashlib.sha256("".join(h + "\n" for h in hashes).encode()).hexdigest()


def series_patchset_hash(patches) -> str:
    """The patchset hash of a Series' patches (zstest.series.model.Patch: .raw)."""
    return patchset_hash(patch_sha256(p.raw) for p in patches)


def recorded_patchset_hash(series: Optional[dict]) -> Optional[str]:
    """build.json's series -> its patchset hash from the per-patch sha256 recorded at build
    time; None when a patch has none (a build.json older than the record)."""
    if not isinstance(series, dict):
        return None
    patches = series.get("patches") or []
    hashes = [p.get("sha256") for p in patches if isinstance(p, dict)]
    if len(hashes) != len(patches) or not all(isinstance(h, str) and len(h) == 64
                                              for h in hashes):
        return None
    return patchset_hash(hashes)
