"""`zstest series show|apply|fetch|list`."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path

import click

from ..errors import EXIT_OK, BadInput
from ..series import format_series, load_series
from ..series.lore import default_lore_url
from ..textsafe import printable
from . import lore_url_option

def _source_options(f):
    f = click.option("--git-tree", type=click.Path(path_type=Path), default=None,
                     help="Git tree for an A..B range (default: the current directory).")(f)
    return lore_url_option(f)


@click.group()
def series() -> None:
    """Read a patch series and apply it to a scratch worktree."""


@series.command()
@click.argument("src")
@click.option("--json", "as_json", is_flag=True, help="Print the series as JSON.")
@_source_options
def show(src: str, as_json: bool, git_tree) -> int:
    """Show what SRC holds: revision, cover, patches, base, problems.

    SRC is an mbox (b4's .mbx too), `-` (an mbox on stdin), a directory of git
    format-patch files, a quilt directory, a git range A..B (in --git-tree), a
    message-id or a lore URL (fetched from --lore-url). A thread with replies
    shows their trailers (Reviewed-by, Acked-by, ...) per patch.
    """
    from ..series.gitview import check_series

    s = load_series(src, git_tree=git_tree)
    check_series(s)     # what is listed is what `series apply` would apply, or exit 2
    if as_json:
        click.echo(json.dumps(s.to_dict(), indent=2))
    else:
        click.echo(format_series(s))
    return EXIT_OK


@series.command()
@click.argument("src")
@click.option("--kernel", "kernel", type=click.Path(path_type=Path),
              help="The kernel tree (git or plain); it is never modified. Default: the current directory if it is a kernel tree, then $ZSTEST_KERNEL, then zstest.toml's kernel, then Debian's linux-source-6.1.")
@click.option("--base", default=None, help="Commit to apply on (default: the tree's HEAD or import).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write apply.json and apply.log here.")
@click.option("--allow-gaps", is_flag=True, help="Accept a series with missing patches.")
@click.option("--purpose", default="apply", show_default=True,
              help="Name of the scratch worktree to use (the build stage uses `build`).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_source_options
def apply(src: str, kernel: Path, base, out, allow_gaps: bool, purpose: str, as_json: bool,
          git_tree) -> int:
    """Apply SRC patch by patch with `git am` on a scratch worktree of --kernel.

    Exit 3 at the first patch that does not apply.
    """
    from ..errors import ZstestError
    from ..fsutil import output_dir

    start = time.monotonic()
    s = None
    try:
        if out is not None:
            out = output_dir(out, "apply.json to")     # a bad --out fails before any work
        from ..tree import KernelTree, apply_series
        from ..settings import resolve_kernel
        kt = KernelTree.open(resolve_kernel(kernel))
        s = load_series(src, git_tree=git_tree)
        result = apply_series(s, kt, base=base, out=out, allow_gaps=allow_gaps, purpose=purpose)
    except KeyboardInterrupt:
        # stopped before apply_series wrote its own verdict (reading the series, or between
        # the two): apply.json says interrupted, never "running" or nothing
        if out is not None and _apply_state(out) in (None, "running"):
            from ..tree import write_apply_status
            with contextlib.suppress(ZstestError):
                write_apply_status(out, "interrupted", kernel or "", s,
                                   time.monotonic() - start)
        raise
    except ZstestError as exc:
        if exc.result is not None:     # the patches done before it stopped
            _print_result(exc.result, as_json)
        raise
    try:
        _print_result(result, as_json)
    finally:
        result.worktree.release()
    return EXIT_OK


def _print_result(result, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    wt = result.worktree
    total = result.series.total if result.series else len(result.patches)
    click.echo(f"tree:      {wt.source_tree} ({wt.tree_kind}), base {wt.base_commit[:12]}")
    click.echo(f"worktree:  {wt.path}")
    if wt.base_note:
        click.echo(f"base:      {wt.base_note}")
    for note in wt.notes:
        click.echo(f"note:      {note}")
    for p in result.patches:
        commit = f" {p.commit[:12]}" if p.commit else ""
        click.echo(f"  {p.index:>2}/{total} {p.status:<12}{commit} {printable(p.subject, False)}")
        for h in p.failed_hunks:
            click.echo(f"        {printable(h, False)}")
    if result.series is not None:
        for problem in result.series.problems:
            click.echo(f"problem:   {printable(problem, False)}")
    click.echo(f"{'ok' if result.ok else 'failed'} in {result.duration_s:.1f} s")


@series.command()
@click.argument("target", metavar="NAME|MSGID")
@click.option("--rev", type=int, default=None,
              help="Revision of the manifest NAME to fetch (default: the newest).")
@lore_url_option
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Also write the fetched thread (mbox) to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def fetch(target: str, rev, out, as_json: bool) -> int:
    """Fetch a known series (a manifest in kernel-patches/) or any thread by message-id.

    NAME is a manifest name such as nonlru-migration; --rev picks its revision.
    Prints what `series show` prints, the tree the series needs, and a warning
    line for every patch whose subject or message-id differs from the manifest.
    The thread is cached under the zstest cache (lore/).
    """
    from ..series.manifest import fetch_series

    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        raise BadInput(f"--out {out}: " + ("is a directory; give a file name." if out.is_dir()
                                           else f"the directory {out.parent} does not exist."))
    result = fetch_series(target, rev=rev, lore_url=default_lore_url())
    if out is not None:
        _copy_out(result.mbox, out)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        if result.manifest is not None and result.revision is not None:
            r = result.revision
            posted = f", posted {r.posted.isoformat()}" if r.posted else ""
            base = f" against {r.base}" if r.base else ", base not recorded"
            click.echo(f"manifest:  {result.manifest.name} v{r.number}{posted}{base} "
                       f"({result.manifest.path})")
        else:
            click.echo(f"manifest:  none names <{result.msgid}>")
        click.echo(format_series(result.series))
        if result.needs_line:
            click.echo(f"needs:     {result.needs_line}")
        if out is not None:
            click.echo(f"mbox:      {out}")
    for warning in result.warnings:
        click.echo(f"zstest: warning: {warning}", err=True)
    return EXIT_OK


def _copy_out(mbox: Path, out: Path) -> None:
    """The fetched thread to --out: a read-only or full destination is one sentence, and a
    half-written copy is not left behind."""
    from ..fsutil import writing
    try:
        with writing(out, "the fetched mbox to"):
            shutil.copyfile(mbox, out)
    except BaseException:
        with contextlib.suppress(OSError):
            if out.is_file() and out.stat().st_size < mbox.stat().st_size:
                out.unlink()
        raise


@series.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print the manifests as JSON.")
def list_manifests(as_json: bool) -> int:
    """The series manifests known in kernel-patches/ (for `series fetch NAME`)."""
    from ..series.manifest import load_manifests, manifests_root

    manifests = load_manifests()
    if as_json:
        click.echo(json.dumps([{"name": m.name, "title": m.title, "path": str(m.path),
                                "needs": m.needs,
                                "revisions": [m.revisions[n].to_dict() for n in sorted(m.revisions)]}
                               for m in manifests], indent=2))
        return EXIT_OK
    if not manifests:
        click.echo(f"no series manifests in {manifests_root()}")
    for m in manifests:
        click.echo(f"{m.name}: {m.title} ({m.author or 'author not recorded'})")
        for n in sorted(m.revisions):
            r = m.revisions[n]
            posted = r.posted.isoformat() if r.posted else "date not recorded"
            known = sum(1 for p in r.patches.values() if p.msgid)
            click.echo(f"  v{n}  {posted}  {r.patch_count} patches  "
                       f"base {r.base or 'not recorded'}  "
                       f"<{r.cover_msgid or 'cover message-id not recorded'}>  "
                       f"({known} patch message-ids known)")
    return EXIT_OK


COMMANDS = [series]


def _apply_state(out: Path):
    """apply.json's status in out (None: none readable yet)."""
    from ..errors import ZstestError
    from ..manifests import load_apply
    try:
        return load_apply(out).status
    except (ZstestError, OSError):
        return None
