"""Pure parsing for decode: a splat's text -> frames, and the build's symbol tables,
section names, addr2line output and C source -> where a function or address is (no I/O)."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..splats import END_TRACE, split_timestamp

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
        """A recorded decoding (results.json's splat["decoded"]); ValueError naming the first
        value of the wrong shape: results.json is an artifact, its text is printed."""
        _check(d, _DECODED_TYPES, "decoded")
        frames = _objects_of(d, "frames", _FRAME_TYPES)
        for i, f in enumerate(frames):
            _objects_of(f, "inlined", _INLINED_TYPES, f"decoded.frames[{i}].")
        patches = _objects_of(d, "patches", _PATCH_TYPES)
        return cls(kind=d.get("kind", ""), title=d.get("title", ""),
                   frames=[Frame(**{k: v for k, v in f.items() if k in _FRAME_TYPES})
                           for f in frames],
                   patches=[PatchRef(**{k: v for k, v in p.items() if k in _PATCH_TYPES})
                            for p in patches],
                   build_dir=d.get("build_dir"), commit=d.get("commit"),
                   notes=list(d.get("notes", [])))

    @property
    def decoded_frames(self) -> int:
        return sum(1 for f in self.frames if f.source)


_OPT_STR, _OPT_INT = (str, type(None)), (int, type(None))
_DECODED_TYPES = {"kind": str, "title": str, "frames": list, "patches": list,
                  "build_dir": _OPT_STR, "commit": _OPT_STR, "notes": list}
_FRAME_TYPES = {"kind": str, "text": str, "function": _OPT_STR, "offset": _OPT_INT,
                "size": _OPT_INT, "module": _OPT_STR, "reliable": bool, "address": _OPT_STR,
                "file": _OPT_STR, "line": _OPT_INT, "source": _OPT_STR,
                "inline_function": _OPT_STR, "inlined": list, "note": str}
_INLINED_TYPES = {"function": _OPT_STR, "file": _OPT_STR, "line": _OPT_INT}
_PATCH_TYPES = {"index": int, "subject": str, "how": str, "frame": int, "function": _OPT_STR,
                "location": str}
_REQUIRED = {"kind", "text", "index", "subject", "how", "frame"}


def _check(d: Any, types: Dict[str, Any], where: str) -> None:
    if not isinstance(d, dict):
        raise ValueError(f"{where} is not an object")
    for key, kinds in types.items():
        if key not in d:
            if key in _REQUIRED and types is not _DECODED_TYPES:
                raise ValueError(f"{where}.{key} is missing")
            continue
        value = d[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in
                                            (kinds if isinstance(kinds, tuple) else (kinds,))):
            raise ValueError(f"{where}.{key} is {type(value).__name__}")
    if isinstance(d.get("notes"), list) and not all(isinstance(n, str) for n in d["notes"]):
        raise ValueError(f"{where}.notes holds a value that is not text")


def _objects_of(d: Dict[str, Any], key: str, types: Dict[str, Any], where: str = "decoded."
                ) -> List[Dict[str, Any]]:
    items = d.get(key) or []
    for i, item in enumerate(items):
        _check(item, types, f"{where}{key}[{i}]")
    return items


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


# ---------------------------------------------------------------- the object map (objects.map.gz)

def object_map_text(nm_output: str, objdir: str) -> str:
    """`nm -A --defined-only vmlinux.a` (a thin archive in objdir) -> one line per object,
    "<tree-relative stem>\\t<function> <function> ...": the build keeps it as objects.map.gz."""
    by_object: Dict[str, List[str]] = {}
    for line in nm_output.splitlines():
        parts = line.split()
        if len(parts) < 3 or parts[-2] not in ("t", "T", "w", "W"):
            continue
        head = parts[0]
        if head.count(":") < 2:
            continue
        obj = head.rsplit(":", 2)[-2]
        rel = os.path.relpath(obj, objdir) if os.path.isabs(obj) else os.path.normpath(obj)
        if rel.startswith("..") or not rel.endswith(".o"):
            continue
        by_object.setdefault(rel[:-2], []).append(parts[-1])
    return "".join(f"{stem}\t{' '.join(names)}\n" for stem, names in sorted(by_object.items()))


def parse_object_map(text: str) -> Dict[str, List[str]]:
    """object_map_text's lines -> function -> the stems of the objects defining it."""
    out: Dict[str, List[str]] = {}
    for line in text.splitlines():
        stem, _, names = line.partition("\t")
        if not stem or stem.startswith(("/", "..")) or not names:
            continue
        for name in names.split():
            out.setdefault(name, []).append(stem)
    return out
