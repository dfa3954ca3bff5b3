"""`zstest mutate`: plant one-line bugs in a series' changed lines (or in named functions)
and count the ones the tests catch."""

from __future__ import annotations

from pathlib import Path

import click

from .. import options
from ..suites import available_suites
from . import lore_url_option


@click.command("mutate")
@click.option("--series", help="The series whose added C lines are mutated: mbox, patch dir, quilt dir, git range, msgid, lore URL.")
@lore_url_option
@click.option("--file", "file", help="A C file of the tree (e.g. mm/zsmalloc.c): mutate its existing code (with --series: only this file's lines).")
@click.option("--function", "functions", multiple=True,
              help="Function(s) to mutate, comma-separated or repeated (default: every function of --file).")
@click.option("--operators", default=None,
              help="Comma-separated operators: delete, negate, relational, off_by_one, "
                   "skip_check, return_early, swap_args (default: all).")
@click.option("--budget", "budget", type=click.FloatRange(min=0), default=None,
              help="Wall minutes: no new mutant is started once they are spent.")
@click.option("--max", "max_mutants", type=click.IntRange(min=0), default=None,
              help="Judge at most N new mutants in this run.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="The mutate directory (mutate.json, summary.txt, one dir per mutant); "
                   "an existing one is resumed. Default: ~/.cache/zstest/mutate/<stamp>.")
# --base: the mutants' lines are planned on the tree's HEAD, so the build must start there too
@options.click_options(options.BUILD, options.BOOT, exclude=("base",), overrides={
    "run_timeout": {"default": None, "show_default": False,
                    "help": "Seconds one mutant's run may take, boot included (default: 3x "
                            "the clean run)."}})
@click.option("--list", "list_only", is_flag=True, help="Print the mutants and stop (no build).")
@click.option("--guided/--no-guided", default=True, show_default=True,
              help="Coverage-guided: the baseline runs with --coverage; a mutant on a line no "
                   "test executed is not_covered (not built, not run); the others run only the "
                   "tests that executed their line, likeliest killer first, up to the first "
                   "kill, and a survivor is confirmed by the whole selection. --no-guided: "
                   "every mutant runs the whole selection.")
def mutate_command(series, file, functions, operators, budget, max_mutants, out, list_only,
                   guided, **opts) -> int:
    """Mutation testing: build and run each one-line mutant; killed / survived / timeout."""
    from ..errors import BadInput
    from ..mutate.generate import OPERATORS
    from ..mutate.run import MutateRequest, format_plan, plan_mutants, run_mutate

    names = [n.strip() for item in functions for n in item.split(",") if n.strip()]
    ops = [o.strip() for o in operators.split(",") if o.strip()] if operators else list(OPERATORS)
    unknown = [o for o in ops if o not in OPERATORS]
    if unknown:
        raise BadInput(f"unknown operator {unknown[0]!r}; known: {', '.join(OPERATORS)}.")
    if not ops:
        raise BadInput("--operators names no operator.")
    if not series and not file:
        raise BadInput("give a series (--series SRC) or a file of the tree (--file PATH).")
    if names and not file and not series:
        raise BadInput("--function needs --file (or --series).")
    suite = opts["suite"]
    if suite not in available_suites():
        raise BadInput(f"unknown suite {suite!r}; known: {', '.join(available_suites())}.")
    req = MutateRequest(series=series, file=file, functions=names, operators=ops,
                        budget_min=budget, max_mutants=max_mutants, out=out,
                        run_timeout=opts["run_timeout"], on_progress=click.echo, guided=guided,
                        build=options.build_request(opts), boot=options.boot_request(opts))
    if list_only:
        click.echo(format_plan(plan_mutants(req)))
        return 0
    result = run_mutate(req)
    click.echo("")
    click.echo(result.summary)
    if result.message:
        click.echo(f"\nzstest mutate: {result.message}")
    click.echo(f"\nzstest: mutate.json and summary.txt in {result.out}")
    return result.exit_code


COMMANDS = [mutate_command]
