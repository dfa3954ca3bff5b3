"""Effective settings: which kernel tree, and the defaults of every option.

Precedence, highest first:
  an explicit option  >  the tree's zstest.toml  >  the user's config.toml  >  zstest's default.
The kernel tree has its own chain (resolve_kernel): --kernel, then the current directory when
it is a kernel tree, then $ZSTEST_KERNEL, then a config file's `kernel`, then Debian's 6.1.

The files never reach a command directly: load_settings() turns them into click's default_map
(one mechanism for every command), so an option given on the command line wins by click's own
rules. Files:
  zstest.toml       in the kernel tree (--kernel, the current kernel tree or $ZSTEST_KERNEL),
                    else in the current directory
  config.toml       in $XDG_CONFIG_HOME/zstest/ (default ~/.config/zstest/)
Both hold the top-level keys of KEYS, and tables named after a command ([build], [run],
[boot-and-run], [series.apply], ...) whose keys are that command's own option names.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .errors import BadInput

TREE_FILE = "zstest.toml"
USER_FILE = "config.toml"
KERNEL_ENV = "ZSTEST_KERNEL"
DEBIAN_DEFAULT = "6.1"
_DEBIAN_VERSION_RE = re.compile(r"^\d+\.\d+$")


@dataclass(frozen=True)
class Key:
    """A top-level setting: its TOML types and the command parameters it gives a default."""
    types: Tuple[type, ...]
    params: Tuple[Tuple[str, str], ...]   # (command path or "*", parameter name)
    help: str
    path: bool = False                    # relative paths are relative to the file's directory
    listof: Optional[type] = None         # element type when the value is a list
    default: Any = None                   # shown by `config show` when no parameter has one


KEYS: Dict[str, Key] = {
    "kernel": Key((str,), (), "kernel tree, or 6.1 / 6.12 for Debian's linux-source", path=True),
    "config": Key((str, list), (("*", "configs"),),
                  "config profile(s), fragment(s) or a full .config", path=True, listof=str,
                  default=["base"]),
    "suite": Key((str,), (("*", "suite"),), "guest suite"),
    "lore_url": Key((str,), (("*", "lore_url"),), "public-inbox server for message-ids"),
    "memory": Key((int,), (("*", "memory_mb"),), "guest RAM in MiB"),
    "jobs": Key((int,), (("*", "jobs"),), "make -j"),
    "accel": Key((str,), (("*", "accel"),), "QEMU accelerator: auto, kvm or tcg"),
    "timeout": Key((int, float), (("*", "timeout"),), "seconds a guest command may take"),
    "run_timeout": Key((int, float), (("*", "run_timeout"),), "seconds a whole run may take"),
    "boot_timeout": Key((int, float), (("*", "boot_timeout"),), "seconds to an SSH login"),
    "make_args": Key((list,), (("*", "make_args"),), "extra make variables (VAR=VALUE)",
                     listof=str),
    "toolchain": Key((str,), (("*", "toolchain"),), "compiler toolchain (zstest/toolchains.toml)"),
    "quiet": Key((bool,), (("*", "quiet"),), "only verdict lines and errors"),
    "tested_by": Key((str,), (), "'Name <email>' of zstest report's Tested-by: line "
                                 "(default: git config user.name / user.email)"),
    "build_out": Key((str,), (("build", "out"), ("run", "build_out")),
                     "build directory (fixed; default: a new one in the cache)", path=True),
    "results_out": Key((str,), (("boot-and-run", "out"), ("run", "out")),
                       "results directory (fixed; default: a new one in the cache)", path=True),
}


@dataclass
class Setting:
    value: Any
    source: str                      # "option", "env ZSTEST_KERNEL", "cwd", a file path, "default"


@dataclass
class Settings:
    values: Dict[str, Setting] = field(default_factory=dict)            # top-level keys
    commands: Dict[str, Dict[str, Setting]] = field(default_factory=dict)  # "series.apply" -> param
    files: List[Path] = field(default_factory=list)                      # read, lowest first
    kernel_hint: Optional[str] = None                                    # --kernel seen in argv
    cwd: Path = field(default_factory=Path.cwd)


# ---------------------------------------------------------------- files

def user_config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "zstest" / USER_FILE


def is_kernel_tree(path: Path) -> bool:
    """A Linux source tree: a top Makefile, a Kconfig and mm/."""
    path = Path(path)
    return (path / "Makefile").is_file() and (path / "Kconfig").is_file() and (path / "mm").is_dir()


def tree_config_file(kernel_hint: Optional[str], cwd: Path) -> Optional[Path]:
    """The tree's zstest.toml: in the tree this run will most likely use, else in cwd."""
    candidates = []
    if kernel_hint:
        candidates.append(expand_user(kernel_hint, "--kernel"))
    elif is_kernel_tree(cwd):
        candidates.append(cwd)
    elif os.environ.get(KERNEL_ENV):
        candidates.append(expand_user(os.environ[KERNEL_ENV], KERNEL_ENV))
    candidates.append(cwd)
    for directory in candidates:
        if (directory / TREE_FILE).is_file():
            return directory / TREE_FILE
    return None


