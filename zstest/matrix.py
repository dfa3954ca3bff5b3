"""The CI job matrix: a small TOML file -> one job entry ("cell") per runner.

A matrix file names values for four axes (series, config, tree, suite), as a list
or as a table of label = value, plus `exclude` and `include` lists:

    series = { v1 = "kernel-patches/demo-migrated/v1", v2 = "kernel-patches/demo-migrated/v2" }
    config = ["base"]
    tree = ["6.1"]
    suite = ["default"]
    [[exclude]]
    series = "v1"
    [[include]]
    series = "v2"
    tree = "6.12"

Cells are the product of the axes minus the excluded ones, plus the includes
(an include's missing axes take the axis's first value). A cell is a plain dict
{"name", "series", "config", "tree", "suite"}: `zstest build/boot-and-run/run
--cell` take one (zstest/commands/cell.py), and write it as cell.json so `zstest compare
--merge` can label its column. Paths in a matrix are kept as written: relative to where the jobs run.
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .errors import BadInput
from .target import Target

AXES = ("series", "config", "tree", "suite", "arch")
# An axis the file leaves out: the same defaults as `zstest build` / `boot-and-run`.
AXIS_DEFAULTS = {"series": "", "config": "base", "tree": "6.1", "suite": "default",
                 "arch": Target.default().cell_name()}
# arch values: an arch record's name, optionally with a page size ("arm64:64k"). A cell on the
# default arch carries no arch key and no arch in its name (cells from before there were arches).
ARCH_AXIS = "arch"
CELL_KEYS = ("name",) + AXES
# Several profiles/fragments in one config value: "base+debug" -> --config base --config debug.
CONFIG_SEPARATOR = "+"
_DEBIAN_TREE = re.compile(r"^\d+\.\d+$")
_MATRIX_KEYS = set(AXES) | {"exclude", "include"}
# A cell's name and an axis label become directory and artifact names in CI (results/<name>):
# no "/", no "..", no leading "." or "-", no control characters or spaces.
SAFE_NAME = re.compile(r"[A-Za-z0-9_+@][A-Za-z0-9._+@-]{0,127}")


@dataclass
class AxisValue:
    label: str
    value: str


@dataclass
class Matrix:
    axes: Dict[str, List[AxisValue]]
    exclude: List[dict] = field(default_factory=list)
    include: List[dict] = field(default_factory=list)
    source: str = "<options>"


# ---------------------------------------------------------------- labels and names

def default_label(axis: str, value: str) -> str:
    """A short column label: a path's last part, 'none' for no series, '+'-joined configs."""
    if axis == "series" and not value:
        return "none"
    if axis == "config":
        return CONFIG_SEPARATOR.join(_path_label(part) for part in split_config(value))
    if axis == "tree" and _DEBIAN_TREE.match(value):
        return value
    return _path_label(value)


def _path_label(value: str) -> str:
    parts = [p for p in value.replace("\\", "/").split("/") if p and p != "."]
    last = parts[-1] if parts else value
    for suffix in (".mbox", ".config", ".patch"):
        if last.endswith(suffix) and last != suffix:
            last = last[: -len(suffix)]
    label = re.sub(r"[^A-Za-z0-9._+@]+", "_", last).lstrip(".") or "x"
    return re.sub(r"\.{2,}", ".", label)


def check_name(name: object, what: str, source: str) -> str:
    """name when it is safe as a directory name (SAFE_NAME); BadInput otherwise."""
    if not isinstance(name, str):
        raise BadInput(f"{source}: {what} must be a string; got {type(name).__name__}.")
    if not SAFE_NAME.fullmatch(name) or ".." in name:
        raise BadInput(f"{source}: {what} {name[:80]!r} is not a safe name for a directory "
                       f"(letters, digits, . _ + @ -; no '/', '..' or leading '.' or '-').")
    return name


def cell_name(labels: Dict[str, str]) -> str:
    return "-".join(labels[a] for a in AXES
                    if not (a == ARCH_AXIS and labels.get(a, AXIS_DEFAULTS[a]) == AXIS_DEFAULTS[a]))


def check_arch_value(value: str, source: str) -> str:
    """"arm64", "arm64:64k": a known arch and one of its page sizes; BadInput otherwise."""
    Target.parse(value, source)
    return value


def split_config(value) -> List[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v)]
    return [part for part in str(value).split(CONFIG_SEPARATOR) if part]


# ---------------------------------------------------------------- loading

def load_matrix(path: Path) -> Matrix:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"matrix file {path} does not exist.")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path} is not valid TOML ({exc}).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read matrix file {path} ({exc}).") from None
    return matrix_from_dict(data, source=str(path))


