"""The zstest command line: parse options, call a stage, print. Nothing more.

Each command group lives in zstest/commands/; stages never import this file.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

import click

from . import __version__
from .errors import (EXIT_APPLY, EXIT_BOOT, EXIT_BUILD, EXIT_INTERRUPTED, EXIT_PREREQ, EXIT_USAGE,
                     Interrupted, ZstestError)
from .proc import CommandError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="zstest")
@click.option("-v", "--verbose", is_flag=True, help="Log every external command.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Validate zsmalloc/zram kernel patch series: apply, build, boot, test."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="zstest: %(message)s")
    # zstest.toml / config.toml -> click's default_map: explicit options still win.
    from . import settings
    argv = ctx.obj.get("argv") if isinstance(ctx.obj, dict) else None
    loaded = settings.load_settings(cli, sys.argv[1:] if argv is None else argv)
    settings.set_current(loaded)
    ctx.default_map = settings.default_map(cli, loaded)


# The order of `zstest --help`; any other zstest/commands/*_cmd.py module follows, by name.
_COMMAND_ORDER = ["doctor_cmd", "series_cmd", "build_cmd", "vm_cmd", "run_cmd", "config_cmd"]


def _register() -> None:
    import importlib
    import pkgutil
    from . import commands
    found = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if m.name.endswith("_cmd"))
    for name in _COMMAND_ORDER + [n for n in found if n not in _COMMAND_ORDER]:
        module = importlib.import_module(f".commands.{name}", __package__)
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def _on_sigterm(signum, frame):
    raise Interrupted()


# The exception a signal handler raises lands wherever the main thread is, a finalizer too (a
# __del__, a weakref callback such as threading's WeakSet of threads): there Python prints
# "Exception ignored" and drops it, and the stop is lost (seen in CI: a SIGTERM during watch's
# perf stage was dropped and the run went on). Such a stop is sent again, 10 ms later.
_RESEND = ((Interrupted, signal.SIGTERM), (KeyboardInterrupt, signal.SIGINT))
_other_unraisable = sys.unraisablehook


def _on_unraisable(unraisable) -> None:
    for kind, signum in _RESEND:
        if isinstance(unraisable.exc_value, kind):
            threading.Timer(0.01, os.kill, (os.getpid(), signum)).start()
            return
    _other_unraisable(unraisable)


def _install_signal_handlers() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    # Python installs no SIGINT handler when SIGINT was ignored at start (a shell script's
    # background job: `zstest run ... & wait`); Ctrl-C must still stop zstest.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    global _other_unraisable
    if sys.unraisablehook is not _on_unraisable:
        _other_unraisable = sys.unraisablehook
        sys.unraisablehook = _on_unraisable


def main(argv=None) -> int:
    """Entry point: ZstestError -> its sentence and exit code; Ctrl-C/SIGTERM -> 130."""
    _install_signal_handlers()
    try:
        rv = cli.main(args=argv, prog_name="zstest", standalone_mode=False,
                      obj={"argv": list(argv) if argv is not None else sys.argv[1:]})
    except ZstestError as exc:
        click.echo(f"zstest: error: {exc.message}", err=True)
        if exc.detail:
            click.echo(exc.detail.rstrip(), err=True)
        return _exit(exc.exit_code)
    except CommandError as exc:
        # a safety net: every stage turns its own commands' failures into its sentence and code
        err = command_error(exc, argv if argv is not None else sys.argv[1:])
        click.echo(f"zstest: error: {err.message}", err=True)
        click.echo(err.detail.rstrip(), err=True)
        return _exit(err.exit_code)
    except click.exceptions.Abort:
        click.echo("zstest: interrupted", err=True)
        return _exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("zstest: interrupted", err=True)
        return _exit(EXIT_INTERRUPTED)
    except click.exceptions.Exit as exc:
        return _exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return _exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    return _exit(rv if isinstance(rv, int) else 0)


# The stage a command runs when one of its external commands fails unhandled; any other
# command: a host tool failed (exit 6).
_COMMAND_STAGE_CODES = {"build": EXIT_BUILD, "series": EXIT_APPLY, "boot-and-run": EXIT_BOOT,
                        "run": EXIT_BOOT, "shell": EXIT_BOOT, "image": EXIT_PREREQ}


def command_error(exc: CommandError, argv) -> ZstestError:
    """exc as one sentence with the exit code of the stage the zstest command ran."""
    command = next((str(a) for a in argv if not str(a).startswith("-")), "")
    last = exc.tail.strip().splitlines()[-1:] or [""]
    reason = f" ({last[0].strip()[:200]})" if last[0].strip() else ""
    return ZstestError(f"an external command failed: {exc.summary()}{reason}.",
                       _COMMAND_STAGE_CODES.get(command, EXIT_PREREQ), detail=exc.tail)


def _exit(code: int) -> int:
    if __name__ == "__main__" or os.environ.get("_ZSTEST_NO_EXIT"):
        return code
    sys.exit(code)


if __name__ == "__main__":
    sys.exit(main())