def kernel_hint_from_argv(argv: Sequence[str]) -> Optional[str]:
    """`--kernel X` / `--kernel=X` in a command line (the tree's zstest.toml is read before
    the command's own options are parsed)."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--kernel" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--kernel="):
            return arg.split("=", 1)[1]
    return None


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path} is not valid TOML: {exc}.") from None
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} is not UTF-8 text (byte {exc.start}); TOML files are UTF-8.") from None


def expand_user(value: str, where: str) -> Path:
    """Path(value).expanduser(), with an unknown user's or a missing home's `~` as one sentence."""
    try:
        return Path(value).expanduser()
    except RuntimeError:
        raise BadInput(f"{where}: cannot expand {value!r}: no such user or home directory.") from None


def _check_type(path: Path, name: str, key: Key, value: Any) -> Any:
    wanted = " or ".join("a list of strings" if t is list else
                         {str: "a string", int: "an integer", float: "a number",
                          bool: "true or false"}[t] for t in key.types)
    ok = isinstance(value, key.types) and not (isinstance(value, bool) and bool not in key.types)
    if ok and isinstance(value, list) and key.listof:
        ok = all(isinstance(v, key.listof) for v in value)
    if not ok:
        raise BadInput(f"{path}: key {name!r} must be {wanted}, not {value!r}.")
    return value


def _rebase(value: Any, base: Path, where: str = "") -> Any:
    """A relative path in a file is relative to that file; profile names stay names."""
    def one(v: str) -> str:
        p = expand_user(v, where or str(base))
        if p.is_absolute() or _DEBIAN_VERSION_RE.match(v):
            return str(p) if p.is_absolute() else v
        if "/" in v or v.startswith(".") or v.endswith(".config") or (base / p).exists():
            return str(base / p)
        return v
    if isinstance(value, list):
        return [one(v) for v in value]
    return one(value)


def _load_file(path: Path, settings: Settings, command_names: Dict[str, Any]) -> None:
    data = _read_toml(path)
    settings.files.append(path)
    for name, value in data.items():
        if name in KEYS:
            key = KEYS[name]
            value = _check_type(path, name, key, value)
            if key.path:
                value = _rebase(value, path.parent, f"{path}: key {name!r}")
            if name == "config" and isinstance(value, str):
                value = [value]
            settings.values[name] = Setting(value, str(path))
            continue
        if isinstance(value, dict):
            _load_table(path, name, value, settings, command_names)
            continue
        known = ", ".join(sorted(KEYS))
        raise BadInput(f"{path}: unknown key {name!r} (known: {known}, or a table named after "
                       f"a command such as [build]).")


def _load_table(path: Path, name: str, table: dict, settings: Settings,
                command_names: Dict[str, Any]) -> None:
    """[build] or [series] with [series.apply] nested: a command's own options."""
    command = command_names.get(name)
    if command is None:
        raise BadInput(f"{path}: unknown key {name!r} (not a setting and not a command; "
                       f"commands: {', '.join(sorted(command_names))}).")
    import click
    if isinstance(command, click.Group):
        for sub, value in table.items():
            if not isinstance(value, dict):
                raise BadInput(f"{path}: key {name}.{sub!r} must be a table such as "
                               f"[{name}.{next(iter(command.commands), 'show')}].")
            _load_table(path, f"{name}.{sub}", value, settings, command_names)
        return
    params = {}
    for p in command.params:
        for opt in getattr(p, "opts", []):
            if opt.startswith("--"):
                params[opt[2:].replace("-", "_")] = p
        params.setdefault(p.name, p)
    for opt, value in table.items():
        param = params.get(opt.replace("-", "_"))
        if param is None or not isinstance(param, click.Option):
            raise BadInput(f"{path}: unknown key {name}.{opt!r}: `zstest {name.replace('.', ' ')}` "
                           f"has no option --{opt.replace('_', '-')}.")
        if isinstance(param.type, click.Path) and (isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value))):
            value = _rebase(value, path.parent, f"{path}: key '{name}.{opt}'")
        _cast(path, f"{name}.{opt}", command, param, value)
        settings.commands.setdefault(name, {})[param.name] = Setting(value, str(path))


