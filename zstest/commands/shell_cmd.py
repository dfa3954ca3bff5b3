"""`zstest shell`: a shell (or one command) in a booted guest of a build."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .. import options


@click.command("shell")
@click.option("--build", "build_dir", type=click.Path(path_type=Path),
              help="A build directory (default: the last build).")
@click.option("--command", "-c", "command", default=None,
              help="Run this command in the guest and exit with its status (no shell).")
@click.option("--gdb", is_flag=True,
              help="Start QEMU's gdb stub on a free 127.0.0.1 port (kernel booted nokaslr) and "
                   "print the gdb command line with the build's vmlinux.")
@click.option("--vmcore", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="When the kernel panics, save guest memory here (ELF, readable by crash).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where console.log goes (default: a new dir under ~/.cache/zstest/shell).")
@options.click_options(options.BOOT, only=("accel", "memory_mb", "boot_timeout", "cmdline_extra"),
                       overrides={"memory_mb": {"type": click.IntRange(min=128), "default": 1024,
                                                "show_default": True,
                                                "help": "Guest RAM in MiB."}})
def shell_command(build_dir, command, gdb, vmcore, out, memory_mb, accel, boot_timeout,
                  cmdline_extra) -> int:
    """Boot a build and open a shell in the guest (a TTY over SSH; a script when stdin is not a
    terminal). The guest is torn down on exit and on Ctrl-C."""
    from ..cache import cache_dir
    from ..shell import ShellRequest, check_request, open_shell
    from ..build import last_build_dir
    from ..errors import BadInput

    build_dir = build_dir or last_build_dir()
    if build_dir is None:
        raise BadInput("there is no build yet: run `zstest build` first or pass --build DIR.")
    req = ShellRequest(build_dir=build_dir,
                       out=out or cache_dir("shell") / time.strftime("%Y%m%d-%H%M%S"),
                       command=command, gdb=gdb, vmcore=vmcore, memory_mb=memory_mb,
                       accel=accel, boot_timeout=boot_timeout, cmdline_extra=cmdline_extra,
                       say=lambda msg: click.echo(f"zstest: {msg}", err=True))
    check_request(req)
    return open_shell(req)


COMMANDS = [shell_command]
