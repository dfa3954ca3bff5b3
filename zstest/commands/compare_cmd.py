"""`zstest compare A B` and `zstest compare --merge DIR...`: results side by side."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from .. import options
from ..errors import BadInput
from . import lore_url_option


def perf_options(f):
    """--perf and its options: the performance and memory verdict (zstest/perf/)."""
    options = [
        click.option("--perf", is_flag=True,
                     help="Performance and memory: boot A and B alternately (build dirs or "
                          "series; or compare runs already made: results dirs, or dirs holding "
                          "them) and judge every perf metric. Exit 1 when one regressed."),
        click.option("--runs", type=int, default=5, show_default=True,
                     help="--perf: measured runs per side (A B A B ...)."),
        click.option("--warmup", type=int, default=1, show_default=True,
                     help="--perf: discarded runs per side before the measured ones."),
        click.option("--out", "perf_out", type=click.Path(file_okay=False, path_type=Path),
                     help="--perf: where the runs, perf.txt, perf.json, junit.xml, summary.txt "
                          "and plots/ go (default: ~/.cache/zstest/perf/<stamp>)."),
        click.option("--p-threshold", type=float, default=0.05, show_default=True,
                     help="--perf: Welch's p below which a change can be a verdict."),
        click.option("--min-change", type=float, default=5.0, show_default=True,
                     help="--perf: the smallest change of a timing metric's mean, in %, that "
                          "is a verdict (with p below the threshold)."),
        click.option("--exact-change", type=float, default=1.0, show_default=True,
                     help="--perf: the smallest change of an exact (memory) metric, in %, "
                          "that is a verdict (no test: its runs are identical)."),
        click.option("--host-cpus", metavar="LIST",
                     help="--perf: the host CPUs zstest and QEMU are pinned to for every run, "
                          "e.g. 0-1 (default: those zstest may use now)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _write_json(data: dict, dest: str) -> None:
    text = json.dumps(data, indent=2, default=str) + "\n"
    if dest == "-":
        click.echo(text, nl=False)
        return
    from ..fsutil import output_dir, write_output
    output_dir(Path(dest).parent, "the comparison's directory")
    write_output(Path(dest), text, "the comparison to")


@click.command("compare")
@click.argument("sides", nargs=-1, metavar="A B")
@click.option("--merge", "merge_mode", is_flag=True,
              help="Merge many results dirs (or trees of them, e.g. CI artifacts) into one table.")
@click.option("--json", "json_out", metavar="FILE|-",
              help="Also write the comparison as JSON to FILE (- for stdout, instead of the table).")
@click.option("--each/--no-each", default=True, show_default=True,
              help="Series mode: apply and build patch by patch.")
@options.click_options(options.BUILD, options.BOOT)
@lore_url_option
@click.option("--allow-arch-mismatch", is_flag=True,
              help="Compare two sides built for different architectures or page sizes "
                   "(refused by default: the differences would be the arches').")
@perf_options
def compare_command(sides, merge_mode, json_out, each, allow_arch_mismatch, perf, runs, warmup,
                    perf_out, p_threshold, min_change, exact_change, host_cpus, **opts) -> int:
    """Compare A (old) with B (new): results dirs, build dirs, their JSON files, or two series
    sources to build and run first. Exit 1 when anything regressed.

    With --merge DIR...: every results dir found under the DIRs (e.g. a CI artifact download)
    is one column; exit 1 when any of them failed."""
    from .. import compare as cmp

    if perf:
        return _compare_perf(sides, json_out, each, allow_arch_mismatch, opts, runs=runs,
                             warmup=warmup, perf_out=perf_out, p_threshold=p_threshold,
                             min_change=min_change, exact_change=exact_change,
                             host_cpus=host_cpus)
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
            if opts.get("kernel") is None:
                from ..settings import resolve_kernel
                opts["kernel"] = resolve_kernel(None, echo=progress)
            # Stdout carries only the comparison (or its JSON): the run's chatter goes to stderr.
            with contextlib.redirect_stdout(sys.stderr):
                where = _run_revision(options.build_request(opts, series=src, each=each),
                                      options.boot_request(opts), echo=progress)
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


def _run_revision(breq, rreq, echo) -> Path:
    """Build and run one revision as `zstest run` does; the side to compare is its results dir,
    or its build dir when nothing could be booted."""
    from ..pipeline import PipelineRequest, run_pipeline

    series = breq.series
    breq = options.with_reproducer(breq, rreq)
    rreq = replace(rreq, command=["zstest", "run"] + breq.argv,
                   on_progress=lambda msg: echo(f"zstest: {msg}"))

    @contextlib.contextmanager
    def around(req, outcome):
        if outcome.build_error is not None:
            echo(f"zstest: error: {outcome.build_error.message}")
            echo(f"zstest: {series}: the whole series built; testing it anyway")
        echo(f"zstest: {series}: results in {req.out}")
        yield

    outcome = run_pipeline(PipelineRequest(build=breq, echo=echo, around_run=around, run=rreq))
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


# ------------------------------------------------------------------ --perf

def _compare_perf(sides, json_out, each, allow_arch_mismatch, opts, runs, warmup, perf_out,
                  p_threshold, min_change, exact_change, host_cpus) -> int:
    """`compare --perf A B`: the runs (interleaved) or the results dirs, judged and written."""
    from click.core import ParameterSource

    from ..cache import cache_dir
    from ..fsutil import claim_unique_dir
    from ..perf.render import write_outputs, perf_json, render_table
    from ..perf.run import DEFAULT_SUITE, PerfRequest, compare_perf, parse_cpus, side_kind
    from ..perf.verdict import Thresholds

    if len(sides) != 2:
        raise BadInput(f"compare --perf takes two sides, A and B (got {len(sides)}).")
    ctx = click.get_current_context()

    def typed(name: str) -> bool:   # --suite / --each keep compare's defaults unless typed
        return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)
    progress = lambda msg: click.echo(msg, err=True)  # noqa: E731
    kinds = {side_kind(src) for src in sides}
    if opts.get("kernel") is None and "series" in kinds and "results" not in kinds:
        from ..settings import resolve_kernel
        opts["kernel"] = resolve_kernel(None, echo=progress)
    out = perf_out or claim_unique_dir(cache_dir("perf"), time.strftime("%Y%m%d-%H%M%S"))
    req = PerfRequest(
        a=sides[0], b=sides[1], out=Path(out).expanduser().resolve(), runs=runs, warmup=warmup,
        build=options.build_request(opts, each=each if typed("each") else False),
        boot=options.boot_request(opts, suite=opts["suite"] if typed("suite") else DEFAULT_SUITE),
        host_cpus=parse_cpus(host_cpus) if host_cpus else None,
        thresholds=Thresholds(p=p_threshold, min_change_pct=min_change,
                              exact_change_pct=exact_change).check(),
        allow_arch_mismatch=allow_arch_mismatch, echo=progress)
    # Stdout carries only the table (or its JSON): the runs' chatter goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        comparison = compare_perf(req)
        plots = write_outputs(comparison, req.out)
    if json_out:
        _write_json(perf_json(comparison, plots), json_out)
    if json_out != "-":
        click.echo(render_table(comparison), nl=False)
    progress(f"zstest: perf.txt, perf.json, junit.xml, summary.txt and plots/ in {req.out}")
    return comparison.exit_code


COMMANDS = [compare_command]
