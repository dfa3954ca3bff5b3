"""Kernel config: profiles and fragments, merge, olddefconfig, survival check.

Profiles are data files in zstest/configs/NAME.config (kernel .config syntax) with
three zstest directives in comments:

  # start: tinyconfig        the make target the config starts from (profiles only)
  # include: base            merge another profile here first
  CONFIG_FOO=y  # optional   FOO may not exist on every tree: ignored where Kconfig
                             has no `config FOO`; reported if it exists and was dropped

Merging follows scripts/kconfig/merge_config.sh: start config, then every fragment
in order, a later assignment of a symbol replaces an earlier one; then olddefconfig;
then every requested value must be in the final .config.

A --config file may also be a developer's full .config (is_full_config: the kernel's
"# Automatically generated file; DO NOT EDIT." header in its first lines, or at least
FULL_CONFIG_MIN_LINES CONFIG_ lines). It is then the start config instead of a make
target, and zstest's required options go on top: the base profile's y/m lines, but for
its tuning sections (compiler and allocator choices, the list of what a lean guest turns
off) which stay the developer's. The survival check then names what their config forbids.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from . import proc, resources
from .arch import ArchSpec
from .errors import BadInput, BuildFailed
from .gitsafe import run_git

PROFILES_DIR = resources.configs_dir()
ARCH_PROFILES_DIR = PROFILES_DIR / "arch"    # one fragment per arch record
DEFAULT_START = "tinyconfig"
FULL_CONFIG_MIN_LINES = 200
FULL_CONFIG_HEADER = "# Automatically generated file; DO NOT EDIT."
# Sections of base.config (`# --- title`) that are the lean guest's taste, not a requirement.
# Sections of a profile that are taste, not need: a developer's own .config does not get them
# (coverage: gcov's kernel side, which `--coverage` adds when it is asked for).
_TUNING_SECTIONS = ("architecture, compiler", "off:", "coverage:")

_SET_RE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET_RE = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set\s*$")
_DIRECTIVE_RE = re.compile(r"^#\s*(start|include):\s*(\S+)\s*$")
_VALUE_RE = re.compile(r'^(y|m|n|-?[0-9]+|0x[0-9a-fA-F]+|"(?:[^"\\]|\\.)*")$')
_OPTIONAL_RE = re.compile(r"\s+#\s*optional\b.*$")


@dataclass
class ConfigOption:
    """One requested assignment; value is "n" for `# CONFIG_X is not set`."""
    name: str
    value: str
    source: str          # file:line, for error messages
    optional: bool = False


@dataclass
class Fragment:
    """A parsed profile or fragment file (includes already expanded)."""
    path: Path
    profile: Optional[str]            # profile name, None for a user fragment
    options: List[ConfigOption]
    start: Optional[str] = None       # make target to start from, if the file says
    start_config: Optional[Path] = None   # a full .config to start from instead of a target


@dataclass
class MissingOption:
    name: str
    wanted: str
    got: str                           # value in the final .config, "n" if absent
    source: str
    reason: str                        # "not in tree" or "dropped"
    depends_on: List[str] = field(default_factory=list)
    unmet: List[str] = field(default_factory=list)   # e.g. ["BLOCK=n"]

    def sentence(self) -> str:
        if self.reason == "not in tree":
            return f"CONFIG_{self.name}={self.wanted} ({self.source}): no such option in this tree"
        text = f"CONFIG_{self.name}={self.wanted} ({self.source}) became {self._shown(self.got)}"
        if self.depends_on:
            text += "; depends on " + " && ".join(f"({d})" if "||" in d else d
                                                  for d in self.depends_on)
            if self.unmet:
                text += " [unmet: " + ", ".join(self.unmet) + "]"
        return text

    @staticmethod
    def _shown(value: str) -> str:
        return "not set" if value == "n" else value

    def to_json(self) -> dict:
        return {"name": self.name, "wanted": self.wanted, "got": self.got,
                "source": self.source, "reason": self.reason,
                "depends_on": self.depends_on, "unmet": self.unmet}


@dataclass
class ConfigResult:
    config_path: Path                  # the final .config (in the scratch dir)
    start: str
    fragments: List[Fragment]
    requested: Dict[str, ConfigOption]
    missing: List[MissingOption]
    ignored_optional: List[str]        # optional options absent from this tree


# ---------------------------------------------------------------- fragments

def profile_names() -> List[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.config"))


def resolve_config_arg(arg: str) -> Fragment:
    """A --config argument: a profile name (base, debug), a fragment file or a full .config."""
    profile = PROFILES_DIR / f"{arg}.config"
    if "/" not in arg and profile.is_file():
        return parse_fragment(profile, profile=arg)
    path = Path(arg).expanduser()
    if not path.is_file():
        raise BadInput(f"--config {arg}: no such profile (have: {', '.join(profile_names())}) "
                       f"and no such fragment file.")
    if is_full_config(path):
        return Fragment(path.resolve(), None, [], start=f"file {path.resolve()}",
                        start_config=path.resolve())
    return parse_fragment(path)


def is_full_config(path: Path) -> bool:
    """A whole .config (make's header, or FULL_CONFIG_MIN_LINES CONFIG_ lines), not a fragment."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return False
    lines = text.splitlines()
    if any(line.strip() == FULL_CONFIG_HEADER for line in lines[:5]):
        return True
    count = sum(1 for line in lines if _SET_RE.match(line) or _UNSET_RE.match(line))
    return count >= FULL_CONFIG_MIN_LINES


def _sections_of(paths: Iterable[Path]) -> Dict[str, str]:
    """file:line -> the "# --- " section heading above it, for every line of paths."""
    section_of = {}
    for path in paths:
        section = ""
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith("# --- "):
                section = line[len("# --- "):]
            section_of[f"{path}:{number}"] = section
    return section_of


def _without_tuning(frag: Fragment, files: Iterable[Path]) -> List[ConfigOption]:
    """frag's y/m lines outside its tuning sections ("architecture, compiler", "off:")."""
    section_of = _sections_of(files)
    return [o for o in frag.options if o.value != "n"
            and not section_of.get(o.source, "").startswith(_TUNING_SECTIONS)]


def required_fragment() -> Fragment:
    """What zstest needs on top of a developer's .config: base's y/m lines outside its
    tuning sections (zsmalloc, zram, migration, debugfs, LKDTM, console, virtio, ...)."""
    path = PROFILES_DIR / "base.config"
    base = parse_fragment(path, profile="base")
    return Fragment(path, "required", _without_tuning(base, [path]))


def arch_fragment(arch: ArchSpec, page_size: Optional[str] = None,
                  full_config: bool = False) -> Fragment:
    """What arch's guest needs (configs/arch/<arch>.config: console, firmware, image format,
    what the arch cannot have), then the --page-size choice: applied after every other
    fragment. On a developer's full .config only its lines outside the tuning sections."""
    path = ARCH_PROFILES_DIR / f"{arch.name}.config"
    frag = parse_fragment(path, profile=f"arch-{arch.name}") if path.is_file() \
        else Fragment(path, f"arch-{arch.name}", [])
    options = list(frag.options)
    if full_config:
        options = _without_tuning(frag, [path] + sorted(ARCH_PROFILES_DIR.glob("*.config")))
    choice, _size = arch.page_size_config(page_size)
    options += [ConfigOption(symbol, value, f"--page-size {page_size or 'default'}")
                for symbol, value in choice]
    return Fragment(path, frag.profile, options)


def expand_configs(args: Sequence[str]) -> List[Fragment]:
    """--config arguments -> the fragments to merge, in order.

    A lone fragment goes on top of the base profile (a bootable guest kernel); a full
    .config is the start and gets zstest's required options on top, before later fragments.
    """
    fragments: List[Fragment] = []
    for arg in args or ["base"]:
        frag = resolve_config_arg(arg)
        fragments.append(frag)
        if frag.start_config is not None:
            fragments.append(required_fragment())
    if not any(f.start for f in fragments):
        fragments.insert(0, resolve_config_arg("base"))
    return fragments


def parse_fragment(path: Path, profile: Optional[str] = None,
                   _stack: Sequence[Path] = ()) -> Fragment:
    """Parse a fragment; BadInput naming file:line on a syntax error."""
    path = Path(path)
    if path.resolve() in _stack:
        raise BadInput(f"{path}: include cycle ({' -> '.join(p.name for p in _stack)}).")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read config fragment {path}: {exc}.") from None
    options: List[ConfigOption] = []
    start = None
    for number, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        line = raw.strip()
        if not line:
            continue
        directive = _DIRECTIVE_RE.match(line)
        if directive:
            kind, arg = directive.groups()
            if kind == "start":
                start = arg
            else:
                inc = PROFILES_DIR / f"{arg}.config"
                if not inc.is_file():
                    inc = (path.parent / arg)
                if not inc.is_file():
                    raise BadInput(f"{where}: include of unknown profile {arg!r}.")
                sub = parse_fragment(inc, profile=inc.stem,
                                     _stack=tuple(_stack) + (path.resolve(),))
                options.extend(sub.options)
                start = start or sub.start
            continue
        unset = _UNSET_RE.match(line)
        if unset:
            options.append(ConfigOption(unset.group(1), "n", where))
            continue
        if line.startswith("#"):
            continue
        optional = bool(_OPTIONAL_RE.search(line))
        body = _OPTIONAL_RE.sub("", line).strip()
        match = _SET_RE.match(body)
        if not match:
            raise BadInput(f"{where}: not a config line: {raw.strip()!r} "
                           f"(expected CONFIG_NAME=value or '# CONFIG_NAME is not set').")
        name, value = match.groups()
        if not _VALUE_RE.match(value):
            raise BadInput(f"{where}: bad value for CONFIG_{name}: {value!r} "
                           f"(expected y, m, n, a number or a quoted string).")
        options.append(ConfigOption(name, value, where, optional))
    return Fragment(path, profile, options, start)


def merge_fragments(fragments: Iterable[Fragment]) -> Dict[str, ConfigOption]:
    """merge_config.sh semantics: a later assignment of a symbol wins."""
    merged: Dict[str, ConfigOption] = {}
    for frag in fragments:
        for opt in frag.options:
            merged.pop(opt.name, None)
            merged[opt.name] = opt
    return merged


def read_config(path: Path) -> Dict[str, str]:
    """A .config as {NAME: value}; `is not set` -> "n"."""
    values: Dict[str, str] = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        m = _SET_RE.match(line)
        if m:
            values[m.group(1)] = m.group(2)
            continue
        m = _UNSET_RE.match(line)
        if m:
            values[m.group(1)] = "n"
    return values


def render_config(base_text: str, merged: Dict[str, ConfigOption]) -> str:
    """The start .config with every merged symbol's line replaced, others appended."""
    out = []
    for line in base_text.splitlines():
        m = _SET_RE.match(line) or _UNSET_RE.match(line)
        if m and m.group(1) in merged:
            continue
        out.append(line)
    for opt in merged.values():
        out.append(f"# CONFIG_{opt.name} is not set" if opt.value == "n"
                   else f"CONFIG_{opt.name}={opt.value}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- Kconfig reading

@dataclass
class KconfigSymbol:
    name: str
    where: str
    depends_on: List[str]


_CONFIG_DEF_RE = re.compile(r"^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$")
_DEPENDS_RE = re.compile(r"^\s*depends\s+on\s+(.*)$")
_IF_RE = re.compile(r"^\s*if\s+(.*)$")
_ENDIF_RE = re.compile(r"^\s*endif\b")
_BLOCK_END_RE = re.compile(r"^\s*(?:config|menuconfig|choice|endchoice|menu|endmenu|comment|if|endif|source|mainmenu)\b")


def kconfig_symbols(srctree: Path, names: Optional[Iterable[str]] = None) -> Dict[str, KconfigSymbol]:
    """`config NAME` blocks of every Kconfig file with their `depends on` lines.

    Enclosing `if EXPR` blocks of the same file count as dependencies. Good
    enough to name why an option was dropped; not a full Kconfig parser.
    """
    wanted = set(names) if names is not None else None
    found: Dict[str, KconfigSymbol] = {}
    srctree = Path(srctree)
    for dirpath, dirnames, filenames in os.walk(srctree):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("Documentation", "tools")]
        for fname in filenames:
            if not fname.startswith("Kconfig"):
                continue
            path = Path(dirpath) / fname
            _scan_kconfig(path, srctree, wanted, found)
    return found


def _scan_kconfig(path: Path, srctree: Path, wanted, found) -> None:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return
    if_stack: List[str] = []
    current: Optional[KconfigSymbol] = None
    joined: List[tuple] = []
    buf, start = "", 0
    for number, line in enumerate(lines, 1):
        if not buf:
            start = number
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        joined.append((start, buf + line))
        buf = ""
    help_indent: Optional[int] = -1          # -1: not in a help text; None: its indent unknown
    for number, line in joined:
        if help_indent != -1:
            # a help text runs until the first non-blank line indented less than its first
            if not line.strip():
                continue
            indent = len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())
            if help_indent is None:
                help_indent = indent
            if indent >= help_indent:
                continue
            help_indent = -1
        if line.strip() in ("help", "---help---"):
            help_indent = None
            continue
        stripped = line.split("#", 1)[0].rstrip()
        m = _CONFIG_DEF_RE.match(stripped)
        if m:
            name = m.group(1)
            current = None
            if wanted is None or name in wanted:
                rel = path.relative_to(srctree)
                sym = found.get(name)
                if sym is None:
                    sym = KconfigSymbol(name, f"{rel}:{number}", list(if_stack))
                    found[name] = sym
                current = sym
            continue
        if _ENDIF_RE.match(stripped):
            if if_stack:
                if_stack.pop()
            current = None
            continue
        m = _IF_RE.match(stripped)
        if m:
            if_stack.append(" ".join(m.group(1).split()))
            current = None
            continue
        if _BLOCK_END_RE.match(stripped):
            current = None
            continue
        m = _DEPENDS_RE.match(stripped)
        if m and current is not None:
            dep = " ".join(m.group(1).split())
            if dep not in current.depends_on:
                current.depends_on.append(dep)


