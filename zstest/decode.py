"""Decode: a splat's trace to file:line, and the patches of the series that touched it.

Stage input is a splat dict (from results.json or zstest.splats) and a build
directory (build.json, vmlinux, System.map, the .ko files). Three sources of a
location, best first:
  - "bug-table": the WARNING / kernel BUG line's own file:line;
  - "debuginfo": addr2line on vmlinux or the .ko, when they carry DWARF lines;
  - "definition": without debug info (the base profile), the line where the
    function is defined in the built source (the cached repo at the built commit).
Attribution: `git blame` of a frame's line (how "line") and `git log -L` of the
function's extent over base..commit (how "function"), mapped to patch indexes
through build.json series.patches[].commit.

Never blocks and never raises on bad data: every external command goes through
zstest.proc.run with a timeout; what cannot be decoded is kept as an undecoded
frame with a note saying why.
"""

from __future__ import annotations

import logging
import os
import re
import textwrap
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .errors import BadInput
from .manifests import Artifacts, BuildKernel, BuildManifest, PatchRecord, has_build, load_build
from .manifests import load_results, save_results
from .proc import CommandError, run
from .splats import END_TRACE, find_splats, split_timestamp

log = logging.getLogger("zstest.decode")

GIT_TIMEOUT_S = 120
TOOL_TIMEOUT_S = 60
DECODED_HEADER = "Decoded splats"

# "func+0x1a3/0x5f0 [zram]"; old kernels print a trailing "()" after WARNING sites.
SYMREF = r"(?P<func>[A-Za-z_.$][\w.$]*)\+0x(?P<off>[0-9a-fA-F]+)/0x(?P<size>[0-9a-fA-F]+)" \
         r"(?:\(\))?(?: \[(?P<module>[\w-]+)\])?"
WARNING_AT = re.compile(r"^WARNING: CPU: \d+ PID: \d+ at (?P<file>\S+?):(?P<line>\d+)(?: " + SYMREF + ")?")
KERNEL_BUG_AT = re.compile(r"kernel BUG at (?P<file>\S+?):(?P<line>\d+)!")
RIP_KERNEL = re.compile(r"^RIP: 0010:(?:\[<[0-9a-f]+>\]\s+)*(?:\[<[0-9a-f]+>\]\s+)?" + SYMREF)
CALL_TRACE = re.compile(r"^Call Trace:")
TRACE_FRAME = re.compile(r"^\s*(?P<unreliable>\? )?(?:\[<[0-9a-f]+>\]\s+)?(?:(?P<unreliable2>\? ))?"
                         + SYMREF + r"\s*$")
TRACE_ADDRESS = re.compile(r"^\s*(?P<unreliable>\? )?(?P<address>0x[0-9a-f]+)\s*$")
TRACE_MARKER = re.compile(r"^\s*</?(TASK|IRQ|NMI|SOFTIRQ|EOE|#\w+)>\s*$")
TRACE_END = re.compile(r"^\s*</TASK>\s*$")
# Lines inside a trace that are not frames but do not end it (a pt_regs dump, "Code:").
TRACE_NOISE = re.compile(r"^\s*(Code: |RSP: |RAX: |RDX: |RBP: |R\d+: |FS: |CS: |CR2: |"
                         r"DR\d: |PKRU: |RIP: )")
SYSCALL_PREFIXES = ("__do_sys_", "__se_sys_", "__x64_sys_", "__ia32_sys_", "__ia32_compat_sys_",
                    "__do_compat_sys_", "__se_compat_sys_", "__x64_compat_sys_")


@dataclass
class Frame:
    kind: str                         # "bug" (the WARNING/BUG site), "rip", "trace"
    text: str                         # the line as the kernel printed it, without timestamp
    function: Optional[str] = None
    offset: Optional[int] = None
    size: Optional[int] = None
    module: Optional[str] = None
    reliable: bool = True             # False for "? func+..." (a stale stack word)
    address: Optional[str] = None     # absolute (vmlinux) or section-relative (.ko), hex
    file: Optional[str] = None        # relative to the kernel tree when in it
    line: Optional[int] = None
    source: Optional[str] = None      # "bug-table" / "debuginfo" / "definition" / None
    inline_function: Optional[str] = None   # the inlined function the address is in (addr2line -i)
    inlined: List[Dict[str, Any]] = field(default_factory=list)   # its call sites, innermost first
    note: str = ""                    # why this frame is (partly) undecoded

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.file and self.line else ""

    def symbol(self) -> str:
        if self.function is None:
            return self.address or "?"
        size = f"/{self.size:#x}" if self.size is not None else ""
        mod = f" [{self.module}]" if self.module else ""
        return f"{self.function}+{self.offset or 0:#x}{size}{mod}"