def matrix_from_dict(data: dict, source: str = "<options>") -> Matrix:
    unknown = sorted(set(data) - _MATRIX_KEYS)
    if unknown:
        raise BadInput(f"{source}: unknown key(s) {', '.join(unknown)}; a matrix has "
                       f"{', '.join(AXES)}, exclude and include.")
    axes = {axis: _axis_values(axis, data.get(axis, [AXIS_DEFAULTS[axis]]), source)
            for axis in AXES}
    exclude = _entry_list(data.get("exclude", []), "exclude", source)
    include = _entry_list(data.get("include", []), "include", source)
    return Matrix(axes=axes, exclude=exclude, include=include, source=source)


def _axis_values(axis: str, raw, source: str) -> List[AxisValue]:
    if isinstance(raw, str):
        raw = [raw]
    if isinstance(raw, dict):
        values = []
        for label, value in raw.items():
            if not isinstance(value, (str, list)):
                raise BadInput(f"{source}: {axis}.{label} must be a string, not {type(value).__name__}.")
            values.append(AxisValue(check_name(str(label), f"the {axis} label", source),
                                    _axis_string(axis, value)))
    elif isinstance(raw, list):
        for value in raw:
            if not isinstance(value, (str, list)):
                raise BadInput(f"{source}: every value of {axis} must be a string; "
                               f"got {value!r}.")
        values = [AxisValue(default_label(axis, _axis_string(axis, v)), _axis_string(axis, v))
                  for v in raw]
    else:
        raise BadInput(f"{source}: {axis} must be a list of values or a table of label = value.")
    if not values:
        raise BadInput(f"{source}: the {axis} axis has no values.")
    labels = [v.label for v in values]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise BadInput(f"{source}: two {axis} values share the label {dupes[0]!r}; "
                       f"name them with a table ({axis} = {{ a = ..., b = ... }}).")
    return values


def _axis_string(axis: str, value) -> str:
    if isinstance(value, list):
        if axis != "config":
            raise BadInput(f"only config values may be lists (several profiles); {axis} got {value!r}.")
        return CONFIG_SEPARATOR.join(str(v) for v in value)
    if axis == ARCH_AXIS:
        return check_arch_value(value, "the arch axis")
    return value


def _entry(name: str, values: Dict[str, str]) -> dict:
    """A job entry: the name and every axis, the arch only when it is not the default."""
    entry = {"name": name, **values}
    if entry.get(ARCH_AXIS) == AXIS_DEFAULTS[ARCH_AXIS]:
        del entry[ARCH_AXIS]
    return entry


def _entry_list(raw, key: str, source: str) -> List[dict]:
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise BadInput(f"{source}: {key} must be a list of tables ([[{key}]]).")
    allowed = set(AXES) | ({"name"} if key == "include" else set())
    for entry in raw:
        bad = sorted(set(entry) - allowed)
        if bad:
            raise BadInput(f"{source}: an {key} entry has unknown key(s) {', '.join(bad)}; "
                           f"allowed: {', '.join(sorted(allowed))}.")
        if not entry:
            raise BadInput(f"{source}: an {key} entry is empty.")
        for axis, value in entry.items():
            if axis == "name":
                check_name(value, f"an {key} entry's name", source)
            elif not isinstance(value, (str, list)):
                raise BadInput(f"{source}: {key} {axis} must be a string; got {value!r}.")
    return raw


# ---------------------------------------------------------------- expansion

def _lookup(matrix: Matrix, axis: str, given) -> AxisValue:
    """An entry's axis value: an axis label, or a value of its own (with its default label)."""
    text = _axis_string(axis, given)
    for av in matrix.axes[axis]:
        if text == av.label:
            return av
    for av in matrix.axes[axis]:
        if text == av.value:
            return av
    return AxisValue(default_label(axis, text), text)


def _matches(combo: Dict[str, AxisValue], rule: dict) -> bool:
    for axis, given in rule.items():
        text = _axis_string(axis, given)
        if text not in (combo[axis].label, combo[axis].value):
            return False
    return True


def expand(matrix: Matrix) -> List[dict]:
    """The job list: product minus excludes plus includes, each with every axis and a name."""
    cells: List[dict] = []
    names: Dict[str, str] = {}
    unused = list(range(len(matrix.exclude)))
    for values in itertools.product(*(matrix.axes[a] for a in AXES)):
        combo = dict(zip(AXES, values))
        hit = [i for i, rule in enumerate(matrix.exclude) if _matches(combo, rule)]
        if hit:
            unused = [i for i in unused if i not in hit]
            continue
        _add_cell(cells, names, combo, None, matrix.source)
    if unused:
        rule = matrix.exclude[unused[0]]
        raise BadInput(f"{matrix.source}: the exclude entry {json.dumps(rule)} matches no cell; "
                       f"check its values against the axes.")
    for entry in matrix.include:
        combo = {axis: (_lookup(matrix, axis, entry[axis]) if axis in entry
                        else matrix.axes[axis][0]) for axis in AXES}
        _add_cell(cells, names, combo, entry.get("name"), matrix.source)
    return cells


