"""`zstest report`: a results directory as plain text to paste into a reply on the list."""

from pathlib import Path
from typing import Optional

import click

from ..errors import EXIT_OK, BadInput
from ..report import render_report


@click.command()
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), help="Write the report to this file.")
# --kcidb (zstest/kcidb.py)
@click.option("--kcidb", "kcidb_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write RESULTS_DIR (or a compare, bisect or matrix tree of results and "
                   "build dirs) as KCIDB JSON to this file, checked against kcidb-io's schema, "
                   "instead of the text report.")
@click.option("--kcidb-origin", "kcidb_origin", default="zstest", show_default=True,
              metavar="NAME", help="The KCIDB origin (your CI system's name) of every object.")
@click.option("--kcidb-url-base", "kcidb_url_base", metavar="URL",
              help="Where RESULTS_DIR is published: logs and configs become URL/<path inside "
                   "it> (default: file:// URLs of this machine).")
# --html (zstest/htmlpage.py)
@click.option("--html", "html_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write a static results page (DIR/index.html: one row per results dir in "
                   "RESULTS_DIR, which may be a compare, bisect or matrix tree) instead of the "
                   "text report.")
def report(results_dir: Path, out: Optional[Path], kcidb_out: Optional[Path] = None,
           kcidb_origin: str = "zstest", kcidb_url_base: Optional[str] = None,
           html_dir: Optional[Path] = None) -> int:
    """Print RESULTS_DIR as a plain-text, 72-column report for a mailing-list reply."""
    if not results_dir.is_dir():
        raise BadInput(f"{results_dir} is not a directory: give a results directory.")
    if html_dir is not None:
        from ..htmlpage import page_for_results
        click.echo(f"results page written to {page_for_results(results_dir, html_dir)}")
        return EXIT_OK
    if kcidb_out is not None:
        from ..kcidb import counts_line, export_kcidb
        data = export_kcidb([results_dir], kcidb_out, origin=kcidb_origin,
                            url_base=kcidb_url_base)
        click.echo(f"KCIDB JSON written to {kcidb_out} ({counts_line(data)})")
        return EXIT_OK
    text = render_report(results_dir)
    if out is not None:
        from ..fsutil import write_output
        write_output(out, text, "the report to")     # a full disk is exit 6, else 2
        click.echo(f"report written to {out}")
    else:
        click.echo(text, nl=False)
    return EXIT_OK


COMMANDS = [report]
