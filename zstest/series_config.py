"""Series-aware config and build coverage: was the series' own code compiled at all?

A green run means nothing when the series' code was never built: a new Kconfig option that
defaults to n, or a file behind an option the profile leaves off. From the series' diffs:

- `series_symbols`: the Kconfig symbols the series adds or changes, and the symbols that
  guard each C file it touches (the `obj-$(CONFIG_X) += file.o` lines of the file's Makefile,
  through composite objects and parent directories). `fragment_text` turns them into a config
  fragment the build applies on top of its profiles (each option `# optional`: a symbol the
  tree does not have yet is ignored, one olddefconfig drops is reported with its reason).
- `build_coverage`: after the build, for every file the series touches: a C file was built
  when its object is in the objdir and not older than the source; a header, when built
  objects depend on it (the kbuild `.cmd` dependency files); otherwise why not (the guard
  symbol that is off, with its unmet dependencies).

Pure functions over text and files; the build stage calls them (zstest/build.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from .kconfig import kconfig_symbols, unmet_symbols
from .series.diff import parse_file_diffs

CODE_SUFFIXES = (".c", ".S")
HEADER_SUFFIXES = (".h",)
_CONFIG_LINE = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$")
_TYPE_LINE = re.compile(r"^\s*(bool|tristate|def_bool|def_tristate|int|hex|string)\b")
# "obj-$(CONFIG_ZRAM) += zram.o", "zram-y := zcomp.o", "zram-$(CONFIG_X) += backend_x.o"
_MAKE_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_.-]+(?:\$\(CONFIG_[A-Za-z0-9_]+\))?[A-Za-z0-9_-]*)"
                          r"\s*[:+?]?=\s*(.*)$")
_CONFIG_REF = re.compile(r"\$\(CONFIG_([A-Za-z0-9_]+)\)")


@dataclass
class SeriesSymbol:
    name: str
    why: str                  # "added by patch 2", "guards drivers/block/zram/backend_x.c"
    patch: int | None = None


@dataclass
class TouchedFile:
    path: str
    patches: list[int] = field(default_factory=list)
    added: bool = False       # created by the series
    deleted: bool = False     # removed by the series


@dataclass
class FileCoverage:
    file: str
    kind: str                 # code / header / other
    built: bool | None        # None: not compiled code (Kconfig, Makefile, docs)
    objects: list[str] = field(default_factory=list)
    why: str = ""             # why not built, or a note

    def to_json(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- reading the series' diffs

def _patch_text(patch) -> str:
    raw = getattr(patch, "raw", b"") or b""
    return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)


def touched_files(patches: Iterable) -> list[TouchedFile]:
    """Every file the series changes, in first-touched order, with the patches touching it."""
    found: dict[str, TouchedFile] = {}
    for patch in patches:
        for diff in parse_file_diffs(_patch_text(patch)):
            entry = found.setdefault(diff.path, TouchedFile(diff.path))
            if patch.index not in entry.patches:
                entry.patches.append(patch.index)
            entry.added = entry.added or diff.new_file or diff.old_path is None
            entry.deleted = entry.deleted or diff.deleted_file or diff.new_path is None
            if diff.renamed and diff.old_path:
                found.setdefault(diff.old_path, TouchedFile(diff.old_path, [patch.index])).deleted = True
    return list(found.values())


def kconfig_changes(patches: Iterable) -> list[SeriesSymbol]:
    """Kconfig symbols a series adds, or whose entry it changes (hunks in Kconfig files)."""
    out: dict[str, SeriesSymbol] = {}
    for patch in patches:
        for diff in parse_file_diffs(_patch_text(patch)):
            if not PurePosixPath(diff.path).name.startswith("Kconfig"):
                continue
            for hunk in diff.hunks:
                # git names the enclosing entry after the @@ (its funcname is the last line
                # starting with a letter: "config FOO" inside a Kconfig file)
                ctx = _CONFIG_LINE.match(hunk.context)
                current = ctx.group(1) if ctx else None
                for line in hunk.body:
                    body = line[1:]
                    cfg = _CONFIG_LINE.match(body)
                    if cfg:
                        current = cfg.group(1)
                        if line.startswith("+") and current not in out:
                            out[current] = SeriesSymbol(current, f"added by patch {patch.index} "
                                                                 f"({diff.path})", patch.index)
                        continue
                    if line[:1] in ("+", "-") and body.strip() and current and current not in out:
                        out[current] = SeriesSymbol(current, f"changed by patch {patch.index} "
                                                             f"({diff.path})", patch.index)
    return list(out.values())


# ---------------------------------------------------------------- Makefiles: what guards a file

def _makefile_lines(directory: Path) -> list[str]:
    for name in ("Kbuild", "Makefile"):
        path = directory / name
        if path.is_file():
            text = path.read_text(errors="replace")
            return text.replace("\\\n", " ").splitlines()
    return []


def guard_symbols(srctree: Path, relpath: str, max_depth: int = 12) -> list[str] | None:
    """The CONFIG symbols that must be on for relpath (a .c/.S file) to be compiled.

    Follows `obj-$(CONFIG_X) += x.o`, composite objects (`foo-y := x.o` then
    `obj-$(CONFIG_FOO) += foo.o`) and parent directories (`obj-$(CONFIG_Y) += dir/`). [] when
    it is always built; None when no Makefile rule names it (zstest cannot tell).
    """
    rel = PurePosixPath(relpath)
    directory = rel.parent
    target = rel.stem + ".o"
    guards: list[str] = []
    for _ in range(max_depth):
        if str(directory) in (".", ""):
            return guards     # the top Makefile/Kbuild names the top-level dirs
        found = None
        for line in _makefile_lines(srctree / directory):
            m = _MAKE_ASSIGN.match(line.split("#", 1)[0])
            if m and target in m.group(2).split():
                found = m.group(1)
                break
        if found is None:
            # a directory named some other way (arch Makefiles' core-y...): what we have
            return guards if target.endswith("/") else None
        guards += [g for g in _CONFIG_REF.findall(found) if g not in guards]
        if found.startswith(("obj-", "lib-")):
            # linked in when its directory is reached: climb one level
            target = directory.name + "/"
            directory = directory.parent
            continue
        # a composite object: foo-y / foo-objs / foo-$(CONFIG_X) -> foo.o in the same dir
        composite = re.sub(r"-(y|objs|\$\(CONFIG_[A-Za-z0-9_]+\))$", "", found)
        if composite == found or not composite:
            return None
        target = composite + ".o"
    return guards


def _symbol_types(srctree: Path, names: Iterable[str]) -> dict[str, str]:
    """bool / tristate / int / ... of each symbol, from its definition in the tree."""
    types: dict[str, str] = {}
    for name, sym in kconfig_symbols(srctree, list(names)).items():
        file, _, line = sym.where.rpartition(":")
        try:
            lines = (srctree / file).read_text(errors="replace").splitlines()
        except OSError:
            continue
        for text in lines[int(line):int(line) + 12]:
            m = _TYPE_LINE.match(text)
            if m:
                types[name] = m.group(1).replace("def_", "")
                break
            if _CONFIG_LINE.match(text):
                break
    return types


def series_symbols(patches: list, srctree: Path) -> list[SeriesSymbol]:
    """The bool/tristate symbols the series adds or changes, and those guarding its C files,
    as the tree (after the patches applied so far) defines them."""
    symbols: dict[str, SeriesSymbol] = {}
    for sym in kconfig_changes(patches):
        symbols.setdefault(sym.name, sym)
    for touched in touched_files(patches):
        if touched.deleted or not touched.path.endswith(CODE_SUFFIXES):
            continue
        if not (srctree / touched.path).is_file():
            continue     # a later patch adds it: the build after that patch asks again
        for name in guard_symbols(srctree, touched.path) or []:
            symbols.setdefault(name, SeriesSymbol(name, f"guards {touched.path}",
                                                  touched.patches[0]))
    types = _symbol_types(srctree, symbols)
    return [s for s in symbols.values() if types.get(s.name) in ("bool", "tristate")]


def fragment_text(symbols: list[SeriesSymbol]) -> str:
    """A config fragment that turns the symbols on (each optional: it may not exist yet)."""
    lines = ["# zstest: what the series needs to be compiled (--no-series-config turns this off)"]
    lines += [f"CONFIG_{s.name}=y  # optional: {s.why}" for s in symbols]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- after the build

def _dependency_index(objdir: Path) -> dict[str, list[str]]:
    """objdir-relative object -> the dependency lines of its kbuild .cmd file."""
    index: dict[str, list[str]] = {}
    for root, dirs, files in os.walk(objdir):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("include", "scripts")]
        for name in files:
            if name.startswith(".") and name.endswith(".o.cmd"):
                path = Path(root) / name
                obj = (Path(root) / name[1:-4]).relative_to(objdir)
                try:
                    text = path.read_text(errors="replace")
                except OSError:
                    continue
                index[str(obj)] = [ln.strip().rstrip("\\").strip() for ln in text.splitlines()]
    return index


def _why_off(srctree: Path, guards: list[str], final: dict[str, str]) -> str:
    """The first guard symbol that is off, with what holds it back."""
    off = [g for g in guards if final.get(g, "n") not in ("y", "m")]
    if not off:
        return ""
    name = off[0]
    sym = kconfig_symbols(srctree, [name]).get(name)
    if sym is None:
        return f"CONFIG_{name} does not exist in this tree"
    unmet = [u for dep in sym.depends_on for u in unmet_symbols(dep, final)]
    held = f" (its dependencies are not met: {', '.join(unmet)})" if unmet else ""
    return f"CONFIG_{name} is not set{held}"


def build_coverage(patches: list, srctree: Path, objdir: Path,
                   final: dict[str, str]) -> list[FileCoverage]:
    """For every file the series touches: was it compiled in this build, and if not, why."""
    out: list[FileCoverage] = []
    deps: dict[str, list[str]] | None = None
    for touched in touched_files(patches):
        path = touched.path
        source = srctree / path
        if touched.deleted or not source.is_file():
            continue
        if path.endswith(CODE_SUFFIXES):
            obj = Path(path).with_suffix(".o")
            cmd = objdir / obj.parent / f".{obj.name}.cmd"
            built_obj = objdir / obj
            built = (built_obj.is_file() and cmd.is_file()
                     and built_obj.stat().st_mtime >= source.stat().st_mtime)
            why = ""
            if not built:
                guards = guard_symbols(srctree, path)
                if guards is None:
                    why = f"no Makefile rule names {obj.name}"
                else:
                    why = _why_off(srctree, guards, final) or \
                        "its object is missing or older than the source (the build stopped?)"
            out.append(FileCoverage(path, "code", built, [str(obj)] if built else [], why))
        elif path.endswith(HEADER_SUFFIXES):
            if deps is None:
                deps = _dependency_index(objdir)
            suffix = "/" + path
            users = sorted(o for o, lines in deps.items()
                           if any(ln == path or ln.endswith(suffix) for ln in lines))
            why = "" if users else "no object of this build includes it"
            out.append(FileCoverage(path, "header", bool(users), users[:20],
                                    why if not users else f"{len(users)} objects include it"))
        else:
            out.append(FileCoverage(path, "other", None, [], "not compiled code"))
    return out


def coverage_summary(coverage: list[FileCoverage]) -> list[str]:
    """One line per touched code file or header, for the build's output and summary."""
    lines = []
    for c in coverage:
        if c.built is None:
            continue
        if c.built:
            what = "built" if c.kind == "code" else f"built ({c.why})"
        else:
            what = f"NOT built: {c.why}"
        lines.append(f"{c.file}: {what}")
    return lines
