"""`zstest matrix` and `--cell`: job lists for both CI engines, one cell's options."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_zstest
from zstest.errors import BadInput
from zstest.matrix import (AXES, expand, gitlab_pipeline, load_cell, load_matrix,
                           matrix_from_dict)

EXAMPLE = REPO / "ci" / "matrix.example.toml"


def matrix_json(*args) -> object:
    proc = run_zstest("matrix", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def expected_count(path: Path) -> int:
    """Product of the axes minus the excluded cells plus the includes, counted independently."""
    data = tomllib.loads(path.read_text())
    axes = {a: list(data[a]) if a in data else ["-"] for a in AXES}
    combos = [dict(zip(AXES, c)) for c in __import__("itertools").product(*axes.values())]
    kept = [c for c in combos
            if not any(all(c[k] == v for k, v in rule.items()) for rule in data.get("exclude", []))]
    return len(kept) + len(data.get("include", []))


def test_example_github_include_list():
    out = matrix_json(EXAMPLE, "--format", "github")
    assert list(out) == ["include"]
    cells = out["include"]
    assert len(cells) == expected_count(EXAMPLE) == 3
    for cell in cells:
        # a cell on the default arch (x86_64) carries no arch key: cells from before arches
        assert set(cell) == {"name", *AXES} - {"arch"}
        assert all(isinstance(cell[a], str) for a in AXES if a != "arch")
    assert [c["name"] for c in cells] == ["v1-base-6.1-default", "v2-base-6.1-default",
                                          "v2-base-6.12-boot"]
    # labels resolve to the table's values: the series paths exist in the repository
    for cell in cells:
        assert (REPO / cell["series"]).is_dir()
    assert cells[2] == {"name": "v2-base-6.12-boot", "series": "kernel-patches/demo-migrated/v2",
                        "config": "base", "tree": "6.12", "suite": "boot"}


def test_github_output_is_one_line():
    proc = run_zstest("matrix", EXAMPLE, "--format", "github")
    assert proc.stdout.count("\n") == 1   # $GITHUB_OUTPUT takes name=value on one line


def test_exclude_and_include_counts(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('series = { a = "s/a.mbox", b = "s/b" }\n'
                    'config = ["base", "base+debug"]\n'
                    'tree = ["6.1", "6.12"]\n'
                    'suite = ["quick"]\n'
                    '[[exclude]]\nseries = "b"\ntree = "6.12"\n'
                    '[[exclude]]\nconfig = "base+debug"\ntree = "6.12"\nseries = "a"\n'
                    '[[include]]\nseries = "s/c"\nsuite = "boot"\n')
    cells = matrix_json(path)
    assert len(cells) == 2 * 2 * 2 - 2 - 1 + 1
    names = [c["name"] for c in cells]
    assert "a-base+debug-6.1-quick" in names
    assert "b-base-6.12-quick" not in names and "a-base+debug-6.12-quick" not in names
    extra = cells[-1]
    # an include's missing axes take each axis's first value
    assert extra == {"name": "c-base-6.1-boot", "series": "s/c", "config": "base",
                     "tree": "6.1", "suite": "boot"}


def test_axes_from_options_and_overrides():
    cells = matrix_json("--series", "", "--series", "kernel-patches/demo-migrated/v2",
                        "--suite", "boot", "--tree", "6.1", "--tree", "6.12")
    assert len(cells) == 4
    assert cells[0] == {"name": "none-base-6.1-boot", "series": "", "config": "base",
                        "tree": "6.1", "suite": "boot"}
    # an option replaces that axis of the file, the rest of the file stays
    cells = matrix_json(EXAMPLE, "--suite", "quick")
    assert [c["suite"] for c in cells] == ["quick", "quick", "boot"]


def test_gitlab_shapes():
    entries = matrix_json(EXAMPLE, "--format", "gitlab")
    cells = matrix_json(EXAMPLE)
    assert len(entries) == len(cells)
    for entry, cell in zip(entries, cells):
        assert all(isinstance(v, str) and "/" not in entry["ZSTEST_CACHE_KEY"] for v in entry.values())
        assert json.loads(entry["ZSTEST_CELL"]) == cell
        assert entry["ZSTEST_CELL_NAME"] == cell["name"]
    proc = run_zstest("matrix", EXAMPLE, "--format", "gitlab-pipeline")
    pipeline = yaml.safe_load(proc.stdout)
    assert pipeline["include"] == [{"local": "ci/gitlab/zstest.yml"}]
    for cell in cells:
        boot = pipeline[f"boot {cell['name']}"]
        assert boot["extends"] == ".zstest-boot"
        assert boot["needs"] == [{"job": f"build {cell['name']}", "artifacts": True}]
        assert pipeline[f"build {cell['name']}"]["extends"] == ".zstest-build"
    assert len(pipeline["merge"]["needs"]) == len(cells)


@pytest.mark.parametrize("text, words", [
    ('series = ["a"]\nsuites = ["boot"]\n', "unknown key(s) suites"),
    ('series = ["a"]\n[[exclude]]\nseries = "zz"\n', "matches no cell"),
    ('series = ["x/a", "y/a"]\n', "share the label 'a'"),
    ('series = { a = "p" }\n[[include]]\nseries = "a"\n', "both named"),
    ('tree = []\n', "has no values"),
    ('tree = [6.1]\n', "must be a string"),
    ('series = [\n', "not valid TOML"),
])
def test_bad_matrix_files(tmp_path, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    proc = run_zstest("matrix", path)
    assert proc.returncode == 2, proc.stdout
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_load_cell_forms(tmp_path):
    assert load_cell('{"series": "s/v3.mbox"}') == {
        "name": "v3-base-6.1-default", "series": "s/v3.mbox", "config": "base",
        "tree": "6.1", "suite": "default"}
    path = tmp_path / "cell.json"
    cells = expand(load_matrix(EXAMPLE))
    path.write_text(json.dumps(cells[2]))
    assert load_cell(str(path)) == cells[2]
    path.write_text(json.dumps(cells[:1]))     # a one-entry job list is one cell
    assert load_cell(str(path)) == cells[0]
    assert load_cell('{"config": ["base", "debug"]}')["config"] == "base+debug"


def test_pipeline_from_dict_is_deterministic():
    m = matrix_from_dict({"suite": ["boot", "quick"]})
    assert [c["name"] for c in expand(m)] == ["none-base-6.1-boot", "none-base-6.1-quick"]
    p = gitlab_pipeline(expand(m))
    assert [k for k in p if k.startswith("build ")] == ["build none-base-6.1-boot",
                                                         "build none-base-6.1-quick"]


@pytest.mark.parametrize("cell, words", [
    ('{"suite": 3}', "suite must be a string"),
    ('{"seriess": "x"}', "unknown key(s) seriess"),
    ('[{"a": 1}, {"b": 2}]', "one JSON object"),
    ('{"series": ', "not valid JSON"),
    ('no-such-file.json', "neither a JSON object nor a file"),
])
def test_bad_cells(cell, words):
    proc = run_zstest("boot-and-run", "--cell", cell, "--build", "/nonexistent")
    assert proc.returncode == 2
    assert words in proc.stderr and "Traceback" not in proc.stderr


def test_cell_json_goes_where_the_command_says_it_wrote(tmp_path):
    """Without --out, cell.json lands in the results dir boot-and-run claimed and named (its
    error carries results_dir), not in whatever cache/results/last points at."""
    cache = tmp_path / "cache"
    stale = cache / "results" / "older"
    stale.mkdir(parents=True)
    (cache / "results" / "last").symlink_to(stale)
    proc = run_zstest("boot-and-run", "--cell", '{"name": "c1", "suite": "nosuch-a"}',
                      "--build", tmp_path, env={"ZSTEST_CACHE": str(cache)})
    assert proc.returncode == 2 and "'nosuch-a'" in proc.stderr
    written = sorted(p.parent.name for p in (cache / "results").rglob("cell.json"))
    assert len(written) == 1 and written[0] != "older", written
    assert json.loads(next((cache / "results").rglob("cell.json")).read_text())["name"] == "c1"


def test_cell_sets_options_and_explicit_options_win(tmp_path):
    # The first error each command hits names the option value in use: cheap proof of the mapping.
    out = tmp_path / "res"
    proc = run_zstest("boot-and-run", "--cell", '{"name": "c1", "suite": "nosuch-a"}',
                      "--build", tmp_path, "--out", out)
    assert proc.returncode == 2 and "'nosuch-a'" in proc.stderr
    # cell.json is written into the results dir even when the run stops early
    assert json.loads((out / "cell.json").read_text())["name"] == "c1"
    proc = run_zstest("boot-and-run", "--cell", '{"suite": "nosuch-a"}', "--suite", "nosuch-b",
                      "--build", tmp_path, "--out", out)
    assert proc.returncode == 2 and "'nosuch-b'" in proc.stderr
    proc = run_zstest("build", "--cell", '{"config": "nosuch-c"}', "--out", tmp_path / "b")
    assert proc.returncode == 2 and "--config nosuch-c" in proc.stderr
    proc = run_zstest("build", "--cell", '{"config": "nosuch-c"}', "--config", "nosuch-d",
                      "--out", tmp_path / "b")
    assert proc.returncode == 2 and "--config nosuch-d" in proc.stderr
    proc = run_zstest("build", "--cell", '{"tree": "/nonexistent/tree"}', "--out", tmp_path / "b")
    assert proc.returncode == 2 and "/nonexistent/tree does not exist" in proc.stderr
    proc = run_zstest("run", "--cell", '{"config": "nosuch-e", "suite": "boot"}')
    assert proc.returncode == 2 and "--config nosuch-e" in proc.stderr


def test_arch_axis_cells_and_names():
    m = matrix_from_dict({"suite": ["boot"], "arch": ["x86_64", "arm64", "arm64:64k", "i386"]})
    cells = expand(m)
    assert [c["name"] for c in cells] == ["none-base-6.1-boot", "none-base-6.1-boot-arm64",
                                          "none-base-6.1-boot-arm64_64k",
                                          "none-base-6.1-boot-i386"]
    assert "arch" not in cells[0] and [c.get("arch") for c in cells[1:]] == \
        ["arm64", "arm64:64k", "i386"]
    for bad, why in (("sparc64", "is not one of arm64, i386, x86_64"),
                     ("arm64:8k", "arm64 offers 4k, 16k, 64k"), ("x86_64:64k", "x86_64 offers 4k")):
        with pytest.raises(BadInput, match=why):
            matrix_from_dict({"arch": [bad]})


def test_a_cell_arch_reaches_the_build(tmp_path):
    """`build --cell` takes --arch/--page-size from the cell's arch (explicit options win):
    a bad page size for the cell's arch is refused before anything is built."""
    proc = run_zstest("build", "--cell", '{"arch": "arm64:8k"}', "--out", tmp_path / "b")
    assert proc.returncode == 2 and "arm64 offers 4k, 16k, 64k" in proc.stderr, proc.stderr
    # the cell's arch with an explicit --page-size: the arch came from the cell
    proc = run_zstest("build", "--cell", '{"arch": "i386"}', "--page-size", "64k",
                      "--out", tmp_path / "b2")
    assert proc.returncode == 2 and "i386 offers 4k" in proc.stderr, proc.stderr
    # an explicit --arch wins over the cell's
    proc = run_zstest("build", "--cell", '{"arch": "i386"}', "--arch", "arm64", "--page-size",
                      "8k", "--out", tmp_path / "b3")
    assert proc.returncode == 2 and "arm64 offers" in proc.stderr, proc.stderr


@pytest.mark.parametrize("arch, expect", [("x86_64", ("x86_64", None)), ("arm64", ("arm64", None)),
                                          ("arm64:64k", ("arm64", "64k")),
                                          (" arm64:64K ", ("arm64", "64k"))])
def test_a_cell_arch_is_read_by_target(arch, expect):
    """The cell's arch value is Target's cell name: one reader for "arm64:64k" everywhere."""
    from zstest.commands.cell import _CELL_PARAMS
    got = tuple(_CELL_PARAMS[p][1](arch) for p in ("arch", "page_size"))
    assert got == expect


def test_a_cell_with_an_unknown_arch_is_one_sentence(tmp_path):
    proc = run_zstest("build", "--cell", '{"arch": "sparc:8k"}', "--out", tmp_path / "b")
    assert proc.returncode == 2 and "arch 'sparc:8k' is not one of arm64, i386, x86_64" in proc.stderr
    assert "Traceback" not in proc.stderr
