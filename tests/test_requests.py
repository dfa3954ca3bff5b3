"""One table of build and boot options (zstest/options.py): every command that builds takes
every build option, every command that boots every boot option, and a request rendered back
to a command line parses to the same request."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import pytest

from zstest import options
from zstest.cli import cli
from zstest.settings import default_map, load_settings

# The commands that run a build, and those that boot a guest.
BUILDING = ["build", "run", "compare", "bisect", "mutate", "b4-check", "watch"]
BOOTING = ["boot-and-run", "run", "compare", "bisect", "mutate", "b4-check", "watch"]
# What a command leaves out on purpose (and why, in options.click_options' caller).
LEFT_OUT = {("mutate", "base"),      # mutants are planned on the tree's HEAD
            ("watch", "suite")}      # watch's --suite is repeatable: one run per suite


def _options_of(command: str) -> dict:
    return {p.name: p for p in cli.commands[command].params if isinstance(p, click.Option)}


@pytest.mark.parametrize("command", BUILDING)
def test_every_building_command_takes_every_build_option(command):
    have = _options_of(command)
    for option in options.OPTIONS:
        if option.group != options.BUILD or (command, option.name) in LEFT_OUT:
            continue
        assert option.name in have, f"zstest {command} lacks {option.flags[0]}"
        assert set(option.flags) <= set(have[option.name].opts), (command, option.name)


@pytest.mark.parametrize("command", BOOTING)
def test_every_booting_command_takes_every_boot_option(command):
    have = _options_of(command)
    for option in options.OPTIONS:
        if option.group != options.BOOT or (command, option.name) in LEFT_OUT:
            continue
        assert option.name in have, f"zstest {command} lacks {option.flags[0]}"
        assert set(option.flags) <= set(have[option.name].opts), (command, option.name)


def test_series_and_run_options_are_where_they_belong():
    for command in ("build", "run"):
        assert set(options.names(options.SERIES)) <= set(_options_of(command))
    for command in ("boot-and-run", "run"):
        assert set(options.names(options.RUN)) <= set(_options_of(command))


def _parse(argv: list) -> dict:
    """argv (["zstest", command, ...]) parsed by the command itself, no config file read."""
    command = cli.commands[argv[1]]
    with command.make_context(argv[1], list(argv[2:]), default_map={}) as ctx:
        return dict(ctx.params)


# Real command lines (README, CI templates, tests), each as command_line renders it back.
LINES = [
    ["zstest", "build", "--out", "/srv/b", "--kernel", "/src/linux", "--series",
     "kernel-patches/demo-migrated/v1", "--each", "--make-arg", "LLVM=1", "--make-arg",
     "KCFLAGS=-Wno-x", "--jobs", "2", "--config", "base", "--config", "debug"],
    ["zstest", "build", "--series", "v2.mbx", "--base", "v6.1", "--prefix", "3",
     "--no-series-config", "--require-built", "--coverage", "--arch", "arm64", "--page-size",
     "64k", "--config", "base"],
    ["zstest", "build", "--kmod-dir", "/src/kmod", "--allow-config-drift", "--config",
     "/home/me/full.config"],
    ["zstest", "build", "--series", "kernel-patches/demo-migrated/v2", "--toolchain",
     "clang-16", "--config", "base"],
    ["zstest", "run", "--build-out", "/srv/b", "--series", "20160520.msgid@x", "--config",
     "base", "--out", "/srv/r", "--suite", "migration", "-k", "compact and not hotplug",
     "--repeat", "3", "--timeout", "60", "--run-timeout", "900", "--accel", "tcg",
     "--memory", "640", "--boot-timeout", "30", "--append", "zsmalloc.dyndbg=+p",
     "--stop-on-oops"],
    ["zstest", "boot-and-run", "--build", "/srv/b", "--out", "/srv/r", "--suite", "boot"],
    ["zstest", "boot-and-run", "--build", "b", "--out", "r", "--suite", "failure-probe",
     "--vmcore", "/srv/core", "--keep-vm-on-failure"],
]


def _requests(argv: list):
    params = _parse(argv)
    command = argv[1]
    build = boot = None
    if command in ("build", "run"):
        build = options.build_request(params, out=params.get("out" if command == "build"
                                                             else "build_out"))
    if command in ("boot-and-run", "run"):
        boot = options.boot_request(params, build_dir=params.get("build_dir"),
                                    out=params.get("out"))
    return build, boot


def _comparable(req):
    return None if req is None else replace(req, argv=[], command="", quiet=False) \
        if hasattr(req, "argv") else replace(req, command=[])


@pytest.mark.parametrize("argv", LINES, ids=lambda a: " ".join(a[1:4]))
def test_a_rendered_request_is_the_line_it_came_from(argv):
    build, boot = _requests(argv)
    assert options.command_line(argv[1], build=build, boot=boot) == argv


@pytest.mark.parametrize("argv", LINES, ids=lambda a: " ".join(a[1:4]))
def test_render_then_parse_gives_the_same_requests(argv):
    build, boot = _requests(argv)
    again = _requests(options.command_line(argv[1], build=build, boot=boot))
    assert [_comparable(r) for r in again] == [_comparable(build), _comparable(boot)]


def test_defaults_are_left_out_but_configs_and_suite_are_always_said():
    build, boot = _requests(["zstest", "run"])
    assert options.command_line("run", build=build, boot=boot) == [
        "zstest", "run", "--config", "base", "--suite", "default"]


@pytest.mark.parametrize("argv, field, value", [
    (["zstest", "compare", "a", "b", "--accel", "tcg"], "accel", "tcg"),
    (["zstest", "mutate", "--file", "mm/zsmalloc.c", "--arch", "arm64"], "arch", "arm64"),
    (["zstest", "bisect", "--series", "s", "--make-arg", "W=1"], "make_args", ["W=1"]),
    (["zstest", "b4-check", "--append", "quiet"], "cmdline_extra", "quiet"),
    (["zstest", "watch", "--require-built"], "require_built", True),
    (["zstest", "compare", "a", "b", "--toolchain", "gcc-11"], "toolchain", "gcc-11"),
    (["zstest", "b4-check", "--toolchain", "clang-16"], "toolchain", "clang-16"),
])
def test_the_options_a_command_lacked_reach_its_requests(argv, field, value):
    params = _parse(argv)
    req = options.build_request(params) if field in BuildRequestFields else \
        options.boot_request(params)
    assert getattr(req, field) == value


BuildRequestFields = {f for f in options.BuildRequest.__dataclass_fields__}


def test_a_config_file_sets_a_build_option_of_every_command(tmp_path, monkeypatch):
    """zstest.toml's make_args and toolchain (top-level keys) and [mutate] arch reach those
    commands."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ZSTEST_KERNEL", raising=False)
    (tmp_path / "zstest.toml").write_text('make_args = ["LLVM=1"]\ntoolchain = "clang-16"\n'
                                          '[mutate]\narch = "arm64"\n')
    dmap = default_map(cli, load_settings(cli, [], cwd=tmp_path))
    for command in BUILDING:
        assert dmap[command]["make_args"] == ["LLVM=1"], command
        assert dmap[command]["toolchain"] == "clang-16", command
    assert dmap["mutate"]["arch"] == "arm64"


