"""`--cell` for build, boot-and-run and run: a matrix job entry sets the command's options and
cell.json lands in its build and results dirs. The click side of zstest/matrix.py (which keeps
the data: axes, loading, expansion, one cell's shape)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import List, Optional

import click

from ..errors import Finished, ZstestError
from ..matrix import AXIS_DEFAULTS, load_cell, resolve_tree, split_config, write_cell
from ..target import Target


def _cell_target(value: str) -> Target:
    return Target.parse(value, "the cell's arch")


def _cell_page_size(value: str) -> Optional[str]:
    """None for the arch's own page size: the command line then says nothing of it."""
    target = _cell_target(value)
    return None if target.default_page_size else target.page_size_name


# Command parameter <- (cell axis, converter). Only the parameters a command has are set.
_CELL_PARAMS = {
    "series": ("series", lambda v: v or None),
    "configs": ("config", lambda v: tuple(split_config(v))),
    "kernel": ("tree", resolve_tree),
    "suite": ("suite", lambda v: v),
    "arch": ("arch", lambda v: _cell_target(v).name),
    "page_size": ("arch", _cell_page_size),
}
_EXPLICIT = {"COMMANDLINE", "ENVIRONMENT", "PROMPT"}


def apply_cell(cell: dict, kwargs: dict, ctx: click.Context) -> None:
    """Set the command's options from the cell; options given on the command line win."""
    for param, (axis, convert) in _CELL_PARAMS.items():
        if param not in kwargs:
            continue
        source = ctx.get_parameter_source(param)
        if source is not None and source.name in _EXPLICIT:
            continue
        kwargs[param] = convert(cell.get(axis, AXIS_DEFAULTS[axis]))


def _output_dirs(kind: str, kwargs: dict, ended: object) -> List[Path]:
    """The dirs the command wrote, as it said: its Finished return value or its error's
    build_dir/results_dir; else the --out/--build-out given (a Ctrl-C says nothing)."""
    build_given = kwargs.get("out") if kind == "build" else kwargs.get("build_out")
    results_given = kwargs.get("out") if kind in ("boot", "run") else None
    said = ended if isinstance(ended, (Finished, ZstestError)) else None
    dirs: List[Optional[Path]] = []
    if kind in ("build", "run"):
        dirs.append(Path(build_given) if build_given else said and said.build_dir)
    if kind in ("boot", "run"):
        dirs.append(Path(results_given) if results_given else said and said.results_dir)
    return [d for d in dirs if d is not None]


def cell_option(kind: str):
    """Decorator: a --cell option for build ('build'), boot-and-run ('boot') and run ('run').

    Put it right above the function (below the click decorators). cell.json is written into
    the build dir and/or results dir, also when the command fails: the ones given with
    --out/--build-out, else the ones the command names (it returns errors.Finished, or its
    ZstestError carries build_dir/results_dir).
    """
    if kind not in ("build", "boot", "run"):
        raise ValueError(kind)

    def decorate(f):
        @functools.wraps(f)
        def wrapper(*args, cell=None, **kwargs):
            if cell is None:
                return f(*args, **kwargs)
            entry = load_cell(cell)
            apply_cell(entry, kwargs, click.get_current_context())
            ended: object = None
            try:
                ended = f(*args, **kwargs)
                return ended
            except (ZstestError, KeyboardInterrupt) as exc:
                ended = exc
                raise
            finally:
                for directory in _output_dirs(kind, kwargs, ended):
                    write_cell(directory, entry)

        return click.option(
            "--cell", "cell", metavar="JSON|FILE",
            help="A job entry of `zstest matrix` (JSON or a file): sets --series/--config/"
                 "--kernel/--suite from it (explicit options win); writes cell.json.")(wrapper)

    return decorate
