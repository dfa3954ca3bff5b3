"""The target a kernel is built for and booted as: one arch record and one page size, resolved once.

Every form the target takes is made and read here: the `--arch/--page-size` options
(from_options, argv), build.json's `arch: {name, page_size}` (from_manifest), the matrix's
"arm64:64k" cell value (parse, cell_name), what people read (label) and the suffix of the cache
names (cache_suffix, arch_cache_suffix: x86_64, the default, keeps the names it had before there
were arches). Stages take a Target instead of an arch name and look nothing up again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Tuple

from .arch import DEFAULT_ARCH, ArchSpec, arch_spec, known_arches
from .errors import BadInput

if TYPE_CHECKING:
    from .manifests import BuildManifest


@dataclass(frozen=True)
class Target:
    arch: ArchSpec
    page_size: int                  # bytes; one the arch offers

    # -- resolving

    @classmethod
    def from_options(cls, arch: Optional[str] = None,
                     page_size: "str | int | None" = None) -> "Target":
        """--arch NAME (None: the default arch) and --page-size ("64k", "65536"; None: the
        arch's own); BadInput naming the choices for an unknown arch or page size."""
        spec = arch_spec(arch or DEFAULT_ARCH)
        _, size = spec.page_size_config(None if page_size is None else str(page_size))
        return cls(spec, size)

    @classmethod
    def from_manifest(cls, manifest: "BuildManifest") -> "Target":
        """The target a build.json says its kernel was built for."""
        return cls.from_options(manifest.arch, manifest.page_size)

    @classmethod
    def parse(cls, text: str, source: str = "the arch") -> "Target":
        """"arm64", "arm64:64k" (a matrix cell's arch value); BadInput naming the known ones."""
        name, _, page = str(text).strip().partition(":")
        if name not in known_arches():
            raise BadInput(f"{source}: arch {text!r} is not one of {', '.join(known_arches())} "
                           f"(optionally with :PAGESIZE, e.g. arm64:64k).")
        return cls.from_options(name, page or None)

    @classmethod
    def default(cls) -> "Target":
        """What a command builds for without --arch: the default arch at its own page size."""
        return cls.from_options()

    # -- reading

    @property
    def name(self) -> str:
        return self.arch.name

    @property
    def page_size_name(self) -> str:
        """"4k", "64k": the --page-size word of this page size."""
        return f"{self.page_size // 1024}k"

    @property
    def default_page_size(self) -> bool:
        return self.page_size == self.arch.page_size

    @property
    def is_default(self) -> bool:
        return self.arch.name == DEFAULT_ARCH and self.default_page_size

    @property
    def label(self) -> str:
        """"x86_64", "arm64", "arm64 64K": what people read."""
        return self.name if self.default_page_size else f"{self.name} {self.page_size // 1024}K"

    @property
    def cache_suffix(self) -> str:
        """"", "arm64", "arm64-64k": what names a cache entry that depends on the kernel (the
        object dir). The default target's is empty: its caches keep their pre-arch names."""
        if self.is_default:
            return ""
        return self.name if self.default_page_size else f"{self.name}-{self.page_size_name}"

    @property
    def arch_cache_suffix(self) -> str:
        """"", "arm64": the same for caches of the arch alone (guest tools, images, the KVM
        verdict): the userland and QEMU do not depend on the kernel's page size."""
        return "" if self.arch.name == DEFAULT_ARCH else self.name

    def argv(self) -> List[str]:
        """The command-line words that select this target; none for the default's parts."""
        words = [] if self.arch.name == DEFAULT_ARCH else ["--arch", self.name]
        return words + ([] if self.default_page_size else ["--page-size", self.page_size_name])

    def cell_name(self) -> str:
        """"arm64", "arm64:64k": the matrix's arch value (parse reads it back)."""
        return self.name if self.default_page_size else f"{self.name}:{self.page_size_name}"

    def page_size_config(self) -> Tuple[List[Tuple[str, str]], int]:
        """([(SYMBOL, y|n)...], bytes): the Kconfig choice of this page size."""
        return self.arch.page_size_config(self.page_size_name)

    def to_json(self) -> dict:
        """build.json's arch object."""
        return {"name": self.name, "page_size": self.page_size}
