"""zstest/manifests.py: one load (shape checked) and one atomic save per JSON artifact."""

import json
import re

import pytest

from zstest import manifests
from zstest.errors import BadInput


def test_save_stamps_schema_and_load_keeps_unknown_keys(tmp_path):
    manifests.save_build(tmp_path, {"status": "ok", "bootable": True, "from_the_future": [1],
                                    "kernel": {"version": "6.1.0", "new_field": "x"},
                                    "artifacts": {"bzImage": "bzImage", "kmod": {"modules": ["z.ko"]}}})
    assert json.loads((tmp_path / "build.json").read_text())["schema"] == manifests.BUILD_SCHEMA
    m = manifests.load_build(tmp_path)
    assert m.status == "ok" and m.bootable and m.kernel.version == "6.1.0"
    assert m.artifact(m.artifacts.bzimage) == tmp_path / "bzImage"
    assert m.artifacts.kmod_modules == ["z.ko"]
    assert m.data["from_the_future"] == [1] and m.data["kernel"]["new_field"] == "x"


def test_a_file_without_schema_is_version_1(tmp_path):
    (tmp_path / "results.json").write_text('{"status": "passed", "tests": []}')
    m = manifests.load_results(tmp_path)
    assert m.schema == 1 and m.status == "passed" and m.tests == []


@pytest.mark.parametrize("content, words", [
    ('{"tests": [{"name": 3}]}', "tests[0].name is a number, not a string"),
    ('{"kernel": [1]}', "kernel is an array, not an object"),
    ('{"tests": [1]}', "tests[0] is a number, not an object"),
    ('{"accel": {"name": true}}', "accel.name is a boolean, not a string"),
    ('[]', "not a zstest results.json (an array, not an object)"),
    ('{"tests": ', "not valid JSON"),
])
def test_wrong_shape_names_the_file_and_the_first_bad_field(tmp_path, content, words):
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(BadInput) as exc:
        manifests.load_results(tmp_path)
    assert str(tmp_path / "results.json") in exc.value.message and words in exc.value.message


def test_not_utf8_is_bad_input(tmp_path):
    (tmp_path / "build.json").write_bytes(b'\xff\xfe{"status": "ok"}')
    with pytest.raises(BadInput, match="not UTF-8"):
        manifests.load_build(tmp_path)


def test_build_patches_are_typed(tmp_path):
    manifests.save_build(tmp_path, {"series": {"revision": 2, "patches": [
        {"index": 1, "subject": "zsmalloc: a", "apply": "applied", "build": "ok",
         "new_warnings": ["w"], "commit": "a" * 40}]}})
    m = manifests.load_build(tmp_path)
    assert m.series.revision == "2" and m.patches[0].subject == "zsmalloc: a"
    assert m.patches[0].new_warnings == ["w"] and m.patches[0].commit == "a" * 40
    (tmp_path / "build.json").write_text('{"series": {"patches": [{"index": "one"}]}}')
    with pytest.raises(BadInput, match=r"series.patches\[0\].index is a string, not a number"):
        manifests.load_build(tmp_path)


def test_cell_and_bisect_round_trip(tmp_path):
    manifests.save_cell(tmp_path, {"name": "c1", "series": "", "config": "base", "tree": "6.1",
                                   "suite": "boot"})
    cell = manifests.load_cell(tmp_path)
    assert cell.name == "c1" and cell.suite == "boot" and cell.schema == 1
    manifests.save_bisect(tmp_path, {"series": "s", "finished": False, "steps": [{"prefix": 1}]})
    b = manifests.load_bisect(tmp_path)
    assert b.finished is False and b.steps == [{"prefix": 1}]


@pytest.mark.parametrize("content, words", [
    ('{"patches": [{"index": 1, "failed_files": "mm/zsmalloc.c"}]}',
     "patches[0].failed_files is a string, not an array"),
    ('{"worktree": {"path": 7}}', "worktree.path is a number, not a string"),
    ('{"problems": [null]}', "problems[0] is null, not a string"),
])
def test_apply_json_wrong_shape_names_the_field(tmp_path, content, words):
    (tmp_path / "apply.json").write_text(content)
    with pytest.raises(BadInput) as exc:
        manifests.load_apply(tmp_path)
    assert str(tmp_path / "apply.json") in exc.value.message and words in exc.value.message


