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
from typing import Dict, List

from . import resources
from .arch import ArchSpec
from .cache import cache_dir, file_lock
from .errors import PrereqMissing
from .proc import CommandError, run, which
from .target import Target

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


def sources_digest(arch: "ArchSpec | Target") -> str:
    """Hash of every source and header, the compiler and its flags: the cache key."""
    arch = _arch_of(arch)
    h = hashlib.sha256(" ".join([arch.compiler] + CFLAGS).encode())
    for path in sorted(GUEST_SOURCES.glob("*.[ch]")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _arch_of(arch: "ArchSpec | Target") -> ArchSpec:
    # the tools depend on the arch alone: a Target's page size changes nothing here
    return arch.arch if isinstance(arch, Target) else arch


def build_guest_tools(arch: "ArchSpec | Target") -> Dict[str, Path]:
    """Compile the guest helpers for arch (or reuse them); guest path -> host file."""
    arch = _arch_of(arch)
    gcc = which(arch.compiler)
    if not gcc:
        raise PrereqMissing(f"{arch.compiler} is missing; it compiles zstest's guest helpers "
                            f"for {arch.name} (apt-get install {arch.compiler_package}).")
    digest = sources_digest(arch)
    suffix = Target.from_options(arch.name).arch_cache_suffix
    out_dir = cache_dir("guest-tools", f"{suffix}-{digest}" if suffix else digest)
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
