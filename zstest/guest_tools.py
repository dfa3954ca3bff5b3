"""Small static C helpers for the guest: compiled on the host, shipped in the image.

zsfill writes/verifies the deterministic data mix on a file or block device;
memtouch fills anonymous memory with it and verifies every page after swap-in.
Sources live in zstest/suites/guest/; binaries are cached by source hash under
cache_dir("guest-tools"), so a rebuild happens only when a source changes.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from . import resources
from .cache import cache_dir, file_lock
from .errors import PrereqMissing
from .proc import CommandError, run, which

GUEST_SOURCES = resources.guest_sources_dir()
CFLAGS = ["-static", "-O2", "-Wall"]


@dataclass(frozen=True)
class GuestTool:
    name: str            # the binary's name
    source: str          # the .c file in GUEST_SOURCES
    guest_path: str      # where it goes in the guest


GUEST_TOOLS: List[GuestTool] = [
    GuestTool("zsfill", "zsfill.c", "/usr/bin/zsfill"),
    GuestTool("memtouch", "memtouch.c", "/usr/bin/memtouch"),
]


def sources_digest() -> str:
    """Hash of every source and header and of the compiler flags: the cache key."""
    h = hashlib.sha256(" ".join(CFLAGS).encode())
    for path in sorted(GUEST_SOURCES.glob("*.[ch]")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_guest_tools() -> Dict[str, Path]:
    """Compile the guest helpers (or reuse them); guest path -> host file."""
    gcc = which("gcc")
    if not gcc:
        raise PrereqMissing("gcc is missing; it compiles zstest's guest helpers "
                            "(apt-get install gcc).")
    out_dir = cache_dir("guest-tools", sources_digest())
    result: Dict[str, Path] = {}
    with file_lock(cache_dir("guest-tools") / "build.lock"):
        for tool in GUEST_TOOLS:
            binary = out_dir / tool.name
            if not binary.is_file():
                tmp = out_dir / f".{tool.name}.{os.getpid()}"
                try:
                    run([gcc, *CFLAGS, "-o", str(tmp), str(GUEST_SOURCES / tool.source)],
                        timeout=120)
                except CommandError as exc:
                    raise PrereqMissing(
                        f"could not compile the guest helper {tool.source} with `gcc -static` "
                        f"(is libc6-dev installed?): {exc.tail}") from None
                tmp.replace(binary)
            result[tool.guest_path] = binary
    return result