_TOKEN_RE = re.compile(r"\s*(\|\||&&|!=|=|!|\(|\)|\"[^\"]*\"|[A-Za-z0-9_]+)")


def evaluate_depends(expr: str, values: Dict[str, str]) -> int:
    """Kconfig tristate value (0/1/2 for n/m/y) of a `depends on` expression."""
    tokens = _TOKEN_RE.findall(expr)
    pos = 0

    def sym(tok: str) -> str:
        if tok.startswith('"'):
            return tok.strip('"')
        if tok in ("y", "m", "n"):
            return tok
        return values.get(tok, "n")

    def tri(v: str) -> int:
        return {"y": 2, "m": 1}.get(v, 0)

    def primary() -> int:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "!":
            return 2 - primary()
        if tok == "(":
            v = or_expr()
            pos += 1   # ")"
            return v
        if pos < len(tokens) and tokens[pos] in ("=", "!="):
            op = tokens[pos]
            rhs = tokens[pos + 1]
            pos += 2
            equal = sym(tok) == sym(rhs)
            return 2 if equal == (op == "=") else 0
        return tri(sym(tok))

    def and_expr() -> int:
        nonlocal pos
        v = primary()
        while pos < len(tokens) and tokens[pos] == "&&":
            pos += 1
            v = min(v, primary())
        return v

    def or_expr() -> int:
        nonlocal pos
        v = and_expr()
        while pos < len(tokens) and tokens[pos] == "||":
            pos += 1
            v = max(v, and_expr())
        return v

    try:
        return or_expr()
    except IndexError:
        return 2   # unparsable: do not claim it is unmet


