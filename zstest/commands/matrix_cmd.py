"""`zstest matrix`: print a CI job matrix (one entry per build+boot cell)."""

from __future__ import annotations

from pathlib import Path

import click

from ..matrix import AXES, expand, load_matrix, matrix_from_dict, render


@click.command("matrix")
@click.argument("matrix_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["github", "gitlab", "gitlab-pipeline", "json"]),
              default="json", show_default=True,
              help="github: strategy.matrix {include: [...]}; gitlab: a parallel:matrix list; "
                   "gitlab-pipeline: a child pipeline; json: the plain job list.")
@click.option("--series", "series", multiple=True,
              help="Series axis value (repeatable; '' = no series). Replaces the file's axis.")
@click.option("--config", "config", multiple=True, metavar="PROFILE[+PROFILE]",
              help="Config axis value (repeatable). Replaces the file's axis.")
@click.option("--tree", "tree", multiple=True, help="Tree axis value: 6.1, 6.12 or a path (repeatable).")
@click.option("--suite", "suite", multiple=True, help="Suite axis value (repeatable).")
@click.option("--arch", "arch", multiple=True, metavar="ARCH[:PAGESIZE]",
              help="Arch axis value: x86_64, arm64, arm64:64k, i386 (repeatable).")
@click.option("--gitlab-include", default="ci/gitlab/zstest.yml", show_default=True,
              help="gitlab-pipeline: the template the child pipeline includes.")
def matrix_cmd(matrix_file, fmt, series, config, tree, suite, arch, gitlab_include) -> int:
    """Expand a matrix file (series x config x tree x suite x arch, exclude, include) into CI
    jobs."""
    given = {"series": series, "config": config, "tree": tree, "suite": suite, "arch": arch}
    if matrix_file is not None:
        matrix = load_matrix(matrix_file)
        for axis in AXES:
            if given[axis]:
                matrix.axes[axis] = matrix_from_dict({axis: list(given[axis])}).axes[axis]
    else:
        matrix = matrix_from_dict({a: list(v) for a, v in given.items() if v})
    click.echo(render(expand(matrix), fmt, gitlab_include))
    return 0


COMMANDS = [matrix_cmd]
