"""`zstest build`: configure and build a kernel, optionally with a series applied."""

from __future__ import annotations

from pathlib import Path

import click

from .. import options
from ..build import run_build
from ..errors import Finished
from . import lore_url_option
from .cell import cell_option


@click.command("build")
@click.option("--out", "out", type=click.Path(path_type=Path),
              help="Build directory. Default: ~/.cache/zstest/builds/<name> (and builds/last).")
@click.option("--quiet", "-q", is_flag=True,
              help="Print only the verdict line and errors (no progress, no patch table).")
@options.click_options(options.SERIES, options.BUILD)
@lore_url_option
@cell_option("build")
def build_command(out, quiet, **opts):
    """Build a kernel: config profiles, ccache, per-patch builds, build.json."""
    req = options.with_reproducer(_checked_request(opts, out=out, quiet=quiet))
    result = run_build(req, echo=click.echo)
    m = result.manifest
    if m.get("series") and not req.quiet:
        for p in m["series"]["patches"]:
            line = f"  {p['index']:>2} {p['subject'][:60]:<60} apply={p['apply']} build={p['build']}"
            click.echo(line)
            for w in p.get("new_warnings") or []:
                click.echo(f"       new warning: {w}")
    click.echo(f"kernel {m['kernel']['version']}: {result.build_dir}")
    return Finished(0, build_dir=result.build_dir)


def _checked_request(opts: dict, **fixed):
    """The build's request; --each and --prefix without a series are usage errors (exit 2)."""
    if opts.get("each") and not opts.get("series"):
        raise click.UsageError("--each needs --series.")
    if opts.get("prefix") is not None and not opts.get("series"):
        raise click.UsageError("--prefix needs --series.")
    return options.build_request(opts, **fixed)


COMMANDS = [build_command]