def unmet_symbols(expr: str, values: Dict[str, str]) -> List[str]:
    """Symbols of expr that hold it back: NAME=n, or NAME=y under a `!`."""
    out = []
    tokens = _TOKEN_RE.findall(expr)
    for pos, tok in enumerate(tokens):
        if not re.fullmatch(r"[A-Za-z0-9_]+", tok) or tok.isdigit() or tok in ("y", "m", "n"):
            continue
        if pos + 1 < len(tokens) and tokens[pos + 1] in ("=", "!="):
            continue
        value = values.get(tok, "n")
        negated = pos > 0 and tokens[pos - 1] == "!"
        blocking = value != "n" if negated else value == "n"
        item = f"{tok}={value}"
        if blocking and item not in out:
            out.append(item)
    return out


def check_survival(requested: Dict[str, ConfigOption], final: Dict[str, str],
                   srctree: Path) -> tuple:
    """(missing options, optional options absent from the tree)."""
    differing = [opt for opt in requested.values()
                 if final.get(opt.name, "n") != opt.value]
    if not differing:
        return [], []
    symbols = kconfig_symbols(srctree, [opt.name for opt in differing])
    missing: List[MissingOption] = []
    ignored: List[str] = []
    for opt in differing:
        sym = symbols.get(opt.name)
        got = final.get(opt.name, "n")
        if sym is None:
            if opt.optional or opt.value == "n":
                ignored.append(opt.name)
                continue
            missing.append(MissingOption(opt.name, opt.value, got, opt.source, "not in tree"))
            continue
        unmet_deps = [d for d in sym.depends_on if evaluate_depends(d, final) == 0]
        unmet = []
        for dep in unmet_deps or sym.depends_on:
            unmet.extend(u for u in unmet_symbols(dep, final) if u not in unmet)
        missing.append(MissingOption(opt.name, opt.value, got, opt.source, "dropped",
                                     depends_on=sym.depends_on, unmet=unmet))
    return missing, ignored


