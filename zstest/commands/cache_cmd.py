"""`zstest cache show|prune|path`: what the cache holds, and removing its old parts."""

import json

import click

from ..errors import EXIT_OK, EXIT_TEST_FAILED


@click.group("cache")
def cache_group() -> None:
    """Show and prune the cache (~/.cache/zstest, or $ZSTEST_CACHE)."""


@cache_group.command("path")
def cache_path() -> int:
    """Print the cache root."""
    from ..cache import cache_root
    click.echo(str(cache_root()))
    return EXIT_OK


@cache_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def cache_show(as_json: bool) -> int:
    """Size of each area, the total, and where builds/last and results/last point."""
    from ..cache_admin import render_report, show_cache
    report = show_cache()
    click.echo(json.dumps(report.to_json(), indent=2) if as_json else render_report(report))
    return EXIT_OK


@cache_group.command("prune")
@click.option("--keep", type=int, default=5, show_default=True,
              help="Newest builds/, results/, bisect/ and perf/ dirs to keep (also: watched "
                   "series' builds and results, coverage maps per tree and config).")
@click.option("--older-than", "older_than", type=float, default=None, metavar="DAYS",
              help="Remove only what is older than DAYS; for objs, worktrees, repos, "
                   "test-builds and b4check: unused for DAYS (default 7).")
@click.option("--area", "areas", multiple=True, metavar="A,B",
              help="Areas to prune (default builds,results,bisect,perf,images); also objs, "
                   "worktrees, ccache, repos, test-builds, b4check, watch, coverage-maps.")
@click.option("--dry-run", is_flag=True, help="Only print what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def cache_prune(keep: int, older_than, areas, dry_run: bool, as_json: bool) -> int:
    """Remove old builds, results, bisect runs, perf comparisons, images (or other areas).

    Never removes what builds/last or results/last point to, nor what a running zstest holds
    locked or a running process names (QEMU's -kernel, make's O=). Exit 1 when something
    could not be removed.
    """
    from ..cache_admin import (DEFAULT_PRUNE_AREAS, PruneRequest, parse_areas, prune_cache,
                               render_prune)
    chosen = parse_areas(areas) if areas else list(DEFAULT_PRUNE_AREAS)
    result = prune_cache(PruneRequest(keep=keep, older_than_days=older_than, areas=chosen,
                                      dry_run=dry_run))
    click.echo(json.dumps(result.to_json(), indent=2) if as_json else render_prune(result))
    for error in result.errors:
        click.echo(f"zstest: {error}", err=True)
    return EXIT_TEST_FAILED if result.errors else EXIT_OK


COMMANDS = [cache_group]
