"""Where zstest's own data lives: one reader for every file the tool needs at run time.

In a checkout, zstest/_data/{kmod,qemu-images,kernel-patches} are symlinks to the top-level
directories (the project layout keeps them there); a wheel carries copies of them as package
data. Either way importlib.resources finds them next to the code, from any directory.
"""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from pathlib import Path

from .errors import PrereqMissing

# name -> location inside the zstest package
_RESOURCES = {
    "kmod": ("_data", "kmod"),                       # the zsmalloc torture module's sources
    "qemu-images": ("_data", "qemu-images"),         # guest image recipes
    "kernel-patches": ("_data", "kernel-patches"),   # series manifests and fixtures
    "configs": ("configs",),                         # kconfig profiles
    "arches": ("arches",),                           # architecture records (arch.py)
    "suites": ("suites",),                           # suites.ini and the guest tests
    "guest-sources": ("suites", "guest"),            # zsfill.c, memtouch.c
}
_extracted = contextlib.ExitStack()
atexit.register(_extracted.close)


def names() -> list:
    return sorted(_RESOURCES)


def path(name: str) -> Path:
    """A real directory for resource `name` (make, cp and glob need one)."""
    traversable = resources.files("zstest").joinpath(*_RESOURCES[name])
    if isinstance(traversable, Path):
        # In a checkout: the top-level directory itself, not the symlink's spelling.
        found = traversable.resolve()
    else:
        # A zip import: extract once for this process.
        found = Path(_extracted.enter_context(resources.as_file(traversable)))
    if not found.is_dir():
        raise PrereqMissing(f"zstest's {name}/ is missing from the installation ({found}); "
                            f"reinstall zstest.")
    return found


def kmod_dir() -> Path:
    return path("kmod")


def images_dir() -> Path:
    return path("qemu-images")


def kernel_patches_dir() -> Path:
    return path("kernel-patches")


def configs_dir() -> Path:
    return path("configs")


def arches_dir() -> Path:
    return path("arches")


def suites_dir() -> Path:
    return path("suites")


def guest_sources_dir() -> Path:
    return path("guest-sources")