@dataclass
class PatchRef:
    index: int                 # the patch's 1-based index in the series
    subject: str
    how: str                   # "line" (git blame of the frame's line) / "function" (changed the function)
    frame: int                 # index into Decoded.frames
    function: Optional[str] = None
    location: str = ""


@dataclass
class Decoded:
    kind: str
    title: str
    frames: List[Frame] = field(default_factory=list)
    patches: List[PatchRef] = field(default_factory=list)
    build_dir: Optional[str] = None
    commit: Optional[str] = None      # the source the frames were resolved against
    notes: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Decoded":
        frame_keys = Frame.__dataclass_fields__.keys()
        patch_keys = PatchRef.__dataclass_fields__.keys()
        return cls(kind=d.get("kind", ""), title=d.get("title", ""),
                   frames=[Frame(**{k: v for k, v in f.items() if k in frame_keys})
                           for f in d.get("frames", [])],
                   patches=[PatchRef(**{k: v for k, v in p.items() if k in patch_keys})
                            for p in d.get("patches", [])],
                   build_dir=d.get("build_dir"), commit=d.get("commit"),
                   notes=list(d.get("notes", [])))

    @property
    def decoded_frames(self) -> int:
        return sum(1 for f in self.frames if f.source)


# ---------------------------------------------------------------- parsing (pure)

def _symref_frame(kind: str, m: "re.Match", text: str, reliable: bool = True) -> Frame:
    return Frame(kind=kind, text=text.strip(), function=m.group("func"),
                 offset=int(m.group("off"), 16), size=int(m.group("size"), 16),
                 module=m.group("module"), reliable=reliable)


def parse_frames(text: str) -> List[Frame]:
    """The frames of one splat's text: its WARNING/BUG site, the kernel RIP, the call traces."""
    frames: List[Frame] = []
    bug: Optional[Frame] = None
    rip_seen = False
    in_trace = False
    after_end = False
    for raw in text.splitlines():
        _, msg = split_timestamp(raw)
        if END_TRACE.search(msg):
            after_end = True        # an oops prints its RIP again after the end marker
            in_trace = False
            continue
        if after_end:
            continue
        m = WARNING_AT.search(msg)
        if m and bug is None:
            bug = Frame(kind="bug", text=msg.strip(), file=m.group("file"),
                        line=int(m.group("line")), source="bug-table")
            if m.group("func"):
                bug.function, bug.offset = m.group("func"), int(m.group("off"), 16)
                bug.size, bug.module = int(m.group("size"), 16), m.group("module")
            frames.append(bug)
            continue
        m = KERNEL_BUG_AT.search(msg)
        if m and bug is None:
            bug = Frame(kind="bug", text=msg.strip(), file=m.group("file"),
                        line=int(m.group("line")), source="bug-table")
            frames.append(bug)
            continue
        if CALL_TRACE.match(msg.strip()):
            in_trace = True
            continue
        if in_trace:
            if TRACE_END.match(msg):
                in_trace = False
                continue
            if TRACE_MARKER.match(msg):
                continue
            m = TRACE_FRAME.match(msg)
            if m:
                unreliable = bool(m.group("unreliable") or m.group("unreliable2"))
                frames.append(_symref_frame("trace", m, msg, reliable=not unreliable))
                continue
            m = TRACE_ADDRESS.match(msg)
            if m:
                frames.append(Frame(kind="trace", text=msg.strip(), address=m.group("address"),
                                    reliable=not m.group("unreliable"),
                                    note="a bare address: no symbol to decode"))
                continue
            m = RIP_KERNEL.match(msg.strip())
            if m:
                # a kernel context interrupted inside the trace: its exact ip
                frames.append(_symref_frame("rip", m, msg))
                continue
            if TRACE_NOISE.match(msg):
                continue
            in_trace = False
        m = RIP_KERNEL.match(msg.strip())
        if m and not rip_seen:
            rip_seen = True
            rip = _symref_frame("rip", m, msg)
            if bug is not None and bug.function is None:
                # kernel BUG names no function: the RIP is the BUG site
                bug.function, bug.offset, bug.size, bug.module = (
                    rip.function, rip.offset, rip.size, rip.module)
            elif bug is not None and (bug.function, bug.offset) == (rip.function, rip.offset):
                continue
            else:
                frames.append(rip)
    return frames


