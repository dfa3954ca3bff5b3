"""`zstest compare A B` and `zstest compare --merge DIR...`: results side by side."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from ..errors import BadInput
from . import arch_options, lore_url_option


def _write_json(data: dict, dest: str) -> None:
    text = json.dumps(data, indent=2, default=str) + "\n"
    if dest == "-":
        click.echo(text, nl=False)
        return
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    Path(dest).write_text(text)


@click.command("compare")
@click.argument("sides", nargs=-1, metavar="A B")
@click.option("--merge", "merge_mode", is_flag=True,
              help="Merge many results dirs (or trees of them, e.g. CI artifacts) into one table.")
@click.option("--json", "json_out", metavar="FILE|-",
              help="Also write the comparison as JSON to FILE (- for stdout, instead of the table).")
@click.option("--kernel", type=click.Path(path_type=Path),
              help="Series mode: the kernel tree to build on (default: the current kernel tree, "
                   "$ZSTEST_KERNEL, zstest.toml, else Debian's linux-source-6.1).")
@click.option("--config", "configs", multiple=True, metavar="PROFILE|FRAGMENT",
              help="Series mode: config profile or fragment; repeatable.")
@click.option("--suite", default="default", show_default=True, help="Series mode: the guest suite.")
@click.option("-k", "keyword", default="", help="Series mode: select tests by pytest -k expression.")
@click.option("--each/--no-each", default=True, show_default=True,
              help="Series mode: apply and build patch by patch.")
@lore_url_option
@click.option("--allow-arch-mismatch", is_flag=True,
              help="Compare two sides built for different architectures or page sizes "
                   "(refused by default: the differences would be the arches').")
@arch_options
def compare_command(sides, merge_mode, json_out, kernel, configs, suite, keyword, each,
                    allow_arch_mismatch, arch, page_size) -> int:
    """Compare A (old) with B (new): results dirs, build dirs, their JSON files, or two series
    sources to build and run first. Exit 1 when anything regressed.

    With --merge DIR...: every results dir found under the DIRs (e.g. a CI artifact download)
    is one column; exit 1 when any of them failed."""
    from .. import compare as cmp

    if merge_mode:
        if not sides:
            raise BadInput("--merge needs at least one results directory.")
        table = cmp.merge(sides)
        if json_out:
            _write_json(cmp.merge_json(table), json_out)
        if json_out != "-":
            click.echo(cmp.render_merge(table), nl=False)
        return table.exit_code

    if len(sides) != 2:
        raise BadInput(f"compare takes two sides, A and B (got {len(sides)}); "
                       f"use --merge for more.")
    loaded = []
    progress = lambda msg: click.echo(msg, err=True)  # noqa: E731
    for src in sides:
        if cmp.looks_like_series(src):
            progress(f"zstest: {src} is a series: building and running it")
            if kernel is None:
                from ..settings import resolve_kernel
                kernel = resolve_kernel(None, echo=progress)
            # Stdout carries only the comparison (or its JSON): the run's chatter goes to stderr.
            with contextlib.redirect_stdout(sys.stderr):
                where = _run_revision(src, kernel, list(configs) or ["base"], suite, keyword,
                                      each, echo=progress, arch=arch, page_size=page_size)
            progress(f"zstest: {src}: {where}")
            loaded.append(cmp.load_side(where))
        else:
            loaded.append(cmp.load_side(src))
    if not allow_arch_mismatch:
        cmp.check_same_arch(*loaded)
    comparison = cmp.compare(*loaded)
    if json_out:
        _write_json(cmp.comparison_json(comparison), json_out)
    if json_out != "-":
        click.echo(cmp.render_text(comparison), nl=False)
    return comparison.exit_code


def _run_revision(series, kernel, configs, suite, keyword, each, echo, arch="x86_64",
                  page_size=None) -> Path:
    """Build and run one revision as `zstest run` does; the side to compare is its results dir,
    or its build dir when nothing could be booted."""
    from ..pipeline import (BootRunRequest, BuildRequest, PipelineRequest, reproducer_argv,
                            run_pipeline)

    breq = BuildRequest(kernel=kernel, series=series, configs=configs, each=each, arch=arch,
                        page_size=page_size)
    breq.argv = reproducer_argv(breq)

    @contextlib.contextmanager
    def around(req, outcome):
        if outcome.build_error is not None:
            echo(f"zstest: error: {outcome.build_error.message}")
            echo(f"zstest: {series}: the whole series built; testing it anyway")
        echo(f"zstest: {series}: results in {req.out}")
        yield

    outcome = run_pipeline(PipelineRequest(
        build=breq, echo=echo, around_run=around,
        run=BootRunRequest(build_dir=None, out=None, suite=suite, keyword=keyword,
                           on_progress=lambda msg: echo(f"zstest: {msg}"))))
    if outcome.build_dir is None:
        raise outcome.build_error
    if outcome.results_dir is None:
        echo(f"zstest: error: {outcome.build_error.message}")
        echo(f"zstest: {series}: no kernel to boot; comparing its build ({outcome.build_dir})")
        return Path(outcome.build_dir)
    if outcome.boot_error is not None:
        # results.json records the failed boot: that is the comparison's B (or A).
        echo(f"zstest: error: {outcome.boot_error.message}")
    return outcome.results_dir


COMMANDS = [compare_command]
