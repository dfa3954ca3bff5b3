"""`zstest watch`: poll a public-inbox server and run every new zsmalloc/zram series."""

from __future__ import annotations

from pathlib import Path

import click

from .. import options
from ..errors import BadInput
from . import lore_url_option


# compare --perf's defaults (perf.run.DEFAULT_SUITE, its --runs and --warmup): literals here,
# so that the CLI does not import scipy to show --help (tests/test_watch_perf.py checks them)
PERF_DEFAULTS = {"suite": "perf", "runs": 5, "warmup": 1}


def perf_options(f):
    """--perf and compare --perf's --suite, -k, --runs, --warmup for it, prefixed --perf-."""
    for option in reversed([
        click.option("--perf", is_flag=True,
                     help="After a series passed, compare its kernel with its base (the tree it "
                          "was applied on, built the same way) as `zstest compare --perf` does, "
                          "into series/<key>/perf/; a regression makes the verdict 'perf "
                          "regressed' and the reply offers no Tested-by."),
        click.option("--perf-suite", default=PERF_DEFAULTS["suite"], show_default=True,
                     help="--perf: the guest suite measured (compare --perf's --suite)."),
        click.option("--perf-k", "perf_keyword", default="", metavar="EXPR",
                     help="--perf: select the perf suite's tests by pytest -k expression "
                          "(compare --perf's -k; watch's own -k selects the functional tests)."),
        click.option("--perf-runs", type=click.IntRange(min=1), default=PERF_DEFAULTS["runs"],
                     show_default=True, help="--perf: measured runs per side (compare's --runs)."),
        click.option("--perf-warmup", type=click.IntRange(min=0), default=PERF_DEFAULTS["warmup"],
                     show_default=True,
                     help="--perf: discarded runs per side first (compare's --warmup)."),
    ]):
        f = option(f)
    return f


@click.command("watch")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="The bot's directory: watch.sqlite (its state), series/<key>/ (thread, build, "
                   "results, report, reply, KCIDB) and index.html. Default: "
                   "~/.cache/zstest/watch.")
@lore_url_option
@click.option("--feed", type=click.Choice(["search", "new"]), default="search", show_default=True,
              help="search: the server's search for diffs touching zsmalloc/zram files "
                   "(dfn:, needs its Xapian index); new: its new.atom (every new message).")
@click.option("--query", default=None, metavar="QUERY",
              help="The public-inbox search query of --feed search (default: dfn: of every "
                   "zsmalloc/zram path).")
@click.option("--suite", "suites", multiple=True,
              help="Guest suite(s) to run per series (repeatable; default: default).")
@click.option("--each", is_flag=True, help="Apply and build patch by patch.")
@options.click_options(options.BUILD, options.BOOT, exclude=("suite",), overrides={
    "kernel": {"help": "The tree to test on (default: as `zstest build`); a series' base-commit "
                       "is used when this tree's git history has it."}})
@click.option("--complete-timeout", type=click.FloatRange(min=0), default=7200.0,
              show_default=True,
              help="Seconds to wait for a series' missing patches after its first message; "
                   "then the patches that arrived are run, marked incomplete.")
@click.option("--interval", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds between polls.")
@click.option("--once", is_flag=True,
              help="Poll once, run everything queued, write the page and exit (cron, tests).")
@click.option("--backfill", is_flag=True,
              help="On the first poll of a new state file, take what the feed lists already "
                   "(default: record it as seen and start from now).")
@click.option("--matrix", "matrix_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Do not run: write each queued series' CI cells (matrix.toml, cells.json, "
                   "series.mbox) under this directory for ci/github or ci/gitlab.")
@click.option("--tree", "tree_label", default=None,
              help="The cells' tree axis with --matrix (default: --kernel, else 6.1).")
@click.option("--collect", "collect_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Take the results of dispatched cells from this directory (a CI artifact "
                   "download), report them and exit.")
@click.option("--html", "page_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the results page here (default: --dir).")
@perf_options
def watch_command(directory, feed, query, suites, each, complete_timeout, interval, once,
                  backfill, matrix_dir, tree_label, collect_dir, page_dir, perf, perf_suite,
                  perf_keyword, perf_runs, perf_warmup, **opts) -> int:
    """Poll a public-inbox server for new zsmalloc/zram series (decided by their diffs), run
    each one once (by patchset hash) and write results, report, KCIDB JSON, a reply draft and
    a static results page."""
    from ..cache import cache_dir
    from ..series.lore import check_lore_url, default_lore_url
    from ..watch import RunConfig, WatchConfig, Watcher
    from ..watch.cells import collect
    from ..watch.perfstep import PerfConfig
    from ..watch.threads import SEARCH_QUERY

    lore_url = default_lore_url()
    check_lore_url(lore_url)
    if collect_dir is not None and not collect_dir.is_dir():
        raise BadInput(f"--collect {collect_dir} is not a directory.")
    kernel = opts["kernel"]
    perf_cfg = PerfConfig(suite=perf_suite, runs=perf_runs, warmup=perf_warmup,
                          keyword=perf_keyword).check() if perf else None
    if perf_cfg is not None and matrix_dir is not None:
        click.echo("zstest: watch: --perf is local only: the --matrix cells run no perf "
                   "comparison (run the bot without --matrix to measure series)")
        perf_cfg = None
    run = RunConfig(build=options.build_request(opts, each=each), boot=options.boot_request(opts),
                    suites=list(suites) or ["default"], complete_timeout_s=complete_timeout,
                    perf=perf_cfg)
    cfg = WatchConfig(directory=(directory or cache_dir("watch")).expanduser().resolve(),
                      lore_url=lore_url, feed=feed, query=query or SEARCH_QUERY, run=run,
                      backfill=backfill, matrix_dir=matrix_dir, page_dir=page_dir,
                      tree_label=tree_label or (str(kernel) if kernel else "6.1"))
    watcher = Watcher(cfg, echo=click.echo)
    try:
        if collect_dir is not None:
            collect(watcher, collect_dir)
            return 0
        if once:
            return watcher.once()
        watcher.forever(interval)
    finally:
        watcher.close()
    return 0


COMMANDS = [watch_command]