# ---------------------------------------------------------------- source helpers (pure)

def _base_name(function: str) -> str:
    """zs_page_migrate.cold / .isra.0 / .constprop.0 -> zs_page_migrate."""
    return function.split(".", 1)[0]


def _definition_patterns(function: str) -> List["re.Pattern"]:
    name = _base_name(function)
    pats = [re.compile(r"(?:^|[^\w])" + re.escape(name) + r"\s*\(")]
    for prefix in SYSCALL_PREFIXES:
        if name.startswith(prefix):
            call = name[len(prefix):]
            macro = "COMPAT_SYSCALL_DEFINE" if "compat" in prefix else "SYSCALL_DEFINE"
            pats.append(re.compile(r"^" + macro + r"\d\(" + re.escape(call) + r"\b"))
    # a function made by a macro: DEFINE_IDTENTRY_SYSVEC(sysvec_apic_timer_interrupt) { ... }
    pats.append(re.compile(r"^[A-Z][A-Z0-9_]*\(\s*" + re.escape(name) + r"\s*[,)]"))
    # assembly: SYM_FUNC_START(name), SYM_CODE_START(name), SYM_INNER_LABEL(name, ...)
    pats.append(re.compile(r"^\s*SYM_[A-Z_]+\(" + re.escape(name) + r"\b"))
    return pats


def find_definition(source: str, function: str) -> Optional[Tuple[int, int]]:
    """(first line, last line), 1-based, of function's definition in C or assembly source."""
    lines = source.splitlines()
    pats = _definition_patterns(function)
    for i, line in enumerate(lines):
        if not line or (line[0] in " \t" and not line.lstrip().startswith("SYM_")):
            continue
        if line.lstrip().startswith(("#", "//", "*", "/*")):
            continue
        if not any(p.search(line) for p in pats):
            continue
        if line.lstrip().startswith("SYM_"):
            end = next((j for j in range(i + 1, len(lines)) if lines[j].lstrip().startswith(
                ("SYM_FUNC_END", "SYM_CODE_END"))), i)
            return i + 1, end + 1
        # a definition reaches "{" before any ";" (a prototype ends with ";")
        j, head = i, ""
        while j < len(lines) and j < i + 20:
            head += lines[j]
            if "{" in lines[j] or ";" in lines[j]:
                break
            j += 1
        brace, semi = head.find("{"), head.find(";")
        if brace < 0 or (0 <= semi < brace):
            continue
        end = next((k for k in range(j, len(lines)) if lines[k].startswith("}")), j)
        return i + 1, end + 1
    return None


def parse_system_map(text: str) -> Dict[str, List[Tuple[int, int]]]:
    """name -> [(address, size)], size as kallsyms prints it: the distance to the next symbol."""
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "tTwW":
            try:
                entries.append((int(parts[0], 16), parts[2]))
            except ValueError:
                continue
    all_addrs = sorted({a for a, _ in entries})
    next_of = {a: b for a, b in zip(all_addrs, all_addrs[1:])}
    table: Dict[str, List[Tuple[int, int]]] = {}
    for addr, name in entries:
        size = next_of.get(addr, addr) - addr
        table.setdefault(name, []).append((addr, size))
    return table


def parse_readelf_symbols(text: str) -> List[Dict[str, Any]]:
    """readelf -sW: FUNC symbols with their section index and the FILE symbol they follow."""
    symbols, current_file = [], None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8 or not parts[0].endswith(":"):
            continue
        _, value, size, typ, bind, _vis, ndx, name = parts[:8]
        if typ == "FILE":
            current_file = name
            continue
        if typ != "FUNC":
            continue
        try:
            symbols.append({"name": name, "value": int(value, 16), "size": int(size, 0),
                            "ndx": int(ndx) if ndx.isdigit() else None,
                            "file": current_file if bind == "LOCAL" else None})
        except ValueError:
            continue
    return symbols