def _add_cell(cells: List[dict], names: Dict[str, str], combo: Dict[str, AxisValue],
              name: Optional[str], source: str) -> None:
    name = check_name(name or cell_name({a: combo[a].label for a in AXES}), "the cell name",
                      source)
    if name in names:
        raise BadInput(f"{source}: two cells are both named {name!r}; give an include a "
                       f"different name = \"...\" or drop the duplicate.")
    names[name] = name
    cells.append(_entry(name, {a: combo[a].value for a in AXES}))


# ---------------------------------------------------------------- output shapes

def github_matrix(cells: Sequence[dict]) -> dict:
    """strategy.matrix for GitHub Actions: {"include": [cell, ...]} (fed through fromJSON)."""
    return {"include": [dict(c) for c in cells]}


def gitlab_variables(cell: dict) -> Dict[str, str]:
    """A cell as GitLab job variables: the entry as JSON, its name, and '/'-free cache keys."""
    tree = default_label("tree", cell["tree"])
    return {"ZSTEST_CELL_NAME": cell["name"], "ZSTEST_CELL": json.dumps(cell, sort_keys=True),
            "ZSTEST_TREE_KEY": tree,
            "ZSTEST_CACHE_KEY": f"{tree}-{default_label('config', cell['config'])}"}


def gitlab_matrix(cells: Sequence[dict]) -> List[dict]:
    """parallel:matrix for GitLab: one entry per cell (see gitlab_variables)."""
    return [gitlab_variables(c) for c in cells]


def gitlab_pipeline(cells: Sequence[dict], template: str = "ci/gitlab/zstest.yml") -> dict:
    """A child pipeline (JSON is YAML): per cell a build and a boot job, then one merge job.

    Explicit jobs rather than parallel:matrix, so each boot job needs exactly its own build.
    """
    pipeline: dict = {"include": [{"local": template}],
                      "stages": ["build", "boot", "report"]}
    boots = []
    for c in cells:
        variables = gitlab_variables(c)
        build, boot = f"build {c['name']}", f"boot {c['name']}"
        pipeline[build] = {"extends": ".zstest-build", "variables": variables}
        pipeline[boot] = {"extends": ".zstest-boot", "variables": variables,
                          "needs": [{"job": build, "artifacts": True}]}
        boots.append(boot)
    pipeline["merge"] = {"extends": ".zstest-merge",
                         "needs": [{"job": b, "artifacts": True} for b in boots]}
    return pipeline


def render(cells: Sequence[dict], fmt: str, gitlab_template: str = "ci/gitlab/zstest.yml") -> str:
    # One line: GitHub step outputs ($GITHUB_OUTPUT name=value) take a single line.
    if fmt == "github":
        return json.dumps(github_matrix(cells), separators=(",", ":"))
    if fmt == "gitlab":
        return json.dumps(gitlab_matrix(cells), separators=(",", ":"))
    if fmt == "gitlab-pipeline":
        return json.dumps(gitlab_pipeline(cells, gitlab_template), indent=2)
    if fmt == "json":
        return json.dumps(list(cells), indent=2)
    raise BadInput(f"unknown matrix format {fmt!r}.")


# ---------------------------------------------------------------- one cell

def load_cell(text_or_file: str) -> dict:
    """A job entry from JSON text or a file holding it; completed with defaults and a name."""
    from .manifests import cell_entry
    entry, where = cell_entry(text_or_file)
    unknown = sorted(set(entry) - set(CELL_KEYS) - {"schema"})   # a cell.json is a job entry too
    if unknown:
        raise BadInput(f"{where} has unknown key(s) {', '.join(unknown)}; a job entry has "
                       f"{', '.join(CELL_KEYS)}.")
    cell = {}
    for axis in AXES:
        value = entry.get(axis, AXIS_DEFAULTS[axis])
        if value is None:
            value = AXIS_DEFAULTS[axis]
        if not isinstance(value, (str, list)):
            raise BadInput(f"{where}: {axis} must be a string; got {value!r}.")
        cell[axis] = _axis_string(axis, value)
    name = entry.get("name") or cell_name({a: default_label(a, cell[a]) for a in AXES})
    return _entry(check_name(name, "name", where), cell)


def resolve_tree(value: str) -> Optional[Path]:
    """'6.1' / '6.12': Debian's linux-source in the cache; '' the default; else a path."""
    if not value:
        return None
    if _DEBIAN_TREE.match(value):
        from .cache import default_kernel_tree
        return default_kernel_tree(value)
    return Path(value)


def write_cell(directory: Path, cell: dict) -> Optional[Path]:
    if directory is None or not Path(directory).is_dir():
        return None
    from .manifests import save_cell
    return save_cell(directory, cell)
