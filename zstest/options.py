"""Every build and boot option, declared once: the click options of every command that builds
or boots, the requests made from their values, and the command line rendered back from a request.

One table (OPTIONS) says, per option, its flags, its click type and default, its help and the
request field it fills. From it:
  click_options(groups)         the click decorator of a command (build, run, compare, bisect,
                                mutate, b4-check, watch; shell takes part of the boot group)
  build_request(params, **set)  a BuildRequest from any command's parsed values
  boot_request(params, **set)   a BootRunRequest likewise
  command_line(command, build=, boot=)
                                ["zstest", command, ...] that makes that build (and run):
                                build.json's reproducer and results.json's `command`
  BuildsAndBoots                what a stage request (bisect, b4-check, compare --perf, mutate)
                                reads of the build and boot requests it holds
Adding a build option is one row here (and the request field it fills); settings (zstest.toml)
give every option a default through click's default_map, by the row's parameter name.

Groups: "build" (how a kernel is built: every build-running command), "series" (which patches:
build and run), "boot" (how a guest is booted and the suite run: every booting command), "run"
(boot-and-run and run only).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import click

from .arch import DEFAULT_ARCH
from .build import BuildRequest
from .toolchain import DEFAULT_TOOLCHAIN
from .runner import BootRunRequest

BUILD, SERIES, BOOT, RUN = "build", "series", "boot", "run"


@dataclass(frozen=True)
class Option:
    name: str                      # click's parameter name (settings keys, --cell, default_map)
    flags: Tuple[str, ...]         # the first one is what a rendered command line uses
    group: str
    help: Any                      # the text, or a function returning it (built lazily)
    field: str = ""                # the request's attribute; "" : the same as name
    # value / flag / multiple / off (a flag that makes field False) / target (--arch and
    # --page-size: resolved together into one Target, rendered by Target.argv)
    kind: str = "value"
    type: Any = None               # a Python type, or a factory of a click type (built lazily)
    default: Any = None
    show_default: bool = False
    metavar: Optional[str] = None
    always: bool = False           # rendered even when it has the request's default value

    @property
    def attr(self) -> str:
        return self.field or self.name

    def click_option(self, **override):
        kwargs: Dict[str, Any] = {"help": self.help() if callable(self.help) else self.help}
        if self.kind in ("flag", "off"):
            kwargs["is_flag"] = True
        elif self.kind == "multiple":
            kwargs["multiple"] = True
        else:
            kwargs["default"] = self.default
        if self.type is not None:   # a Python type, or a factory of a click type
            kwargs["type"] = self.type if isinstance(self.type, type) else self.type()
        if self.show_default:
            kwargs["show_default"] = True
        if self.metavar:
            kwargs["metavar"] = self.metavar
        kwargs.update(override)
        return click.option(*self.flags, self.name, **kwargs)


def _arch_choice():
    from .arch import known_arches
    return click.Choice(known_arches())


def _toolchain_choice():
    from .toolchain import known_toolchains
    return click.Choice(known_toolchains())


def _suites() -> List[str]:
    from .suites import available_suites
    return available_suites()


_PATH = lambda: click.Path(path_type=Path)                          # noqa: E731
_FILE = lambda: click.Path(dir_okay=False, path_type=Path)          # noqa: E731
_ACCEL = lambda: click.Choice(["auto", "kvm", "tcg"])                # noqa: E731

OPTIONS: Tuple[Option, ...] = (
    # -- build: how the kernel is built
    Option("kernel", ("--kernel",), BUILD, type=_PATH,
           help="Kernel tree (git or plain). Default: the current directory if it is a kernel "
                "tree, then $ZSTEST_KERNEL, then zstest.toml's kernel, then Debian's "
                "linux-source-6.1."),
    Option("series", ("--series",), SERIES,
           help="Patch series to apply first (mbox, b4's .mbx, dir, quilt, A..B, msgid, lore "
                "URL, - for stdin)."),
    Option("base", ("--base",), BUILD,
           help="Commit to apply the series on (git trees). Default: HEAD."),
    Option("prefix", ("--prefix",), SERIES, field="series_limit",
           type=lambda: click.IntRange(min=0),
           help="Apply only the first N patches of the series (what `zstest bisect` builds)."),
    Option("each", ("--each",), SERIES, kind="flag", help="Apply and build patch by patch."),
    Option("make_args", ("--make-arg",), BUILD, kind="multiple", metavar="VAR=VALUE",
           help="Pass VAR=VALUE to every make call (e.g. LLVM=1, CC=clang, W=1); repeatable."),
    Option("jobs", ("--jobs", "-j"), BUILD, type=lambda: click.IntRange(min=1),
           help="make -j (default: CPU count)."),
    Option("kmod_dir", ("--kmod-dir",), BUILD, type=_PATH,
           help="Out-of-tree module to build against the kernel (default: the repo's kmod/)."),
    Option("allow_config_drift", ("--allow-config-drift",), BUILD, kind="flag",
           help="Build even when requested config options did not survive olddefconfig."),
    Option("no_series_config", ("--no-series-config",), BUILD, kind="off",
           field="series_config",
           help="Do not turn on the Kconfig symbols the series adds or that guard the files it "
                "touches (by default they are, so the series' code is compiled)."),
    Option("require_built", ("--require-built",), BUILD, kind="flag",
           help="Fail (exit 4) when a C file the series touches was not compiled."),
    Option("coverage", ("--coverage",), BUILD, kind="flag",
           help="Build with gcov for zsmalloc, zram and the series' C files (the `coverage` "
                "profile); the run then reports which of the series' lines each test ran."),
    Option("arch", ("--arch",), BUILD, kind="target", type=_arch_choice, default=DEFAULT_ARCH,
           show_default=True,
           help="Build for this architecture (cross-built; booted under TCG where the host's "
                "KVM cannot run it)."),
    Option("page_size", ("--page-size",), BUILD, kind="target", metavar="SIZE",
           help="The kernel's page size where the arch offers a choice (arm64: 4k, 16k, 64k). "
                "Default: the arch's."),
    Option("toolchain", ("--toolchain",), BUILD, type=_toolchain_choice,
           default=DEFAULT_TOOLCHAIN, show_default=True,
           help="The compiler that builds the kernel (a record of zstest/toolchains.toml); "
                "build.json records its name and version. --make-arg stays for extras."),
    Option("configs", ("--config",), BUILD, kind="multiple", metavar="PROFILE|FRAGMENT|.config",
           always=True,
           help="Config profile (base, debug), fragment file, or your own full .config (the "
                "start instead of tinyconfig; zstest's required options go on top); repeatable, "
                "merged in order. Default: base."),
    # -- boot: how the guest is booted and the suite run
    Option("suite", ("--suite",), BOOT, default="default", show_default=True, always=True,
           help=lambda: f"Guest suite: {', '.join(_suites())}."),
    Option("keyword", ("-k",), BOOT, default="", help="Select tests by pytest -k expression."),
    Option("repeat", ("--repeat",), RUN, type=lambda: click.IntRange(1, 1000), default=1,
           show_default=True, help="Run the selected tests N times; results show pass counts."),
    Option("timeout", ("--timeout",), BOOT, type=float, default=300.0, show_default=True,
           help="Seconds a single guest command may take."),
    Option("run_timeout", ("--run-timeout",), BOOT, type=float, default=3600.0,
           show_default=True,
           help="Seconds one run (one guest suite, boot included) may take; then the guest is "
                "stopped."),
    Option("accel", ("--accel",), BOOT, type=_ACCEL, default="auto", show_default=True,
           help="QEMU accelerator; auto probes KVM and falls back to TCG."),
    Option("memory_mb", ("--memory",), BOOT, type=int,
           help="Guest RAM in MiB (default: the suite's)."),
    Option("boot_timeout", ("--boot-timeout",), BOOT, type=float, default=120.0,
           show_default=True,
           help="Seconds from QEMU start to an SSH login before the boot counts as failed."),
    Option("cmdline_extra", ("--append",), BOOT, default="",
           help="Extra kernel command line, e.g. 'zsmalloc.dyndbg=+p' or 'init=...'."),
    Option("vmcore", ("--vmcore",), RUN, type=_FILE,
           help="When the kernel panics, save the guest's memory here (ELF, for `crash`; a "
                "second guest's panic goes to FILE.2, ...)."),
    Option("stop_on_oops", ("--stop-on-oops",), RUN, kind="flag",
           help="After a kernel crash (oops, BUG, panic, lockup), stop instead of running the "
                "remaining tests in a fresh guest."),
    Option("keep_vm_on_failure", ("--keep-vm-on-failure",), RUN, kind="flag",
           help="When a test fails (or the kernel crashes and the guest still answers), stop "
                "the run there and keep that guest running: print the ssh command to reach it "
                "and wait until Ctrl-C (exit 130) or until QEMU exits."),
)

BY_NAME: Dict[str, Option] = {o.name: o for o in OPTIONS}


def names(*groups: str) -> List[str]:
    return [o.name for o in OPTIONS if o.group in groups]


def click_options(*groups: str, exclude: Iterable[str] = (), only: Iterable[str] = (),
                  overrides: Optional[Mapping[str, Mapping[str, Any]]] = None):
    """The decorator that gives a command every option of these groups (in table order);
    overrides: name -> click keyword arguments that differ for this command."""
    exclude, only, overrides = set(exclude), set(only), dict(overrides or {})
    chosen = [o for o in OPTIONS if o.group in groups and o.name not in exclude
              and (not only or o.name in only)]

    def decorate(f):
        for option in reversed(chosen):
            f = option.click_option(**overrides.get(option.name, {}))(f)
        return f
    return decorate


# ---------------------------------------------------------------- options -> requests

def _request_values(params: Mapping[str, Any], groups: Sequence[str]) -> Dict[str, Any]:
    values: Dict[str, Any] = {}
    for option in OPTIONS:
        if option.group not in groups or option.name not in params:
            continue
        value = params[option.name]
        if option.kind == "multiple":
            value = list(value or [])
        elif option.kind == "off":
            value = not value
        elif option.kind == "flag":
            value = bool(value)
        values[option.attr] = value
    if "configs" in values and not values["configs"]:
        values["configs"] = ["base"]
    if "arch" in values or "page_size" in values:
        values.update(_target_fields(values.get("arch"), values.get("page_size")))
    if values.get("vmcore"):
        values["vmcore"] = Path(values["vmcore"]).expanduser().resolve()
    return values


def _target_fields(arch: Optional[str], page_size: Optional[str]) -> Dict[str, Any]:
    """--arch and --page-size resolved once (BadInput, exit 2, naming the choices); the page
    size kept only when it is not the arch's own."""
    from .target import Target
    target = Target.from_options(arch, page_size)
    return {"arch": target.name,
            "page_size": None if target.default_page_size else target.page_size_name}