def parse_section_names(text: str) -> Dict[int, str]:
    """readelf -SW: section index -> name."""
    names = {}
    for m in re.finditer(r"^\s*\[\s*(\d+)\]\s+(\S+)", text, re.M):
        names[int(m.group(1))] = m.group(2)
    return names


def parse_addr2line(text: str) -> Dict[int, List[Tuple[str, str, Optional[int]]]]:
    """addr2line -a -f -i output: address -> [(function, file, line)], innermost first."""
    out: Dict[int, List[Tuple[str, str, Optional[int]]]] = {}
    lines = text.splitlines()
    i, current = 0, None
    while i < len(lines):
        line = lines[i].strip()
        if re.fullmatch(r"0x[0-9a-f]+", line):
            current = int(line, 16)
            out[current] = []
            i += 1
            continue
        if current is not None and i + 1 < len(lines):
            func, where = line, lines[i + 1].strip()
            where = re.sub(r" \(discriminator \d+\)$", "", where)
            file, _, num = where.rpartition(":")
            out[current].append((func, file, int(num) if num.isdigit() else None))
            i += 2
            continue
        i += 1
    return out


# ---------------------------------------------------------------- the decoder

class Decoder:
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
        self._setup_git()

    # -- manifest and git

    def _setup_git(self) -> None:
        # build.json is untrusted input (it travels between CI runners and people): git gets
        # only full object ids and only a repository inside the zstest cache.
        from .tree import inside_cache, is_object_id
        kernel = self.manifest.kernel if self.manifest else BuildKernel()
        self.base = kernel.base
        if self.base is not None and not is_object_id(self.base):
            self.notes.append(f"build.json's kernel.base {str(self.base)[:60]!r} is not a full "
                              f"commit id: ignored")
            self.base = None
        self.git_dir = kernel.git_dir
        if self.git_dir is not None:
            inside = inside_cache(self.git_dir)
            if inside is None:
                self.notes.append(f"build.json's kernel.git_dir {str(self.git_dir)[:80]!r} is not "
                                  f"inside the zstest cache: not read")
            self.git_dir = str(inside) if inside else None
        worktree = inside_cache(kernel.worktree)
        if not self.git_dir and worktree is not None and worktree.is_dir():
            # builds made before build.json named git_dir: the worktree knows its repository
            try:
                out = run(["git", "-C", str(worktree), "rev-parse", "--path-format=absolute",
                           "--git-common-dir"], timeout=GIT_TIMEOUT_S, env=self._git_env()).stdout
                self.git_dir = str(inside_cache(out.strip()) or "") or None
            except CommandError as exc:
                log.info("no git dir for %s: %s", worktree, exc)
        series = self.manifest.series if self.manifest else None
        patches = series.patches if series else []
        bad = [p for p in patches if p.commit and not is_object_id(p.commit)]
        if bad:
            self.notes.append(f"build.json names {len(bad)} patch commit(s) that are not full "
                              f"commit ids: ignored")
        commits = [p for p in patches if is_object_id(p.commit)]
        for p in commits:
            self.patch_of_commit[p.commit] = p
        self.commit = commits[-1].commit if commits else self.base
        if series and not commits:
            self.notes.append("build.json names no commit per patch: frames are not attributed "
                              "to patches (rebuild with a newer zstest)")
        if self.git_dir and not Path(self.git_dir).is_dir():
            self.notes.append(f"the cached repository {self.git_dir} is gone: no source lines")
            self.git_dir = None
        if not self.git_dir and self.manifest:
            self.notes.append("no cached kernel repository: frames resolve without source lines")

    @staticmethod
    def _git_env() -> Dict[str, str]:
        from .tree import cache_git_env
        return cache_git_env()

    def _git(self, args: List[str], quiet: bool = False) -> Optional[str]:
        if not self.git_dir:
            return None
        try:
            return run(["git", "--git-dir", self.git_dir] + args, timeout=GIT_TIMEOUT_S,
                       env=self._git_env()).stdout
        except CommandError as exc:
            (log.debug if quiet else log.info)("decode: %s", exc)
            return None

    def blob(self, path: str) -> Optional[str]:
        """The text of path at the built commit (None when not in the tree)."""
        key = (self.commit or "", path)
        if key not in self._blobs:
            text = None
            if self.commit and self.git_dir and not path.startswith("/"):
                text = self._git(["cat-file", "blob", "--end-of-options", f"{self.commit}:{path}"],
                                 quiet=True)
            self._blobs[key] = text
        return self._blobs[key]

    def touched_files(self) -> set:
        if self.touched is None:
            self.touched = set()
            if self.base and self.commit and self.commit != self.base:
                out = self._git(["diff", "--name-only", "--end-of-options", self.base,
                                 self.commit]) or ""
                self.touched = {line.strip() for line in out.splitlines() if line.strip()}
        return self.touched

    # -- artifacts

    def _artifact(self, key: str, default: str) -> Optional[Path]:
        if self.build_dir is None:
            return None
        arts = self.manifest.artifacts if self.manifest else Artifacts()
        name = {"vmlinux": arts.vmlinux, "System.map": arts.system_map}[key] or default
        path = Path(name) if Path(name).is_absolute() else self.build_dir / name
        return path if path.is_file() else None

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
            if smap is not None:
                table = parse_system_map(smap.read_text(errors="replace"))
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
            objdir = self.manifest.objdir if self.manifest else None
            archive = Path(objdir) / "vmlinux.a" if objdir else None
            if archive is not None and archive.is_file():
                try:
                    out = run(["nm", "-A", "--defined-only", str(archive)], timeout=TOOL_TIMEOUT_S).stdout
                except CommandError as exc:
                    log.info("decode: %s", exc)
                    out = ""
                for line in out.splitlines():
                    parts = line.split()
                    if len(parts) < 3 or parts[-2] not in "tTwW":
                        continue
                    obj = parts[0].rsplit(":", 2)[-2] if parts[0].count(":") >= 2 else ""
                    try:
                        rel = os.path.relpath(obj, objdir)
                    except ValueError:
                        continue
                    if rel.startswith("..") or not rel.endswith(".o"):
                        continue
                    self._objmap.setdefault(parts[-1], []).append(rel[:-2])
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
            try:
                return Path(path).read_text(errors="replace")
            except OSError:
                return None
        return self.blob(path)

    # -- attribution

    def _attribute(self, decoded: Decoded) -> None:
        if not self.patch_of_commit or not self.git_dir:
            return
        touched = self.touched_files()
        seen = set()
        for i, frame in enumerate(decoded.frames):
            if not frame.file:
                continue
            # (function, file, line) of the frame and, when inlined, of each call site outwards
            sites = [(frame.inline_function or frame.function, frame.file, frame.line)]
            sites += [(c.get("function"), c.get("file"), c.get("line")) for c in frame.inlined]
            refs: List[Tuple[str, PatchRecord]] = []
            exact = frame.source in ("bug-table", "debuginfo")
            for function, path, line in sites:
                if path not in touched:
                    continue
                patch = self._blame(path, line) if exact and line else None
                if patch:
                    refs.append(("line", patch))
                if function:
                    refs += [("function", p) for p in self._function_patches(path, function)]
            refs.sort(key=lambda r: r[0] != "line")
            for how, patch in refs:
                key = (patch.index, how)
                if key in seen:
                    continue
                seen.add(key)
                decoded.patches.append(PatchRef(index=patch.index, subject=patch.subject, how=how,
                                                frame=i, function=frame.function,
                                                location=frame.location))

    def _blame(self, path: str, line: int) -> Optional[PatchRecord]:
        # git 2.39's blame takes no --end-of-options: self.commit is a checked object id.
        out = self._git(["blame", "--porcelain", "-L", f"{line},{line}", self.commit, "--", path])
        if not out:
            return None
        sha = out.split(" ", 1)[0]
        return self.patch_of_commit.get(sha)

    def _function_patches(self, path: str, function: str) -> List[PatchRecord]:
        text = self.blob(path)
        span = find_definition(text, function) if text else None
        if not span or not self.base:
            return []
        out = self._git(["log", f"-L{span[0]},{span[1]}:{path}", "--format=%H", "-s",
                         "--end-of-options", f"{self.base}..{self.commit}"]) or ""
        patches = [self.patch_of_commit[h] for h in out.split() if h in self.patch_of_commit]
        return sorted(patches, key=lambda p: p.index)


