"""`zstest bisect`: the first patch of a series whose kernel fails the selected tests."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .. import options
from ..suites import available_suites
from . import lore_url_option


@click.command("bisect")
@click.option("--series", required=True, help="The series: mbox, b4's .mbx, patch dir, quilt dir, git range, msgid, lore URL, - for stdin.")
@lore_url_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="The bisect directory (default: ~/.cache/zstest/bisect/<stamp>).")
@click.option("--strategy", type=click.Choice(["auto", "linear", "binary"]), default="auto",
              show_default=True, help="linear: every prefix in order; binary: halving; "
                                      "auto: linear up to 6 patches.")
@click.option("--test-base/--assume-base-good", default=False, show_default=True,
              help="Also build and test the base tree (else it is assumed to pass).")
@options.click_options(options.BUILD, options.BOOT)
@click.option("--perf", "perf_metric", metavar="METRIC",
              help="Find the first patch that moves this perf metric beyond the thresholds "
                   "against the base (each prefix booted alternately with the base; the suite "
                   "defaults to perf).")
@click.option("--runs", "perf_runs", type=int, default=5, show_default=True,
              help="--perf: measured runs per side at each step.")
@click.option("--warmup", "perf_warmup", type=int, default=1, show_default=True,
              help="--perf: discarded runs per side before them.")
@click.option("--p-threshold", type=float, default=0.05, show_default=True,
              help="--perf: Welch's p below which a change can be a verdict.")
@click.option("--min-change", type=float, default=5.0, show_default=True,
              help="--perf: the smallest change of a timing metric, in %.")
@click.option("--exact-change", type=float, default=1.0, show_default=True,
              help="--perf: the smallest change of an exact (memory) metric, in %.")
@click.option("--host-cpus", metavar="LIST", help="--perf: host CPUs QEMU is pinned to, e.g. 0-1.")
def bisect_command(series, out, strategy, test_base, perf_metric, perf_runs, perf_warmup,
                   p_threshold, min_change, exact_change, host_cpus, **opts) -> int:
    """Find the first patch whose kernel fails the tests; build-broken prefixes are skipped.
    With --perf METRIC: the first patch whose kernel moves METRIC against the base."""
    from ..bisect import BisectRequest, bisect, render_text
    from ..cache import cache_dir
    from ..errors import BadInput

    perf, suite = {}, opts["suite"]
    if perf_metric:
        from click.core import ParameterSource

        from ..perf.run import DEFAULT_SUITE, parse_cpus
        from ..perf.verdict import Thresholds
        if click.get_current_context().get_parameter_source("suite") == ParameterSource.DEFAULT:
            suite = DEFAULT_SUITE
        perf = dict(perf_metric=perf_metric, perf_runs=perf_runs, perf_warmup=perf_warmup,
                    perf_thresholds=Thresholds(p=p_threshold, min_change_pct=min_change,
                                               exact_change_pct=exact_change).check(),
                    host_cpus=parse_cpus(host_cpus) if host_cpus else None)
    if suite not in available_suites():
        raise BadInput(f"unknown suite {suite!r}; known: {', '.join(available_suites())}.")
    from ..settings import resolve_kernel
    opts["kernel"] = resolve_kernel(opts["kernel"])
    out = out or cache_dir("bisect") / time.strftime("%Y%m%d-%H%M%S")
    result = bisect(BisectRequest(
        series=series, out=out, build=options.build_request(opts),
        boot=options.boot_request(opts, suite=suite), strategy=strategy, test_base=test_base,
        on_progress=click.echo, **perf))
    click.echo("")
    click.echo(render_text(result))
    click.echo(f"\nzstest: bisect log in {Path(out) / 'bisect.txt'}")
    return result.exit_code


COMMANDS = [bisect_command]
