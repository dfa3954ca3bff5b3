"""`zstest boot-and-run` (and `zstest run` = build, then boot-and-run)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import click

from ..errors import BadInput, Finished, ZstestError
from ..manifests import RESULTS_JSON
from .. import options
from . import lore_url_option
from .cell import cell_option


def run_presentation_options(f):
    """How boot-and-run and run present a run (not part of the request)."""
    presentation = [
        click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path),
                     help="Also copy junit.xml here."),
        click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path),
                     help="Also copy results.json here."),
        click.option("--quiet", "-q", is_flag=True,
                     help="Print only the verdict lines and errors (no progress, no tables)."),
        click.option("--affected/--no-affected", default=False,
                     help="Run only the tests whose stored coverage (the map a --coverage run "
                          "keeps) executes the lines changed since that map, plus the boot "
                          "checks; the whole suite when no map fits. results.json's selection "
                          "and summary.txt say what was skipped and why. --no-affected: the "
                          "whole suite even when zstest.toml says affected = true."),
    ]
    for option in reversed(presentation):
        f = option(f)
    return options.click_options(options.BOOT, options.RUN)(f)


def _say(msg: str) -> None:
    click.echo(f"zstest: {msg}", err=True)


def _progress(msg: str) -> None:
    click.echo(f"zstest: {msg}")


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
@run_presentation_options
@cell_option("boot")
def boot_and_run_cmd(build_dir, out, quiet=False, junit=None, json_out=None, affected=False,
                     **opts) -> int:
    """Boot a build's kernel under QEMU and run a guest suite over SSH."""
    from ..pipeline import boot_and_run, default_results_dir
    req = options.boot_request(opts, build_dir=build_dir or _default_build_dir(),
                               out=out or default_results_dir(), on_progress=_progress, say=_say)
    req.command = options.command_line("boot-and-run", boot=req) + \
        (["--affected"] if affected else [])
    if affected:
        from ..affected import narrow
        req = narrow(req)
    try:
        with _presented(junit, json_out, quiet)(req):
            run = boot_and_run(req)
    except ZstestError as exc:
        exc.results_dir = exc.results_dir or req.out   # written before the error: cell.json too
        raise
    return Finished(run.exit_code, results_dir=req.out)


@click.command("run")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="The results directory (default: a new one under ~/.cache/zstest/results).")
@click.option("--build-out", type=click.Path(file_okay=False, path_type=Path),
              help="The build directory (default: ~/.cache/zstest/builds/<name>).")
@options.click_options(options.SERIES, options.BUILD)
@lore_url_option
@run_presentation_options
@cell_option("run")
def run_command(out, build_out, quiet=False, junit=None, json_out=None, affected=False,
                **opts) -> int:
    """Build (as `zstest build`), then boot-and-run the result."""
    from ..pipeline import PipelineRequest, run_pipeline
    from .build_cmd import _checked_request

    rreq = options.boot_request(opts, out=out, on_progress=_progress, say=_say)
    breq = options.with_reproducer(_checked_request(opts, out=build_out, quiet=quiet), rreq)
    rreq.command = ["zstest", "run"] + breq.argv + (["--affected"] if affected else [])
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

    outcome = run_pipeline(PipelineRequest(build=breq, run=rreq, echo=click.echo,
                                           around_run=around, affected=affected))
    if outcome.error is not None:
        error = outcome.error       # the dirs the run wrote (cell.json goes there)
        error.build_dir = error.build_dir or outcome.build_dir
        error.results_dir = error.results_dir or outcome.results_dir
        raise error
    return Finished(outcome.exit_code, outcome.build_dir, outcome.results_dir)


COMMANDS = [boot_and_run_cmd, run_command]