def build_request(params: Mapping[str, Any], **fixed) -> BuildRequest:
    """The BuildRequest of a command's parsed options (any command: those it lacks keep the
    request's defaults); fixed: what the command itself decides (out, series, command...)."""
    return BuildRequest(**{**_request_values(params, (BUILD, SERIES)), **fixed})


def boot_request(params: Mapping[str, Any], **fixed) -> BootRunRequest:
    """The BootRunRequest of a command's parsed options; fixed: build_dir, out, progress..."""
    values = {"build_dir": None, "out": None, **_request_values(params, (BOOT, RUN)), **fixed}
    if values["build_dir"] is not None:
        values["build_dir"] = Path(values["build_dir"])
    if values["out"] is not None:
        values["out"] = Path(values["out"])
    return BootRunRequest(**values)


# ---------------------------------------------------------------- requests -> command lines

def _word(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _render(req: Any, default: Any, groups: Sequence[str]) -> List[str]:
    argv: List[str] = []
    for option in OPTIONS:
        if option.group not in groups or not hasattr(req, option.attr):
            continue
        value, flag = getattr(req, option.attr), option.flags[0]
        if option.kind == "target":
            argv += _target_argv(req) if option.name == "arch" else []
            continue
        if value == getattr(default, option.attr) and not option.always:
            continue
        if option.kind == "off":
            argv += [] if value else [flag]
        elif option.kind == "flag":
            argv += [flag] if value else []
        elif option.kind == "multiple":
            for item in value or []:
                argv += [flag, _word(item)]
        elif value is not None:
            argv += [flag, _word(value)]
    return argv


def _target_argv(req: BuildRequest) -> List[str]:
    from .target import Target
    return Target.from_options(req.arch, req.page_size).argv()


def build_argv(req: BuildRequest) -> List[str]:
    """The build options of req as a command line (those at their default left out)."""
    return _render(req, BuildRequest(), (SERIES, BUILD))


def boot_argv(req: BootRunRequest) -> List[str]:
    """The boot and run options of req as a command line (those at their default left out)."""
    return _render(req, BootRunRequest(build_dir=Path("."), out=Path(".")), (BOOT, RUN))


def command_line(command: str, build: Optional[BuildRequest] = None,
                 boot: Optional[BootRunRequest] = None) -> List[str]:
    """["zstest", command, ...]: the one line that makes this build (build), this run of a
    build (boot-and-run) or both (run); every value explicit, none left to a config file."""
    argv = ["zstest", command]
    if command == "boot-and-run":
        argv += ["--build", str(boot.build_dir)] if boot.build_dir is not None else []
    elif build is not None:
        out_flag = "--out" if command == "build" else "--build-out"
        argv += [out_flag, str(build.out)] if build.out is not None else []
        argv += build_argv(build)
    if boot is not None and command != "build":
        argv += ["--out", str(boot.out)] if boot.out is not None else []
        argv += boot_argv(boot)
    return argv


def with_command(boot: BootRunRequest, build: Optional[BuildRequest] = None) -> BootRunRequest:
    """boot with results.json's `command` set, when its caller did not: the `zstest run` line
    of build and boot, or the `zstest boot-and-run` line of boot alone."""
    if boot.command:
        return boot
    line = command_line("run", build=build, boot=boot) if build is not None else \
        command_line("boot-and-run", boot=boot)
    return replace(boot, command=line)


def with_reproducer(build: BuildRequest, boot: Optional[BootRunRequest] = None,
                    command: Optional[str] = None) -> BuildRequest:
    """build, its argv and command set to the line that makes it (build.json's reproducer):
    `zstest build ...`, or `zstest run ...` when the build is the first half of a run."""
    command = command or ("run" if boot is not None else "build")
    line = command_line(command, build=build, boot=boot)
    return replace(build, command=command, argv=line[2:])


# ---------------------------------------------------------------- stage requests

def build_template() -> BuildRequest:
    """A stage's build request before a command's options fill it (series and out: per use)."""
    return BuildRequest()


def boot_template(**fixed) -> BootRunRequest:
    """A stage's boot request likewise (build_dir and out: per boot); fixed: e.g. its suite."""
    return BootRunRequest(build_dir=None, out=None, **fixed)


class BuildsAndBoots:
    """A stage request (bisect, b4-check, compare --perf, mutate) that builds and boots through
    its `build` and `boot` requests: what it reads of them, one name each, never a copy."""
    build: BuildRequest
    boot: BootRunRequest

    @property
    def base(self) -> Optional[str]:
        return self.build.base

    @property
    def configs(self) -> List[str]:
        return self.build.configs

    @property
    def coverage(self) -> bool:
        return self.build.coverage

    @property
    def suite(self) -> str:
        return self.boot.suite

    @property
    def keyword(self) -> str:
        return self.boot.keyword

    @property
    def memory_mb(self) -> Optional[int]:
        return self.boot.memory_mb
