"""`zstest watch --matrix DIR` and `--collect DIR`: the runs fan out to the CI templates.

--matrix: a queued series is not run here; DIR/<key>/ gets series.mbox (the thread), a
matrix.toml for the templates' `matrix` input (ci/github/zstest.yml, ci/gitlab/zstest.yml) and
cells.json (`zstest matrix --format json` of it); the series is `dispatched`. A cell is named
`<key>-<config>-<tree>-<suite>` (matrix.cell_name), its series is the mbox path as DIR was given.

--collect DIR: every results dir under DIR (a CI artifact download; each boot job keeps its
cell.json) whose cell name starts with a dispatched series' key is copied into that series'
dir as if it had run here; report, reply, KCIDB and the page follow, and the series is `done`
with the worst exit code of its cells. A cell whose build failed has no results dir (its boot
job never ran): the series stays `dispatched` until a results dir of it comes back.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, List

from ..compare import merge
from ..errors import EXIT_OK, BadInput
from ..fsutil import write_text_atomic
from ..matrix import CONFIG_SEPARATOR, expand, matrix_from_dict, render
from .execute import SeriesRun, results_dir_for, verdict_word
from .view import WatcherView


def _toml_string(value: str) -> str:
    return json.dumps(value)        # a JSON string with \\ and \" escapes is a TOML basic string


def dispatch(watcher: "WatcherView", row) -> Path:
    cfg = watcher.cfg
    out = Path(cfg.matrix_dir) / row.key
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(watcher.series_dir(row.key) / "thread.mbox", out / "series.mbox")
    series_value = str(out / "series.mbox")
    axes = {"series": {row.key: series_value},
            "config": [CONFIG_SEPARATOR.join(cfg.run.configs)],
            "tree": [cfg.tree_label], "suite": list(cfg.run.suites)}
    cells = expand(matrix_from_dict(axes, source=str(out / "matrix.toml")))
    toml = [f"# zstest watch: {row.title.replace(chr(10), ' ')} v{row.revision} <{row.root}>",
            f"series = {{ {_toml_string(row.key)} = {_toml_string(series_value)} }}",
            f"config = [{_toml_string(axes['config'][0])}]",
            f"tree = [{_toml_string(cfg.tree_label)}]",
            "suite = [" + ", ".join(_toml_string(s) for s in cfg.run.suites) + "]"]
    write_text_atomic(out / "matrix.toml", "\n".join(toml) + "\n")
    write_text_atomic(out / "cells.json", render(cells, "json") + "\n")
    with watcher.state.transaction() as db:
        watcher.state.update_series(db, row.id, status="dispatched")
    watcher.say(f"dispatched {row.key}: {len(cells)} cell(s) in {out}")
    return out


def dispatch_all(watcher: "WatcherView") -> List[Path]:
    return [dispatch(watcher, row) for row in watcher.state.all_series("queued")]


def collect(watcher: "WatcherView", root: Path) -> List[str]:
    """Results dirs under root -> their dispatched series; the keys finished."""
    table = merge([root])
    waiting = watcher.state.all_series("dispatched")
    found: Dict[int, List[int]] = {}
    for cell in table.cells:
        name = str(cell.meta.get("name") or "")
        row = next((r for r in waiting if name.startswith(r.key + "-")), None)
        if row is None:
            watcher.say(f"{cell.path}: cell {name or '(no cell.json)'} is no dispatched series; "
                        f"skipped")
            continue
        suite = str(cell.meta.get("suite") or watcher.cfg.run.suites[0])
        suites = watcher.cfg.run.suites
        dest = results_dir_for(watcher.series_dir(row.key), suite,
                               suite == suites[0] or suite not in suites)
        if dest.resolve() != Path(cell.path).resolve():
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(cell.path, dest)
        found.setdefault(row.id, []).append(cell.exit_code if cell.exit_code is not None else 2)
    done = []
    for row in waiting:
        if row.id not in found:
            continue
        codes = [c for c in found[row.id] if c != EXIT_OK] or [EXIT_OK]
        results = [d for d in (results_dir_for(watcher.series_dir(row.key), s, i == 0)
                               for i, s in enumerate(watcher.cfg.run.suites)) if d.is_dir()]
        watcher.finish(row, SeriesRun(verdict_word(codes[0]), codes[0], results_dirs=results))
        done.append(row.key)
    if not done:
        raise BadInput(f"{root} holds no results of a dispatched series (cell names start with "
                       f"the series key).")
    return done
