"""`zstest boot-and-run` (and `zstest run` = build, then boot-and-run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from ..errors import BadInput, BuildFailed
from ..manifests import RESULTS_JSON, load_build
from ..matrix import cell_option
from ..suites import available_suites
from . import reproducer_argv


def boot_run_options(f):
    """The options boot-and-run and run share."""
    options = [
        click.option("--suite", default="default", show_default=True,
                     help=f"Guest suite: {', '.join(available_suites())}."),
        click.option("-k", "keyword", default="", help="Select tests by pytest -k expression."),
        click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path),
                     help="Also copy junit.xml here."),
        click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
                     help="Also copy results.json here."),
        click.option("--timeout", type=float, default=300.0, show_default=True,
                     help="Seconds a single guest command may take."),
        click.option("--run-timeout", type=float, default=3600.0, show_default=True,
                     help="Seconds the whole run may take, boot included; then the guest is stopped."),
        click.option("--repeat", type=click.IntRange(1, 1000), default=1, show_default=True,
                     help="Run the selected tests N times; results show pass counts."),
        click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto",
                     show_default=True, help="QEMU accelerator; auto probes KVM and falls back to TCG."),
        click.option("--memory", "memory_mb", type=int, default=None,
                     help="Guest RAM in MiB (default: the suite's)."),
        click.option("--quiet", "-q", is_flag=True,
                     help="Print only the verdict lines and errors (no progress, no tables)."),
        click.option("--boot-timeout", type=float, default=120.0, show_default=True,
                     help="Seconds from QEMU start to an SSH login before the boot counts as failed."),
        click.option("--append", "cmdline_extra", default="",
                     help="Extra kernel command line, e.g. 'zsmalloc.dyndbg=+p' or 'init=...'."),
        click.option("--stop-on-oops", is_flag=True, default=False,
                     help="After a kernel crash (oops, BUG, panic, lockup), stop instead of "
                          "running the remaining tests in a fresh guest."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def do_boot_and_run(build_dir, out, suite, keyword, junit, json_out, timeout, run_timeout,
                    repeat, accel, memory_mb, boot_timeout, cmdline_extra="",
                    stop_on_oops=False) -> int:
    from ..runner import BootRunRequest, boot_and_run, default_results_dir

    out = Path(out) if out else default_results_dir()
    click.echo(f"zstest: results in {out}")
    req = BootRunRequest(build_dir=Path(build_dir), out=out, suite=suite, keyword=keyword,
                         repeat=repeat, timeout=timeout, run_timeout=run_timeout, accel=accel,
                         memory_mb=memory_mb, boot_timeout=boot_timeout,
                         cmdline_extra=cmdline_extra, stop_on_oops=stop_on_oops,
                         on_progress=lambda msg: click.echo(f"zstest: {msg}"))
    try:
        run = boot_and_run(req)
    finally:
        for src, dest in (("junit.xml", junit), (RESULTS_JSON, json_out)):
            if dest and (out / src).exists():
                Path(dest).parent.mkdir(parents=True, exist_ok=True)
                if Path(dest).resolve() != (out / src).resolve():
                    shutil.copyfile(out / src, dest)
    click.echo("")
    click.echo((out / "summary.txt").read_text().rstrip())
    return run.exit_code


def _default_build_dir() -> Path:
    from ..build import last_build_dir
    last = last_build_dir()
    if last is None:
        raise BadInput("there is no build yet: run `zstest build` first or pass --build DIR.")
    return last


@click.command("boot-and-run")
@click.option("--build", "build_dir", type=click.Path(path_type=Path),
              help="A build directory (default: the last build).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="The results directory (default: a new one under ~/.cache/zstest/results).")
@boot_run_options
@cell_option("boot")
def boot_and_run_cmd(build_dir, out, quiet=False, **opts) -> int:
    """Boot a build's kernel under QEMU and run a guest suite over SSH."""
    build_dir = build_dir or _default_build_dir()
    return _maybe_quiet(quiet, out, lambda where: do_boot_and_run(build_dir, where, **opts))


def _maybe_quiet(quiet: bool, out, run) -> int:
    """--quiet: the run's chatter goes nowhere; then the summary's verdict block alone."""
    if not quiet:
        return run(out)
    import contextlib
    import os
    from ..runner import default_results_dir
    out = Path(out) if out else default_results_dir()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        code = run(out)
    summary = out / "summary.txt"
    if summary.is_file():
        click.echo(summary.read_text().split("\n\n")[0].rstrip())
    return code


_BOOT_RUN_PARAMS = {p.name for p in boot_and_run_cmd.params}


@click.command("run")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="The results directory (default: a new one under ~/.cache/zstest/results).")
@click.option("--build-out", type=click.Path(file_okay=False, path_type=Path),
              help="The build directory (default: ~/.cache/zstest/builds/<name>).")
@boot_run_options
@click.pass_context
@cell_option("run")
def run_command(ctx, out, build_out, **opts) -> int:
    """Build (as `zstest build`), then boot-and-run the result."""
    from ..build import BuildRequest, run_build

    build_opts = {k: v for k, v in opts.items() if k not in _BOOT_RUN_PARAMS}
    run_opts = {k: v for k, v in opts.items() if k in _BOOT_RUN_PARAMS}
    quiet = run_opts.pop("quiet", False)
    if build_opts.get("each") and not build_opts.get("series"):
        raise click.UsageError("--each needs --series.")
    req = BuildRequest(kernel=build_opts["kernel"], series=build_opts["series"],
                       base=build_opts["base"], configs=list(build_opts["configs"]) or ["base"],
                       each=build_opts["each"], out=build_out,
                       allow_config_drift=build_opts["allow_config_drift"],
                       jobs=build_opts["jobs"], kmod_dir=build_opts["kmod_dir"],
                       series_limit=build_opts.get("prefix"), command="run",
                       make_args=list(build_opts.get("make_args") or []), quiet=quiet,
                       series_config=not build_opts.get("no_series_config"),
                       require_built=bool(build_opts.get("require_built")),
                       argv=reproducer_argv("run"))
    try:
        result = run_build(req, echo=click.echo)
    except BuildFailed as exc:
        build_dir = getattr(exc, "build_dir", None)
        if build_dir is None or not _bootable(build_dir):
            raise
        # A middle patch broke the build but the whole series built: test that kernel too,
        # and still exit 4 if the tests pass. One error sentence: the tests' if they failed.
        click.echo(f"zstest: warning: {exc.message}", err=True)
        click.echo(f"zstest: the whole series built; testing it anyway ({build_dir})")
        code = _maybe_quiet(quiet, out, lambda where: do_boot_and_run(build_dir, where, **run_opts))
        if code != 0:
            return code
        raise exc
    if not quiet:
        click.echo(f"zstest: built {result.manifest['kernel']['version']} in {result.build_dir}")
    return _maybe_quiet(quiet, out, lambda where: do_boot_and_run(result.build_dir, where,
                                                                   **run_opts))


def _bootable(build_dir: Path) -> bool:
    try:
        manifest = load_build(build_dir)
    except BadInput:
        return False
    return manifest.bootable and (Path(build_dir) / "bzImage").is_file()


def _add_build_params() -> None:
    """`run` takes every option of `build` (but --out, which is the results dir here)."""
    from .build_cmd import build_command
    taken = {p.name for p in run_command.params}
    for param in build_command.params:
        if param.name not in taken and param.name != "out":
            run_command.params.append(param)


_add_build_params()

COMMANDS = [boot_and_run_cmd, run_command]