def test_mutate_json_round_trip_and_its_shape(tmp_path):
    record = {"id": "m1", "file": "mm/zsmalloc.c", "verdict": "killed", "runs": [{"kind": "whole"}],
              "tests_run": ["t.py::a"], "from_the_future": 1}
    manifests.save_mutate(tmp_path, {"status": "finished", "mutants": [record],
                                     "baseline": {"key": "k", "run_s": 12.5, "tests": ["t.py::a"]}})
    m = manifests.load_mutate(tmp_path)
    assert m.schema == manifests.MUTATE_SCHEMA and m.status == "finished"
    assert m.mutants == [record] and m.baseline["run_s"] == 12.5
    for content, words in (('{"mutants": [{"verdict": "killed"}]}', "mutants[0].id is null"),
                           ('{"mutants": [{"id": "m1", "runs": [3]}]}', "mutants[0].runs[0] is a number"),
                           ('{"baseline": {"tests": [1]}}', "baseline.tests[0] is a number")):
        (tmp_path / "mutate.json").write_text(content)
        with pytest.raises(BadInput, match=re.escape(words)):
            manifests.load_mutate(tmp_path)
    (tmp_path / "mutate.json").write_text('{"schema": 99, "mutants": []}')
    with pytest.raises(BadInput, match="schema 99; this zstest reads and writes 1"):
        manifests.load_mutate(tmp_path)


def test_results_kernel_arch_is_typed(tmp_path):
    manifests.save_results(tmp_path, {"tests": [], "kernel": {"arch": "arm64", "page_size": 65536}})
    m = manifests.load_results(tmp_path)
    assert (m.kernel.arch, m.kernel.page_size) == ("arm64", 65536)


def test_b4check_state_shape(tmp_path):
    assert manifests.load_b4check(tmp_path) is None
    manifests.save_b4check(tmp_path, {"status": "done", "exit_code": 0, "started": 1.5,
                                      "results_dir": "/r", "notes": ["b4 am"]})
    assert manifests.load_b4check(tmp_path)["results_dir"] == "/r"
    for content, words in (('{"results_dir": 5}', "results_dir is a number, not a string"),
                           ('{"exit_code": "0"}', "exit_code is a string, not a number"),
                           ('{"notes": [{}]}', "notes[0] is an object, not a string")):
        (tmp_path / "b4check.json").write_text(content)
        with pytest.raises(BadInput, match=re.escape(words)):
            manifests.load_b4check(tmp_path)


# Each loader's sentence for a directory without its manifest (the file named: the same).
MISSING = [(manifests.load_build, "is not a zstest build directory (no build.json)."),
           (manifests.load_results, "holds no results.json: give a results directory."),
           (manifests.load_bisect, "is not a zstest bisect directory (no bisect.json)."),
           (manifests.load_cell, "holds no cell.json."),
           (manifests.load_apply, "holds no apply.json."),
           (manifests.load_mutate, "is not a zstest mutate directory (no mutate.json).")]


@pytest.mark.parametrize("load, words", MISSING, ids=lambda v: getattr(v, "__name__", ""))
def test_a_directory_without_its_manifest_is_one_sentence(tmp_path, load, words):
    with pytest.raises(BadInput) as exc:
        load(tmp_path)
    assert exc.value.message == f"{tmp_path} {words}"


@pytest.mark.parametrize("load, words", MISSING, ids=lambda v: getattr(v, "__name__", ""))
def test_a_fifo_under_the_manifests_name_is_not_waited_on(tmp_path, load, words):
    import os
    name = re.search(r"(\w+\.json)", words).group(1)
    os.mkfifo(tmp_path / name)
    with pytest.raises(BadInput) as exc:
        load(tmp_path)
    assert exc.value.message == f"{tmp_path} {words}"


def test_read_object_refuses_a_device_a_fifo_and_an_oversized_file(tmp_path):
    """What a command names as a JSON file (compare's sides) is read only when it is a
    regular file of a bounded size: /dev/zero was read until memory ran out, a FIFO waited."""
    import os
    with pytest.raises(BadInput, match=r"^/dev/zero is not a regular file: it is not a zstest "
                                       r"results.json or build.json\.$"):
        manifests.read_object("/dev/zero")
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(BadInput, match=r"fifo.json is not a regular file"):
        manifests.read_object(tmp_path / "fifo.json")
    big = tmp_path / "results.json"
    with open(big, "wb") as fh:         # sparse: costs no disk
        fh.truncate(manifests.MAX_MANIFEST_BYTES + 1)
    with pytest.raises(BadInput, match=r"holds more than 64 MiB: it is not a zstest results"):
        manifests.load_results(tmp_path)