def _cast(path: Path, where: str, command, param, value: Any) -> Any:
    import click
    if param.multiple and not isinstance(value, list):
        value = [value]
    try:
        return param.type_cast_value(click.Context(command), value)
    except click.BadParameter as exc:
        raise BadInput(f"{path}: key {where!r}: {exc.message}") from None
    except (TypeError, ValueError, AttributeError):
        # click's types take strings and numbers: a list or a table where a value belongs
        raise BadInput(f"{path}: key {where!r} cannot be {type(value).__name__} "
                       f"{str(value)[:60]!r} (expected {param.type.name}).") from None


def _command_names(root) -> Dict[str, Any]:
    """"build" -> command, "series" -> group, "series.apply" -> command, for every command."""
    import click
    out: Dict[str, Any] = {}

    def walk(cmd, prefix: str) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                path = f"{prefix}.{name}" if prefix else name
                out[path] = sub
                walk(sub, path)
    walk(root, "")
    return out


def load_settings(root, argv: Sequence[str] = (), cwd: Optional[Path] = None) -> Settings:
    """Read the user's file, then the tree's; BadInput (exit 2) naming file and key."""
    cwd = Path(cwd) if cwd else Path.cwd()
    settings = Settings(kernel_hint=kernel_hint_from_argv(argv), cwd=cwd)
    names = _command_names(root) if root is not None else {}
    user = user_config_file()
    if user.is_file():
        _load_file(user, settings, names)
    tree = tree_config_file(settings.kernel_hint, cwd)
    if tree is not None and (not user.is_file() or tree.resolve() != user.resolve()):
        _load_file(tree, settings, names)
    if root is not None:
        _check_top_level_values(root, settings)
    return settings


def _check_top_level_values(root, settings: Settings) -> None:
    """Top-level values pass the click type of every parameter they default (e.g. accel)."""
    for cmd_path, command in _command_names(root).items():
        for param in getattr(command, "params", []):
            for name in _keys_for(cmd_path, param.name):
                if name in settings.values:
                    s = settings.values[name]
                    _cast(Path(s.source), name, command, param, s.value)


def _keys_for(cmd_path: str, param_name: str) -> List[str]:
    return [name for name, key in KEYS.items()
            for where, pname in key.params if pname == param_name and where in ("*", cmd_path)]


def default_map(root, settings: Settings) -> dict:
    """click's default_map for every command from the loaded files (the one merge point)."""
    names = _command_names(root)
    out: dict = {}
    for cmd_path, command in names.items():
        import click
        if isinstance(command, click.Group):
            continue
        entries = {}
        for param in command.params:
            for name in _keys_for(cmd_path, param.name):
                if name in settings.values:
                    value = settings.values[name].value
                    entries[param.name] = list(value) if isinstance(value, list) else value
        for pname, s in settings.commands.get(cmd_path, {}).items():
            entries[pname] = s.value
        if entries:
            node = out
            for part in cmd_path.split(".")[:-1]:
                node = node.setdefault(part, {})
            node[cmd_path.split(".")[-1]] = entries
    return out