# ---------------------------------------------------------------- configure

def kbuild_make_args(srctree: Path, objdir: Path, arch: ArchSpec) -> List[str]:
    """make in srctree with O=objdir for arch."""
    argv = ["make", "-C", str(srctree), f"O={objdir}", f"ARCH={arch.kernel_arch}"]
    return argv + ([f"CROSS_COMPILE={arch.cross_compile}"] if arch.cross_compile else [])


def configure(srctree: Path, scratch: Path, fragments: List[Fragment],
              env: Optional[dict] = None, log_file=None,
              on_line: Optional[Callable[[str], None]] = None,
              make_args: Sequence[str] = (), *, arch: ArchSpec) -> ConfigResult:
    """Start config + fragments + olddefconfig in `scratch` (an O= dir), then check.

    The scratch dir is separate from the build's object dir so that an unchanged
    config never touches the object dir's .config (incremental builds stay cheap).
    """
    # A developer's full .config is the start, whatever profile comes after it.
    full = [f.start_config for f in fragments if f.start_config is not None]
    starts = [f.start for f in fragments if f.start]
    start = f"file {full[-1]}" if full else (starts[-1] if starts else DEFAULT_START)
    scratch.mkdir(parents=True, exist_ok=True)
    # LLVM=1 / CC=clang change what Kconfig offers (CC_IS_CLANG): the config step gets them too.
    make = kbuild_make_args(srctree, scratch, arch) + list(make_args)
    merged = merge_fragments(fragments)
    config = scratch / ".config"
    key_file = scratch / "zstest-config-key"
    try:
        start_text = full[-1].read_text(errors="replace") if full else None
    except OSError as exc:
        raise BadInput(f"cannot read the start config {full[-1]}: {exc.strerror}.") from None
    key = config_key(srctree, start + (start_text or "") + "\0".join(make_args), merged)
    if config.is_file() and key_file.is_file() and key_file.read_text().strip() == key:
        # Same inputs as last time: olddefconfig would give the same .config.
        final = read_config(config)
        missing, ignored = check_survival(merged, final, srctree)
        return ConfigResult(config, start, fragments, merged, missing, ignored)
    if key_file.exists():
        key_file.unlink()
    try:
        if start_text is None:
            proc.run(make + ["-s", start], env=env, timeout=600, log_file=log_file,
                     on_line=on_line)
            start_text = config.read_text()
        config.write_text(render_config(start_text, merged))
        proc.run(make + ["-s", "olddefconfig"], env=env, timeout=600, log_file=log_file,
                 on_line=on_line)
    except proc.CommandError as exc:
        raise BuildFailed(f"kernel config step failed: {exc.summary()}.", detail=exc.tail) from None
    final = read_config(config)
    key_file.write_text(key + "\n")
    missing, ignored = check_survival(merged, final, srctree)
    return ConfigResult(config, start, fragments, merged, missing, ignored)


