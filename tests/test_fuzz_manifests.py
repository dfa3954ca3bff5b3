"""Property-based fuzzing of the manifest loaders (manifests.py): any JSON, and recorded real
build.json / results.json with any value replaced anywhere, loads or is one sentence and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, strategies as st

from fuzzing import assert_one_sentence, fuzz
from zstest.errors import ZstestError
from zstest import manifests

DATA = Path(__file__).parent / "data"
REAL = {"build.json": sorted(DATA.rglob("build.json"))[:6],
        "results.json": sorted(DATA.rglob("results.json"))[:6]}
LOADERS = {"build.json": manifests.load_build, "results.json": manifests.load_results,
           "bisect.json": manifests.load_bisect, "cell.json": manifests.load_cell,
           "apply.json": manifests.load_apply, "mutate.json": manifests.load_mutate,
           "b4check.json": lambda path: manifests.load_b4check(Path(path).parent)}

SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                   st.sampled_from(["/etc/passwd", "../../..", "x" * 300, "\x1b[2J", ""]))
JSON = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=20)


def load_or_refuse(loader, path):
    try:
        loader(path)
    except ZstestError as err:
        assert_one_sentence(err)


def paths_in(value, prefix=()):
    """Every (path to a value) in a JSON document."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths_in(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from paths_in(v, prefix + (i,))


def replaced(doc, path, new):
    if not path:
        return new
    copy = list(doc) if isinstance(doc, list) else dict(doc)
    copy[path[0]] = replaced(doc[path[0]], path[1:], new)
    return copy


@fuzz(60)
@given(name=st.sampled_from(sorted(LOADERS)), doc=st.one_of(JSON, st.dictionaries(
    st.sampled_from(["schema", "status", "tests", "splats", "kernel", "series", "patches",
                     "console_log", "artifacts", "config", "name", "steps", "verdict", "mutants",
                     "baseline", "worktree", "problems", "results_dir", "exit_code",
                     "notes"]), JSON,
    max_size=6)))
def test_any_json_loads_or_is_one_sentence(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    load_or_refuse(LOADERS[name], path)


@fuzz(80)
@given(data=st.data(), name=st.sampled_from(sorted(REAL)))
def test_a_real_manifest_with_any_value_replaced(tmp_path, data, name):
    source = data.draw(st.sampled_from(REAL[name]))
    doc = json.loads(source.read_text())
    where = data.draw(st.sampled_from(list(paths_in(doc))))
    path = tmp_path / name
    path.write_text(json.dumps(replaced(doc, where, data.draw(JSON))))
    load_or_refuse(LOADERS[name], path)


@fuzz(30)
@given(raw=st.one_of(st.binary(max_size=200),
                     st.integers(1, 200000).map(lambda n: b"[" * n + b"]" * n),
                     st.integers(1, 200000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)))
def test_any_bytes_load_or_are_one_sentence(tmp_path, raw):
    path = tmp_path / "results.json"
    path.write_bytes(raw)
    load_or_refuse(manifests.load_results, path)