# ---------------------------------------------------------------- the kernel tree

@dataclass
class KernelChoice:
    path: Optional[Path]              # None: Debian's tree, not unpacked yet
    debian_version: Optional[str]
    source: str                       # option / cwd / env ZSTEST_KERNEL / <file> / default

    def describe(self) -> str:
        if self.debian_version:
            return f"Debian's linux-source-{self.debian_version}"
        return str(self.path)


_current: Optional[Settings] = None


def set_current(settings: Optional[Settings]) -> None:
    """The CLI's loaded settings, for stages that resolve the kernel themselves."""
    global _current
    _current = settings


def current() -> Settings:
    if _current is not None:
        return _current
    return load_settings(None)


def _as_choice(value: str, source: str) -> KernelChoice:
    if _DEBIAN_VERSION_RE.match(value) and not Path(value).exists():
        return KernelChoice(None, value, source)
    return KernelChoice(expand_user(value, source), None, source)


def kernel_choice(explicit: Optional[Path] = None, settings: Optional[Settings] = None,
                  cwd: Optional[Path] = None) -> KernelChoice:
    """Which tree, and why, without unpacking anything."""
    if explicit is not None and str(explicit) != "":
        return _as_choice(str(explicit), "option")
    settings = settings or current()
    cwd = Path(cwd) if cwd else settings.cwd
    if is_kernel_tree(cwd):
        return KernelChoice(cwd.resolve(), None, "cwd")
    env = os.environ.get(KERNEL_ENV)
    if env:
        return _as_choice(env, f"env {KERNEL_ENV}")
    if "kernel" in settings.values:
        s = settings.values["kernel"]
        return _as_choice(s.value, s.source)
    return KernelChoice(None, DEBIAN_DEFAULT, "default")


def resolve_kernel(explicit: Optional[Path] = None,
                   echo: Optional[Callable[[str], None]] = None,
                   settings: Optional[Settings] = None) -> Path:
    """The kernel tree a command works on (see the module docstring for the order).

    Falling back to Debian's tree says so in one line on stderr; unpacking it happens here.
    """
    choice = kernel_choice(explicit, settings)
    if choice.debian_version is None:
        return choice.path
    if choice.source == "default":
        cwd = (settings or current()).cwd
        line = (f"zstest: using Debian's linux-source-{choice.debian_version} "
                f"(no --kernel, and {cwd} is not a kernel tree)")
        (echo or (lambda s: print(s, file=sys.stderr, flush=True)))(line)
    from .cache import default_kernel_tree
    return default_kernel_tree(choice.debian_version)


# ---------------------------------------------------------------- config show

def effective(root, settings: Settings) -> List[Tuple[str, str, str]]:
    """(key, value, source) for every setting: what `zstest config show` prints."""
    rows = []
    choice = kernel_choice(Path(settings.kernel_hint) if settings.kernel_hint else None, settings)
    kernel = choice.describe()
    if choice.debian_version:
        from .cache import cache_root
        kernel += f" ({cache_root() / 'src' / f'linux-source-{choice.debian_version}'})"
    rows.append(("kernel", kernel, choice.source))
    names = _command_names(root)
    for name, key in KEYS.items():
        if name == "kernel":
            continue
        if name in settings.values:
            s = settings.values[name]
            rows.append((name, _show(s.value), s.source))
            continue
        rows.append((name, _show(key.default if key.default is not None
                                 else _param_default(names, key)), "default"))
    for cmd_path in sorted(settings.commands):
        for pname, s in sorted(settings.commands[cmd_path].items()):
            rows.append((f"{cmd_path}.{pname}", _show(s.value), s.source))
    return rows


def _param_default(names: Dict[str, Any], key: Key) -> Any:
    for where, pname in key.params:
        for cmd_path, command in names.items():
            if where not in ("*", cmd_path):
                continue
            for param in getattr(command, "params", []):
                default = param.default
                if param.name == pname and not callable(default) \
                        and not repr(default).startswith("Sentinel."):   # click 8.2+: unset
                    return default
    return None


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) if value else "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
