"""`zstest boot-and-run` (and `zstest run` = build, then boot-and-run)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import click

from ..errors import BadInput
from ..manifests import RESULTS_JSON
from ..suites import available_suites
from . import reproducer_argv
from .cell import cell_option


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
        click.option("--vmcore", type=click.Path(dir_okay=False, path_type=Path),
                     help="When the kernel panics, save the guest's memory here (ELF, for "
                          "`crash`; a second guest's panic goes to FILE.2, ...)."),
        click.option("--keep-vm-on-failure", is_flag=True, default=False,
                     help="When a test fails (or the kernel crashes and the guest still "
                          "answers), stop the run there and keep that guest running: print the "
                          "ssh command to reach it and wait until Ctrl-C (exit 130) or until "
                          "QEMU exits."),
        click.option("--affected/--no-affected", default=False,
                     help="Run only the tests whose stored coverage (the map a --coverage run "
                          "keeps) executes the lines changed since that map, plus the boot "
                          "checks; the whole suite when no map fits. results.json's selection "
                          "and summary.txt say what was skipped and why. --no-affected: the "
                          "whole suite even when zstest.toml says affected = true."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _run_request(build_dir, out, suite, keyword, timeout, run_timeout, repeat, accel, memory_mb,
                 boot_timeout, cmdline_extra="", stop_on_oops=False, vmcore=None,
                 keep_vm_on_failure=False, command=()):
    from ..pipeline import BootRunRequest
    return BootRunRequest(build_dir=Path(build_dir) if build_dir else None,
                          out=Path(out) if out else None, suite=suite, keyword=keyword,
                          repeat=repeat, timeout=timeout, run_timeout=run_timeout, accel=accel,
                          memory_mb=memory_mb, boot_timeout=boot_timeout,
                          cmdline_extra=cmdline_extra, stop_on_oops=stop_on_oops,
                          vmcore=Path(vmcore).expanduser().resolve() if vmcore else None,
                          keep_vm_on_failure=keep_vm_on_failure, command=list(command),
                          on_progress=lambda msg: click.echo(f"zstest: {msg}"),
                          say=lambda msg: click.echo(f"zstest: {msg}", err=True))


def _presented(junit, json_out, quiet):
    """How a boot-and-run looks on the terminal: where its results go, copies of junit.xml and
    results.json (also when it fails), then summary.txt (--quiet: its verdict block alone)."""
    @contextlib.contextmanager
    def around(req):
        out = Path(req.out)
        with contextlib.ExitStack() as stack:
            if quiet:   # the run's chatter goes nowhere
                stack.enter_context(contextlib.redirect_stdout(
                    stack.enter_context(open(os.devnull, "w"))))
            click.echo(f"zstest: results in {out}")
            try:
                yield
            finally:
                for src, dest in (("junit.xml", junit), (RESULTS_JSON, json_out)):
                    if dest and (out / src).exists():
                        Path(dest).parent.mkdir(parents=True, exist_ok=True)
                        if Path(dest).resolve() != (out / src).resolve():
                            shutil.copyfile(out / src, dest)
            click.echo("")
            click.echo((out / "summary.txt").read_text().rstrip())
        summary = out / "summary.txt"
        if quiet and summary.is_file():
            click.echo(summary.read_text().split("\n\n")[0].rstrip())
    return around


def _default_build_dir() -> Path:
    from ..pipeline import last_build_dir
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
def boot_and_run_cmd(build_dir, out, quiet=False, junit=None, json_out=None, **opts) -> int:
    """Boot a build's kernel under QEMU and run a guest suite over SSH."""
    from ..pipeline import boot_and_run, default_results_dir
    build_dir = build_dir or _default_build_dir()
    affected = opts.pop("affected", False)
    req = _run_request(build_dir, out or default_results_dir(),
                       command=["zstest", "boot-and-run"] + reproducer_argv("boot-and-run"),
                       **opts)
    if affected:
        from ..affected import narrow
        req = narrow(req)
    with _presented(junit, json_out, quiet)(req):
        run = boot_and_run(req)
    return run.exit_code


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
    from ..pipeline import BuildRequest, PipelineRequest, run_pipeline

    build_opts = {k: v for k, v in opts.items() if k not in _BOOT_RUN_PARAMS}
    run_opts = {k: v for k, v in opts.items() if k in _BOOT_RUN_PARAMS}
    quiet = run_opts.pop("quiet", False)
    junit, json_out = run_opts.pop("junit", None), run_opts.pop("json_out", None)
    affected = run_opts.pop("affected", False)
    if build_opts.get("each") and not build_opts.get("series"):
        raise click.UsageError("--each needs --series.")
    breq = BuildRequest(kernel=build_opts["kernel"], series=build_opts["series"],
                        base=build_opts["base"], configs=list(build_opts["configs"]) or ["base"],
                        each=build_opts["each"], out=build_out,
                        allow_config_drift=build_opts["allow_config_drift"],
                        jobs=build_opts["jobs"], kmod_dir=build_opts["kmod_dir"],
                        series_limit=build_opts.get("prefix"), command="run",
                        make_args=list(build_opts.get("make_args") or []), quiet=quiet,
                        series_config=not build_opts.get("no_series_config"),
                        require_built=bool(build_opts.get("require_built")),
                        coverage=bool(build_opts.get("coverage")),
                        arch=build_opts.get("arch") or "x86_64",
                        page_size=build_opts.get("page_size"),
                        argv=reproducer_argv("run"))
    presented = _presented(junit, json_out, quiet)

    @contextlib.contextmanager
    def around(req, outcome):
        if outcome.bootable:
            # A middle patch broke the build but the whole series built: its kernel is tested
            # too, and the run still exits 4 if the tests pass (the pipeline's policy).
            click.echo(f"zstest: warning: {outcome.build_error.message}", err=True)
            click.echo(f"zstest: the whole series built; testing it anyway ({req.build_dir})")
        elif not quiet:
            click.echo(f"zstest: built {outcome.build.manifest['kernel']['version']} "
                       f"in {req.build_dir}")
        with presented(req):
            yield

    outcome = run_pipeline(PipelineRequest(
        build=breq, run=_run_request(None, out, command=["zstest", "run"] + breq.argv, **run_opts),
        echo=click.echo, around_run=around, affected=affected))
    if outcome.error is not None:
        raise outcome.error
    return outcome.exit_code


def _add_build_params() -> None:
    """`run` takes every option of `build` (but --out, which is the results dir here)."""
    from .build_cmd import build_command
    taken = {p.name for p in run_command.params}
    for param in build_command.params:
        if param.name not in taken and param.name != "out":
            run_command.params.append(param)


_add_build_params()

COMMANDS = [boot_and_run_cmd, run_command]
