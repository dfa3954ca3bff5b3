"""Small static C helpers for the guest: compiled on the host, shipped in the image.

zsfill writes/verifies the deterministic data mix on a file or block device;
memtouch fills anonymous memory with it and verifies every page after swap-in.
Sources live in zstest/suites/guest/; binaries are cached by arch and source hash under
cache_dir("guest-tools"), so a rebuild happens only when a source changes. A foreign arch's
tools are built by its cross compiler (aarch64-linux-gnu-gcc) against its static libc.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from . import resources
from .arch import DEFAULT_ARCH, ArchSpec, arch_spec
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


def sources_digest(arch: Optional[ArchSpec] = None) -> str:
    """Hash of every source and header, the compiler and its flags: the cache key."""
    arch = arch or arch_spec()
    h = hashlib.sha256(" ".join([arch.compiler] + CFLAGS).encode())
    for path in sorted(GUEST_SOURCES.glob("*.[ch]")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_guest_tools(arch: Optional[ArchSpec] = None) -> Dict[str, Path]:
    """Compile the guest helpers for arch (or reuse them); guest path -> host file."""
    arch = arch or arch_spec()
    gcc = which(arch.compiler)
    if not gcc:
        raise PrereqMissing(f"{arch.compiler} is missing; it compiles zstest's guest helpers "
                            f"for {arch.name} (apt-get install {arch.compiler_package}).")
    digest = sources_digest(arch)
    # x86_64's keep the cache path they had before there were arches
    out_dir = cache_dir("guest-tools", digest if arch.name == DEFAULT_ARCH
                        else f"{arch.name}-{digest}")
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
                        f"could not compile the guest helper {tool.source} with "
                        f"`{arch.compiler} -static` (is {arch.static_libc_package} "
                        f"installed?): {exc.tail}") from None
                tmp.replace(binary)
            result[tool.guest_path] = binary
    return result
