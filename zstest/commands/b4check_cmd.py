"""`zstest b4-check`: a b4 review check command (b4.review-series-check-cmd and
b4.review-perpatch-check-cmd). The message comes on stdin; stdout carries b4's JSON array and
nothing else, whatever happens: every line of progress goes to stderr (fd 1 points there while
the check runs, for the build's and QEMU's children too)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click

from .. import options
from ..errors import EXIT_INTERRUPTED, ZstestError
from . import lore_url_option


@contextlib.contextmanager
def _json_only_stdout():
    """Yield a writer to the real stdout; meanwhile fd 1 (and sys.stdout) go to stderr."""
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)
    try:
        yield lambda text: os.write(real, text.encode())
    finally:
        sys.stdout.flush()
        os.dup2(real, 1)
        os.close(real)


def _print_entries(write, entries) -> None:
    write(json.dumps(entries, indent=2) + "\n")


class _JsonOnUsageError(click.Command):
    """A mistyped option in b4's config is an entry b4 shows too (click's usage text goes
    to stderr, exit 2 as for every command)."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            from ..b4check.render import error_check
            _print_entries(lambda text: sys.stdout.write(text),
                           error_check(f"zstest b4-check: {exc.format_message()}"))
            sys.stdout.flush()
            raise


@click.command("b4-check", cls=_JsonOnUsageError)
@options.click_options(options.BUILD, options.BOOT, overrides={
    "kernel": {"help": "Kernel tree (default: the current directory when it is one, as b4 runs "
                       "checks in its repository; else the configured tree, else Debian's 6.1)."},
    "base": {"help": "Commit to apply the series on (default: the series' base-commit, or "
                     "b4's, when the tree has it)."}})
@click.option("--background", is_flag=True,
              help="Return at once with `warn: running, see URL` while the run goes on in a "
                   "detached process; a later call (b4's rerun) picks up the verdict.")
@click.option("--rerun", is_flag=True, help="Run again even when this patchset and these "
                                            "settings have a verdict.")
@click.option("--state-dir", "state_root", type=click.Path(file_okay=False, path_type=Path),
              help="Where each patchset's runs and verdicts are kept (default: "
                   "~/.cache/zstest/b4check).")
@click.option("--url-base", "url_base", metavar="URL",
              help="Where --state-dir is published (a static web server): the checks link "
                   "URL/<key>/ instead of a file:// URL.")
@lore_url_option
def b4_check(state_root, background, rerun, url_base, **opts) -> int:
    """Check the series of the message on stdin for b4's review view; print b4's JSON array.

    b4 runs it in its repository with the cover letter (series check) or one patch (per-patch
    check) on stdin, and B4_TRACKING_FILE for a tracked series. The whole series is found (b4's
    tracked thread, else the thread from --lore-url, else the message alone), built, booted and
    tested once per patchset hash and settings; every later call reuses that verdict."""
    from ..b4check import CheckRequest, check
    from ..b4check.render import error_check
    from ..series.lore import default_lore_url
    from ..settings import resolve_kernel

    with _json_only_stdout() as write:
        try:
            message = sys.stdin.buffer.read() if sys.stdin is not None else b""
            tracking = os.environ.get("B4_TRACKING_FILE")
            req = CheckRequest(message=message, topdir=Path.cwd(),
                               kernel=Path(resolve_kernel(opts["kernel"])),
                               build=options.build_request(opts),
                               boot=options.boot_request(opts), background=background,
                               rerun=rerun, state_root=state_root, url_base=url_base,
                               lore_url=default_lore_url(),
                               tracking_file=Path(tracking) if tracking else None)
            entries, code = check(req)
        except ZstestError as exc:
            entries, code = error_check(exc.message), exc.exit_code
        except KeyboardInterrupt:
            _print_entries(write, error_check("interrupted before a verdict."))
            return EXIT_INTERRUPTED
        except Exception as exc:
            _print_entries(write, error_check(f"zstest b4-check failed: {exc!r} (a zstest "
                                              f"bug: the traceback is on stderr).", "fail"))
            raise
        _print_entries(write, entries)
    return code


COMMANDS = [b4_check]
