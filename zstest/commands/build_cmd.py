"""`zstest build`: configure and build a kernel, optionally with a series applied."""

from __future__ import annotations

from pathlib import Path

import click

from ..build import BuildRequest, run_build
from . import arch_options, lore_url_option, reproducer_argv
from .cell import cell_option


@click.command("build")
@click.option("--kernel", "kernel", type=click.Path(path_type=Path),
              help="Kernel tree (git or plain). Default: the current directory if it is a kernel tree, then $ZSTEST_KERNEL, then zstest.toml's kernel, then Debian's linux-source-6.1.")
@click.option("--series", "series", help="Patch series to apply first (mbox, b4's .mbx, dir, quilt, A..B, msgid, lore URL, - for stdin).")
@lore_url_option
@click.option("--base", "base", help="Commit to apply the series on (git trees). Default: HEAD.")
@click.option("--config", "configs", multiple=True, metavar="PROFILE|FRAGMENT|.config",
              help="Config profile (base, debug), fragment file, or your own full .config "
                   "(the start instead of tinyconfig; zstest's required options go on top); "
                   "repeatable, merged in order.")
@click.option("--each", is_flag=True, help="Apply and build patch by patch.")
@click.option("--out", "out", type=click.Path(path_type=Path),
              help="Build directory. Default: ~/.cache/zstest/builds/<name> (and builds/last).")
@click.option("--allow-config-drift", is_flag=True,
              help="Build even when requested config options did not survive olddefconfig.")
@click.option("--jobs", "-j", "jobs", type=click.IntRange(min=1), help="make -j (default: CPU count).")
@click.option("--kmod-dir", "kmod_dir", type=click.Path(path_type=Path),
              help="Out-of-tree module to build against the kernel (default: the repo's kmod/).")
@click.option("--prefix", "prefix", type=click.IntRange(min=0),
              help="Apply only the first N patches of the series (what `zstest bisect` builds).")
@click.option("--make-arg", "make_args", multiple=True, metavar="VAR=VALUE",
              help="Pass VAR=VALUE to every make call (e.g. LLVM=1, CC=clang, W=1); repeatable.")
@click.option("--quiet", "-q", is_flag=True,
              help="Print only the verdict line and errors (no progress, no patch table).")
@click.option("--no-series-config", "no_series_config", is_flag=True,
              help="Do not turn on the Kconfig symbols the series adds or that guard the files "
                   "it touches (by default they are, so the series' code is compiled).")
@click.option("--require-built", "require_built", is_flag=True,
              help="Fail (exit 4) when a C file the series touches was not compiled.")
@click.option("--coverage", "coverage", is_flag=True,
              help="Build with gcov for zsmalloc, zram and the series' C files (the `coverage` "
                   "profile); boot-and-run then reports which of the series' lines each test ran.")
@arch_options
@cell_option("build")
def build_command(kernel, series, base, configs, each, out, allow_config_drift, jobs, kmod_dir,
                  prefix, make_args, quiet, no_series_config, require_built, coverage, arch,
                  page_size):
    """Build a kernel: config profiles, ccache, per-patch builds, build.json."""
    if each and not series:
        raise click.UsageError("--each needs --series.")
    if prefix is not None and not series:
        raise click.UsageError("--prefix needs --series.")
    req = BuildRequest(kernel=kernel, series=series, base=base, series_limit=prefix,
                       configs=list(configs) or ["base"], each=each, out=out,
                       allow_config_drift=allow_config_drift, jobs=jobs, kmod_dir=kmod_dir,
                       make_args=list(make_args), quiet=quiet,
                       series_config=not no_series_config, require_built=require_built,
                       coverage=coverage, arch=arch, page_size=page_size,
                       argv=reproducer_argv("build"))
    result = run_build(req, echo=click.echo)
    m = result.manifest
    if m.get("series") and not quiet:
        for p in m["series"]["patches"]:
            line = f"  {p['index']:>2} {p['subject'][:60]:<60} apply={p['apply']} build={p['build']}"
            click.echo(line)
            for w in p.get("new_warnings") or []:
                click.echo(f"       new warning: {w}")
    click.echo(f"kernel {m['kernel']['version']}: {result.build_dir}")
    return 0


COMMANDS = [build_command]