# ---------------------------------------------------------------- public API

def decode_splat(splat: Dict[str, Any], build_dir: Optional[Path],
                 decoder: Optional[Decoder] = None) -> Decoded:
    """Decode one splat dict (kind, title, text) against a build directory."""
    decoder = decoder or Decoder(build_dir)
    return decoder.decode(splat)


def decode_console(lines: Iterable[str], build_dir: Optional[Path]) -> List[Decoded]:
    """Find every splat in console lines and decode it."""
    decoder = Decoder(build_dir)
    return [decoder.decode(s.to_dict()) for s in find_splats(lines)]


def results_splats(data: Dict[str, Any], results_dir: Optional[Path] = None
                   ) -> List[Tuple[str, Dict[str, Any]]]:
    """(test name or "", splat dict) for every splat in a results.json, in order.

    With results_dir, the console log there is the source of truth: a splat it holds that
    results.json lacks (a run ended before it could write it) is added, with its test.
    """
    if results_dir is not None:
        from .evidence import missing_splats
        data = missing_splats(data, Path(results_dir))
    out = []
    for test in data.get("tests") or []:
        if not isinstance(test, dict):
            continue
        for splat in test.get("splats") or []:
            if isinstance(splat, dict):
                out.append((str(test.get("name", "")), splat))
    for splat in data.get("splats") or []:
        if isinstance(splat, dict):
            out.append(("", splat))
    return out