def config_key(srctree: Path, start: str, merged: Dict[str, ConfigOption]) -> str:
    """Everything olddefconfig's result depends on: Kconfig files, config fragments
    of the tree (tinyconfig), the requested options, the compiler version."""
    h = hashlib.sha256()
    h.update(f"{start}\n".encode())
    for opt in merged.values():
        h.update(f"{opt.name}={opt.value}\n".encode())
    try:
        cc = proc.run(["gcc", "--version"], timeout=30, check=False).stdout
    except proc.CommandError:
        cc = ""
    h.update(cc.encode())
    srctree = Path(srctree)
    if (srctree / ".git").exists():
        # The index's blob ids of the Kconfig inputs: much faster than reading the tree.
        try:
            listing = run_git(["ls-files", "-s", "--", "*Kconfig*", "*/configs/*.config",
                               "Makefile"], cwd=srctree, timeout=120, check=True,
                              trusted=srctree).stdout
            dirty = run_git(["status", "--porcelain", "--untracked-files=no"],
                            cwd=srctree, timeout=120, check=True, trusted=srctree).stdout
            if not dirty.strip():
                h.update(listing.encode())
                return h.hexdigest()
        except proc.CommandError:
            pass
    for dirpath, dirnames, filenames in os.walk(srctree):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "Documentation")
        rel = os.path.relpath(dirpath, srctree)
        for fname in sorted(filenames):
            if fname.startswith("Kconfig") or (fname.endswith(".config") and "configs" in rel) \
                    or (rel == "." and fname == "Makefile"):
                path = os.path.join(dirpath, fname)
                try:
                    with open(path, "rb") as fh:
                        h.update(f"{rel}/{fname}\0".encode() + fh.read())
                except OSError:
                    continue
    return h.hexdigest()


def install_config(result: ConfigResult, objdir: Path) -> bool:
    """Copy the final .config into objdir unless identical; True when it changed."""
    target = objdir / ".config"
    new = result.config_path.read_bytes()
    if target.is_file() and target.read_bytes() == new:
        return False
    objdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.config_path, target)
    return True