def test_a_stage_builds_from_the_command_options(tmp_path):
    """bisect's prefix build: the options' template with the prefix's series, out and limit;
    its reproducer is the `zstest build` line of exactly that."""
    from zstest.bisect import BisectRequest, _Bisector
    params = _parse(["zstest", "bisect", "--series", "s.mbx", "--kernel", "/src/linux",
                     "--make-arg", "LLVM=1", "--arch", "arm64", "--append", "quiet"])
    bisector = _Bisector(BisectRequest(series="s.mbx", out=tmp_path,
                                       build=options.build_request(params),
                                       boot=options.boot_request(params),
                                       on_progress=lambda s: None))
    bisector.n, bisector.series = 3, type("S", (), {"patches": [
        type("P", (), {"subject": f"p{k}"})() for k in (1, 2, 3)]})()
    _, breq = bisector._prefix_build(2)
    assert (breq.series, breq.series_limit, breq.make_args, breq.arch) == \
        ("s.mbx", 2, ["LLVM=1"], "arm64")
    assert ["zstest", breq.command] + breq.argv == [
        "zstest", "build", "--out", str(tmp_path / "prefix-02" / "build"), "--kernel",
        "/src/linux", "--series", "s.mbx", "--prefix", "2", "--make-arg", "LLVM=1", "--arch",
        "arm64", "--config", "base"]
    assert bisector.req.boot.cmdline_extra == "quiet"


def test_options_own_no_path_of_their_own():
    """Paths stay as given (relative stays relative): a reproducer says what was typed."""
    build, _ = _requests(["zstest", "build", "--kernel", "linux", "--config", "base"])
    assert build.kernel == Path("linux")


def test_arch_and_page_size_are_resolved_once_into_the_target():
    """--page-size the arch's own is the default (said by no word); a page size the arch does
    not offer is exit 2 naming the choices, before anything is built."""
    from zstest.errors import BadInput
    build, _ = _requests(["zstest", "build", "--arch", "x86_64", "--page-size", "4k"])
    assert (build.arch, build.page_size) == ("x86_64", None)
    assert options.build_argv(build) == ["--config", "base"]
    build, _ = _requests(["zstest", "build", "--arch", "arm64", "--page-size", "65536"])
    assert options.build_argv(build) == ["--arch", "arm64", "--page-size", "64k", "--config",
                                         "base"]
    with pytest.raises(BadInput, match="16k"):
        _requests(["zstest", "build", "--arch", "arm64", "--page-size", "3k"])


def test_toolchain_reaches_build_json_and_its_reproducer(tmp_path):
    """--toolchain through the one table: the build records it and says it in the reproducer
    (the stand-in tree's make fails at once: exit 4, build.json written all the same)."""
    import json

    from conftest import run_zstest
    from test_settings import make_tree
    tree = make_tree(tmp_path / "linux", git=True)
    (tmp_path / "xdg").mkdir()
    env = {"ZSTEST_CACHE": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "ZSTEST_KERNEL": "", "NO_COLOR": "1"}
    r = run_zstest("build", "--toolchain", "clang-16", "--out", tmp_path / "b", cwd=tree,
                   env=env, timeout=300)
    assert r.returncode in (4, 6), r.stderr
    data = json.loads((tmp_path / "b" / "build.json").read_text())
    assert data["reproducer"] == f"zstest build --out {tmp_path / 'b'} --toolchain clang-16 " \
                                 f"--config base"
    assert data["toolchain"]["name"] == "clang-16"
    bad = run_zstest("build", "--toolchain", "icc", cwd=tree, env=env, timeout=120)
    assert bad.returncode == 2 and "'icc' is not one of" in bad.stderr