def format_decoded(decoded: Decoded, width: int = 72, max_frames: int = 16) -> List[str]:
    """Plain-text lines of one decoded splat: its frames with locations, then its patches."""
    lines: List[str] = []
    shown = decoded.frames[:max_frames]
    for frame in shown:
        mark = "?" if not frame.reliable else " "
        head = f" {mark} {frame.symbol()}"
        where = (f"{frame.location} ({frame.source})" if frame.source else
                 f"(undecoded: {frame.note})" if frame.note else "(undecoded)")
        if len(head) + 2 + len(where) <= width:
            lines.append(f"{head}  {where}")
        else:
            lines.append(head)
            lines.append(f"      {where}")
        if frame.inline_function:
            lines.append(f"      in {frame.inline_function}(), inlined into:")
        for inl in frame.inlined:
            if inl.get("file"):
                lines.append(f"      {inl['function']} {inl['file']}:{inl['line']}")
    if len(decoded.frames) > len(shown):
        lines.append(f"   ... {len(decoded.frames) - len(shown)} more frames")
    if decoded.patches:
        for ref in decoded.patches:
            how = "changed this line" if ref.how == "line" else "changed this function"
            text = (f"patch {ref.index} {how}: {ref.function or '?'}"
                    f"{' ' + ref.location if ref.location else ''}: \"{ref.subject}\"")
            lines += textwrap.wrap(text, width=width, initial_indent="  -> ",
                                   subsequent_indent="     ", break_long_words=True)
    return lines


def _replace_section(summary: str, section: str) -> str:
    marker = f"\n{DECODED_HEADER}"
    head = summary.split(marker, 1)[0].rstrip("\n") + "\n"
    return head + "\n" + section


def annotate_results(results_dir: Path) -> int:
    """Decode every splat of results.json in place and add "Decoded splats" to summary.txt.

    Returns how many splats were decoded. Never raises on bad data: logs and returns 0.
    """
    try:
        results_dir = Path(results_dir)
        manifest = load_results(results_dir)
        data = manifest.data
        found = results_splats(data)
        if not found:
            return 0
        build_dir = manifest.kernel.build_dir
        if not build_dir:
            log.warning("decode: %s names no kernel.build_dir; splats not decoded", manifest.path)
            return 0
        decoder = Decoder(Path(build_dir))
        section = [f"{DECODED_HEADER} ({len(found)}, against {build_dir}):"]
        for test, splat in found:
            decoded = decoder.decode(splat)
            splat["decoded"] = decoded.to_dict()
            section.append("")
            section.append(f"[{decoded.kind}] {decoded.title}" + (f"  (in {test})" if test else ""))
            section += format_decoded(decoded, width=100)
            section += [f"  note: {n}" for n in decoded.notes]
        from .fsutil import write_text_atomic
        save_results(results_dir, data)
        summary = results_dir / "summary.txt"
        old = summary.read_text() if summary.is_file() else ""
        write_text_atomic(summary, _replace_section(old, "\n".join(section) + "\n"))
        return len(found)
    except Exception as exc:   # annotation must never break a run that already has its results
        log.warning("decode: could not annotate %s: %s", results_dir, exc)
        return 0
