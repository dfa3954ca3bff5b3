"""The Decoder: splats against one build directory (build.json, vmlinux, System.map, the .ko
files): frames located by the bug table, debug info or the function's definition, then
attributed to patches (git.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import BadInput
from ..fsutil import artifact_file, read_bounded, read_gzip_bounded
from ..manifests import Artifacts, BuildKernel, BuildManifest, PatchRecord, has_build, load_build
from ..proc import CommandError, run
from .git import GitSide
from .symbols import (Decoded, Frame, _base_name, find_definition, object_map_text,
                      parse_addr2line, parse_frames, parse_object_map,
                      parse_readelf_symbols, parse_section_names, parse_system_map)

log = logging.getLogger("zstest.decode")

TOOL_TIMEOUT_S = 60
MAX_SYSTEM_MAP_BYTES = 256 << 20     # a 6.x allyesconfig's is ~15 MB
MAX_OBJECT_MAP_BYTES = 64 << 20     # a 6.1 base build's is ~0.7 MB inflated
MAX_SOURCE_BYTES = 8 << 20           # mm/page_alloc.c is ~300 KB
SOURCE_SUFFIXES = (".c", ".h", ".S")


class Decoder(GitSide):
    """Decodes splats against one build directory; caches what it reads from it."""

    def __init__(self, build_dir: Optional[Path]):
        self.build_dir = Path(build_dir).expanduser() if build_dir else None
        self.manifest: Optional[BuildManifest] = None
        self.notes: List[str] = []
        self._symtabs: Dict[str, Any] = {}
        self._debuginfo: Dict[str, bool] = {}
        self._blobs: Dict[Tuple[str, str], Optional[str]] = {}
        self._objmap: Optional[Dict[str, List[str]]] = None
        self._vmlinux_files: Optional[Dict[int, str]] = None
        self.git_dir: Optional[str] = None
        self.commit: Optional[str] = None
        self.base: Optional[str] = None
        self.patch_of_commit: Dict[str, PatchRecord] = {}
        self.touched: Optional[set] = None
        if self.build_dir is None:
            self.notes.append("no build directory: only the WARNING/BUG line's own file:line")
            return
        if not has_build(self.build_dir):
            self.notes.append(f"no readable build.json in {self.build_dir} (FileNotFoundError)")
        else:
            try:
                self.manifest = load_build(self.build_dir)
            except BadInput as exc:
                self.notes.append(f"{exc.message.rstrip('.')}: not used")
        for key in ("vmlinux", "System.map"):
            self._artifact(key, key)        # a name outside the build dir: noted once, here
        self._setup_git()


    # -- artifacts

    def _artifact(self, key: str, default: str) -> Optional[Path]:
        if self.build_dir is None:
            return None
        arts = self.manifest.artifacts if self.manifest else Artifacts()
        name = {"vmlinux": arts.vmlinux, "System.map": arts.system_map}[key] or default
        # build.json is an artifact: only a regular file inside the build dir is read
        path = artifact_file(self.build_dir, name)
        note = (f"build.json's {key} {str(name)[:80]!r} is not a file inside {self.build_dir}: "
                f"not read")
        if path is None and name != default and note not in self.notes:
            self.notes.append(note)
        return path

    def _module_file(self, module: str) -> Optional[Path]:
        if self.build_dir is None:
            return None
        names = {f"{module}.ko", f"{module.replace('_', '-')}.ko", f"{module.replace('-', '_')}.ko"}
        for name in names:
            if (self.build_dir / name).is_file():
                return self.build_dir / name
        for root in (self.build_dir / "modules", self.build_dir / "kmod-build"):
            if root.is_dir():
                for path in root.rglob("*.ko"):
                    if path.name in names:
                        return path
        return None

    def _has_debuginfo(self, elf: Path) -> bool:
        key = str(elf)
        if key not in self._debuginfo:
            try:
                out = run(["readelf", "-SW", str(elf)], timeout=TOOL_TIMEOUT_S).stdout
                self._debuginfo[key] = ".debug_line" in out and ".debug_info" in out
            except CommandError as exc:
                log.info("decode: %s", exc)
                self._debuginfo[key] = False
        return self._debuginfo[key]

    def _vmlinux_symbols(self) -> Optional[Dict[str, List[Tuple[int, int]]]]:
        if "vmlinux" not in self._symtabs:
            table = None
            smap = self._artifact("System.map", "System.map")
            text = read_bounded(smap, MAX_SYSTEM_MAP_BYTES) if smap is not None else None
            if smap is not None and text is None:
                self.notes.append(f"{smap} is larger than {MAX_SYSTEM_MAP_BYTES >> 20} MiB: "
                                  f"not read")
            if text is not None:
                table = parse_system_map(text)
            else:
                vmlinux = self._artifact("vmlinux", "vmlinux")
                if vmlinux is not None:
                    try:
                        out = run(["nm", "-n", str(vmlinux)], timeout=TOOL_TIMEOUT_S).stdout
                        table = parse_system_map(out)
                    except CommandError as exc:
                        log.info("decode: %s", exc)
            self._symtabs["vmlinux"] = table
        return self._symtabs["vmlinux"]

    def _module_symbols(self, ko: Path) -> Optional[Tuple[List[Dict[str, Any]], Dict[int, str]]]:
        key = str(ko)
        if key not in self._symtabs:
            try:
                syms = parse_readelf_symbols(run(["readelf", "-sW", key], timeout=TOOL_TIMEOUT_S).stdout)
                sections = parse_section_names(run(["readelf", "-SW", key], timeout=TOOL_TIMEOUT_S).stdout)
                self._symtabs[key] = (syms, sections)
            except CommandError as exc:
                log.info("decode: %s", exc)
                self._symtabs[key] = None
        return self._symtabs[key]

    def _vmlinux_file_of(self, address: int) -> Optional[str]:
        """The source basename a local vmlinux symbol came from (its FILE symbol)."""
        if self._vmlinux_files is None:
            self._vmlinux_files = {}
            vmlinux = self._artifact("vmlinux", "vmlinux")
            if vmlinux is not None:
                try:
                    syms = parse_readelf_symbols(
                        run(["readelf", "-sW", str(vmlinux)], timeout=TOOL_TIMEOUT_S).stdout)
                    self._vmlinux_files = {s["value"]: s["file"] for s in syms if s["file"]}
                except CommandError as exc:
                    log.info("decode: %s", exc)
        return self._vmlinux_files.get(address)

    def _object_map(self) -> Dict[str, List[str]]:
        """symbol -> source paths (tree-relative, without suffix) of the objects defining it."""
        if self._objmap is None:
            self._objmap = {}
            name = self.manifest.artifacts.objects if self.manifest else None
            path = artifact_file(self.build_dir, name) if name and self.build_dir else None
            if path is not None:
                text = read_gzip_bounded(path, MAX_OBJECT_MAP_BYTES)
                if text is None:
                    self.notes.append(f"{path.name} is unreadable or larger than "
                                      f"{MAX_OBJECT_MAP_BYTES >> 20} MiB: not read")
                else:
                    self._objmap = parse_object_map(text)
                return self._objmap
            # a build made before objects.map.gz: the shared objdir, as a later build left it
            objdir = self.manifest.objdir if self.manifest else None
            archive = Path(objdir) / "vmlinux.a" if objdir else None
            if archive is not None and archive.is_file():
                try:
                    out = run(["nm", "-A", "--defined-only", str(archive)], timeout=TOOL_TIMEOUT_S).stdout
                except CommandError as exc:
                    log.info("decode: %s", exc)
                    out = ""
                self._objmap = parse_object_map(object_map_text(out, str(objdir)))
        return self._objmap

    # -- frames

    def decode(self, splat: Dict[str, Any]) -> Decoded:
        decoded = Decoded(kind=str(splat.get("kind", "")), title=str(splat.get("title", "")),
                          build_dir=str(self.build_dir) if self.build_dir else None,
                          commit=self.commit, notes=list(self.notes))
        decoded.frames = parse_frames(str(splat.get("text", "")))
        if not decoded.frames:
            decoded.notes.append("no trace in this splat")
            return decoded
        try:
            self._resolve(decoded)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # odd artifacts (an unreadable map, a hand-edited build.json) cost the lines, not the run
            log.warning("decode: stopped resolving %r: %s", decoded.title, exc)
            decoded.notes.append(f"decoding stopped early: {exc.__class__.__name__}: {exc}")
        # what reading the build's artifacts noted on the way (read once, on first need)
        decoded.notes += [n for n in self.notes if n not in decoded.notes]
        return decoded

    def _resolve(self, decoded: Decoded) -> None:
        vmlinux = self._artifact("vmlinux", "vmlinux")
        if self.build_dir is not None and vmlinux is None:
            decoded.notes.append(f"no vmlinux in {self.build_dir}: frames are not decoded")
        elif vmlinux is not None and not self._has_debuginfo(vmlinux):
            decoded.notes.append("vmlinux has no debug info (CONFIG_DEBUG_INFO_NONE): "
                                 "frames resolve to their function's definition")
        pending: Dict[Tuple[str, Optional[str]], List[Tuple[Frame, int]]] = {}
        for frame in decoded.frames:
            if self.build_dir is None or frame.function is None:
                continue
            target = self._locate(frame)
            if target is not None:
                pending.setdefault(target[:2], []).append((frame, target[2]))
        for (elf, section), items in pending.items():
            self._addr2line(Path(elf), section, items)
        hints = [f.file for f in decoded.frames if f.source == "bug-table" and f.file]
        for frame in decoded.frames:
            if frame.function is not None and self.build_dir is not None and frame.source is None:
                self._resolve_definition(frame, hints)
            frame.file = self._tree_relative(frame.file)
        self._attribute(decoded)

    def _locate(self, frame: Frame) -> Optional[Tuple[str, Optional[str], int]]:
        """(elf, section or None, address to look up) for addr2line, setting frame.address."""
        if frame.module:
            ko = self._module_file(frame.module)
            if ko is None:
                frame.note = frame.note or f"no {frame.module}.ko in the build directory"
                return None
            tables = self._module_symbols(ko)
            if not tables:
                return None
            syms, sections = tables
            candidates = [s for s in syms if s["name"] == frame.function]
            if not candidates:
                frame.note = f"{frame.function} is not in {ko.name}"
                return None
            sym = candidates[0]
            frame.address = f"{sym['value'] + (frame.offset or 0):#x}"
            if not self._has_debuginfo(ko):
                return None
            return str(ko), sections.get(sym["ndx"]), self._lookup_address(frame, sym["value"])
        table = self._vmlinux_symbols()
        if table is None:
            frame.note = frame.note or "no System.map or vmlinux to look the symbol up"
            return None
        candidates = table.get(frame.function, [])
        if not candidates:
            frame.note = f"{frame.function} is not in System.map: not this build's symbol"
            return None
        sized = [c for c in candidates if frame.size is None or c[1] == frame.size]
        if not sized:
            frame.note = (f"{frame.function} is {candidates[0][1]:#x} bytes in this vmlinux, "
                          f"{frame.size:#x} in the trace: not the kernel that ran")
            frame.address = f"{candidates[0][0] + (frame.offset or 0):#x}"
            return None
        addr, _ = sized[0]
        frame.address = f"{addr + (frame.offset or 0):#x}"
        vmlinux = self._artifact("vmlinux", "vmlinux")
        if vmlinux is None or not self._has_debuginfo(vmlinux):
            return None
        return str(vmlinux), None, self._lookup_address(frame, addr)

    @staticmethod
    def _lookup_address(frame: Frame, start: int) -> int:
        # a trace frame is a return address: the call is the byte before it
        back = 1 if frame.kind == "trace" and (frame.offset or 0) > 0 else 0
        return start + (frame.offset or 0) - back

    def _addr2line(self, elf: Path, section: Optional[str], items: List[Tuple[Frame, int]]) -> None:
        argv = ["addr2line", "-a", "-f", "-i", "-e", str(elf)]
        if section:
            argv += ["-j", section]
        argv += [f"{addr:#x}" for _, addr in items]
        try:
            out = run(argv, timeout=TOOL_TIMEOUT_S).stdout
        except CommandError as exc:
            for frame, _ in items:
                frame.note = f"addr2line failed: {exc}"
            return
        found = parse_addr2line(out)
        for frame, addr in items:
            chain = [c for c in found.get(addr, []) if c[2]]
            if not chain:
                frame.note = frame.note or "addr2line found no line for this address"
                continue
            func, file, line = chain[0]
            if frame.source == "bug-table":
                continue            # the bug table's line is the WARN itself; keep it
            frame.file, frame.line, frame.source = file, line, "debuginfo"
            if len(chain) > 1:
                # addr2line -i: the inlined function's line first, then each call site outwards
                frame.inline_function = func
                frame.inlined = [{"function": f, "file": self._tree_relative(p), "line": n}
                                 for f, p, n in chain[1:]]

    def _tree_relative(self, path: Optional[str]) -> Optional[str]:
        objdir = self.manifest.objdir if self.manifest else None
        if path and path.startswith("../") and objdir:
            # an O= build's __FILE__ is the source's path relative to the object dir
            path = os.path.normpath(os.path.join(objdir, path))
        if not path or not path.startswith("/"):
            return path
        path = os.path.normpath(path)
        kernel = self.manifest.kernel if self.manifest else BuildKernel()
        for root in (kernel.worktree, kernel.tree):
            if root and path.startswith(root.rstrip("/") + "/"):
                return path[len(root.rstrip("/")) + 1:]
        return path

    def _source_candidates(self, frame: Frame, hints: Sequence[str] = ()) -> List[str]:
        """Tree-relative source files that may define frame's function, likeliest first."""
        name = frame.function or ""
        out: List[str] = []
        if frame.module:
            ko = self._module_file(frame.module)
            syms = (self._module_symbols(ko) or ([], {}))[0] if ko else []
            own = [s["file"] for s in syms if s["name"] == name and s.get("file")]
            # a global symbol has no FILE: try every source file of the module
            basenames = own or sorted({s["file"] for s in syms if s.get("file")})
            kmod_source = self.manifest.artifacts.kmod.get("source") if self.manifest else None
            kmod_source = kmod_source if isinstance(kmod_source, str) else None
            for basename in basenames:
                if basename.endswith(".mod.c"):
                    continue
                if kmod_source and (Path(kmod_source) / basename).is_file():
                    out.append(str(Path(kmod_source) / basename))
                if ko is not None and "kernel" in ko.parts:
                    rel_dir = Path(*ko.parts[ko.parts.index("kernel") + 1:-1])
                    out.append(str(rel_dir / basename))
        objmap = {} if frame.module else self._object_map()
        stems = objmap.get(name) or objmap.get(_base_name(name)) or []
        if len(stems) > 1 and frame.address:
            symbol_start = int(frame.address, 16) - (frame.offset or 0)
            basename = self._vmlinux_file_of(symbol_start)
            if basename:
                stems = [s for s in stems if Path(s).name == Path(basename).stem] or stems
        for stem in stems:
            out += [stem + ".c", stem + ".S"]
        # no object map (or not there): the splat's own files, then the files the series touched
        extra = list(hints) + sorted(f for f in self.touched_files() if f.endswith((".c", ".S", ".h")))
        return out + [f for f in extra if f not in out]

    def _resolve_definition(self, frame: Frame, hints: Sequence[str] = ()) -> None:
        name = frame.function or ""
        if not self.git_dir and not frame.module:
            frame.note = frame.note or "no source tree to find the definition in"
            return
        for path in self._source_candidates(frame, hints):
            text = self._read_source(path)
            if text is None:
                continue
            span = find_definition(text, name)
            if span:
                frame.file, frame.line, frame.source = path, span[0], "definition"
                return
        frame.note = frame.note or f"definition of {_base_name(name)} not found in the built source"

    def _read_source(self, path: str) -> Optional[str]:
        if path.startswith("/"):
            # an out-of-tree module's source, named by the console: a C source file, bounded
            if not path.endswith(SOURCE_SUFFIXES):
                return None
            return read_bounded(path, MAX_SOURCE_BYTES)
        return self.blob(path)
