"""`zstest report`: a results directory as plain text to paste into a reply on the list."""

from pathlib import Path
from typing import Optional

import click

from ..errors import EXIT_OK, BadInput
from ..report import render_report


@click.command()
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), help="Write the report to this file.")
def report(results_dir: Path, out: Optional[Path]) -> int:
    """Print RESULTS_DIR as a plain-text, 72-column report for a mailing-list reply."""
    if not results_dir.is_dir():
        raise BadInput(f"{results_dir} is not a directory: give a results directory.")
    text = render_report(results_dir)
    if out is not None:
        try:
            out.write_text(text)
        except OSError as exc:
            raise BadInput(f"cannot write {out}: {exc.strerror}.") from None
        click.echo(f"report written to {out}")
    else:
        click.echo(text, nl=False)
    return EXIT_OK


COMMANDS = [report]
