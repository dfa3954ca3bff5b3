"""The toolchain record: which compiler builds the kernel, as data (zstest/toolchains.toml).

`--toolchain NAME` is resolved once by resolve() into a frozen Toolchain; the build stage asks
it for the make variables (CC with ccache in front, LLVM=-16), checks that its programs are
installed for the target (exit 6 with the apt line) and records in build.json the compiler that
really built the kernel: CONFIG_CC_VERSION_TEXT of the built .config. A toolchain other than
the default gets object dirs of its own (cache_suffix): a clang objdir is never reused by gcc.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Dict, List, Mapping, Optional, Tuple

from .errors import BadInput, PrereqMissing
from .proc import CommandError, run, which
from .target import Target

DEFAULT_TOOLCHAIN = "gcc-12"     # Debian 12's gcc
RECORDS = "toolchains.toml"
FAMILIES = ("gcc", "clang")


@dataclass(frozen=True)
class Toolchain:
    name: str
    family: str                     # gcc / clang
    cc: str                         # the compiler's command (without the cross prefix)
    ld: str                         # the linker's command (likewise)
    cross_prefix: bool              # the arch's CROSS_COMPILE goes in front of cc and ld
    make_vars: Tuple[str, ...]      # VAR=VALUE for every make call, e.g. LLVM=-16
    packages: Mapping[str, Tuple[str, ...]]   # arch name -> Debian packages; its arches

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_TOOLCHAIN

    @property
    def cache_suffix(self) -> str:
        """"" for the default (its object dirs keep their names), else the record's name."""
        return "" if self.is_default else self.name

    def _prefixed(self, command: str, target: Target) -> str:
        return f"{target.arch.cross_compile}{command}" if self.cross_prefix else command

    def compiler(self, target: Target) -> str:
        """"aarch64-linux-gnu-gcc-11", "clang-16": the C compiler's command for target."""
        return self._prefixed(self.cc, target)

    def linker(self, target: Target) -> str:
        return self._prefixed(self.ld, target)

    def make_args(self, target: Target) -> List[str]:
        """CC (ccache in front: every build shares its cache) and the record's variables."""
        return [f"CC=ccache {self.compiler(target)}", *self.make_vars]

    def apt_packages(self, target: Target) -> Tuple[str, ...]:
        """The Debian packages it needs for target; BadInput when it cannot build for it."""
        if target.name not in self.packages:
            raise BadInput(f"--toolchain {self.name} does not build {target.name} kernels; it "
                           f"builds {', '.join(sorted(self.packages))}.")
        return self.packages[target.name]

    def check_installed(self, target: Target) -> None:
        """PrereqMissing (exit 6) with the apt line when its compiler or linker is missing."""
        packages = self.apt_packages(target)
        missing = [c for c in (self.compiler(target), self.linker(target)) if not which(c)]
        if missing:
            raise PrereqMissing(f"{missing[0]} is missing; --toolchain {self.name} builds "
                                f"{target.name} kernels with it (apt-get install "
                                f"{' '.join(packages)}).")

    def record(self, target: Target, config: Optional[Mapping[str, str]] = None) -> dict:
        """build.json's toolchain object: the name, the compiler's command and the version of
        the compiler that really built the kernel (the built .config's CC_VERSION_TEXT; None
        until there is one), plus the first --version line of each tool, the compiler's
        under its family's name ("gcc": the key build.json had before toolchains)."""
        return {"name": self.name, "cc": self.compiler(target),
                "version": cc_version_text(config) if config is not None else None,
                self.family: _first_line([self.compiler(target), "--version"]),
                "ld": _first_line([self.linker(target), "--version"]),
                "make": _first_line(["make", "--version"]),
                "ccache": _first_line(["ccache", "--version"])}


def cc_version_text(config: Mapping[str, str]) -> Optional[str]:
    """CONFIG_CC_VERSION_TEXT of a .config read by kconfig.read_config, unquoted; None when
    absent (kernels before 5.8 do not record it)."""
    text = config.get("CC_VERSION_TEXT")
    if text is None:
        return None
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text or None


def _first_line(argv: List[str]) -> Optional[str]:
    try:
        res = run(argv, timeout=30, check=False)
    except CommandError:
        return None
    text = (res.stdout or res.stderr).strip().splitlines()
    return text[0] if text else None


def known_toolchains() -> List[str]:
    return sorted(_records())


def resolve(name: Optional[str] = None) -> Toolchain:
    """--toolchain NAME (None: the default) -> its record; BadInput (exit 2) naming the known
    ones for another name."""
    name = DEFAULT_TOOLCHAIN if name is None else str(name).strip()
    records = _records()
    if name not in records:
        raise BadInput(f"unknown toolchain {name!r}; known: {', '.join(sorted(records))}.")
    return records[name]


_KINDS = {"family": str, "cc": str, "ld": str, "cross_prefix": bool, "make_vars": list,
          "packages": dict}


@functools.cache
def _records() -> Dict[str, Toolchain]:
    text = resources.files("zstest").joinpath(RECORDS).read_text()
    return read_records(text, RECORDS)


def read_records(text: str, source: str) -> Dict[str, Toolchain]:
    """toolchains.toml: every record with every field of its type, nothing else."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{source} is not valid TOML ({exc}); reinstall zstest.") from None
    out = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise BadInput(f"{source}: {name!r} is not a table; reinstall zstest.")
        out[name] = _record(name, table, source)
    if DEFAULT_TOOLCHAIN not in out:
        raise BadInput(f"{source} has no {DEFAULT_TOOLCHAIN} record; reinstall zstest.")
    return out


def _record(name: str, table: dict, source: str) -> Toolchain:
    where = f"{source}: [{name}]"
    unknown = sorted(set(table) - set(_KINDS))
    if unknown:
        raise BadInput(f"{where} has the unknown field {unknown[0]!r}; reinstall zstest.")
    for key, kind in _KINDS.items():
        if not isinstance(table.get(key), kind):
            raise BadInput(f"{where}: field {key!r} is missing or not {kind.__name__}; "
                           f"reinstall zstest.")
    if table["family"] not in FAMILIES:
        raise BadInput(f"{where}: family {table['family']!r} is not one of "
                       f"{', '.join(FAMILIES)}; reinstall zstest.")
    packages = table["packages"]
    words = list(table["make_vars"]) + [p for v in packages.values()
                                        for p in (v if isinstance(v, list) else [None])]
    if not packages or not all(isinstance(w, str) and w for w in words) \
            or not all(isinstance(v, list) and v for v in packages.values()):
        raise BadInput(f"{where}: make_vars and packages hold names (packages: arch = [...], "
                       f"at least one); reinstall zstest.")
    from .arch import known_arches
    strange = sorted(set(packages) - set(known_arches()))
    if strange:
        raise BadInput(f"{where}: packages names the unknown arch {strange[0]!r}; "
                       f"reinstall zstest.")
    return Toolchain(**dict(table, name=name, make_vars=tuple(table["make_vars"]),
                            packages={arch: tuple(v) for arch, v in packages.items()}))
