"""The Target (zstest/target.py): one arch record and one page size, resolved once from the
options, a build.json or a matrix cell, with the label people read and the cache names."""

from __future__ import annotations

import pytest

from conftest import REPO
from zstest import kconfig
from zstest.arch import DEFAULT_ARCH, arch_spec
from zstest.build import BuildRequest, objdir_for
from zstest.errors import EXIT_USAGE, BadInput
from zstest.manifests import load_build
from zstest.matrix import AXIS_DEFAULTS, check_arch_value
from zstest.target import Target
from zstest.toolchain import resolve as resolve_toolchain

RECORDED_BUILD = REPO / "tests" / "data" / "compare" / "builds" / "demo-v2-each"


def test_default_target_keeps_every_legacy_name():
    t = Target.default()
    assert t.arch == arch_spec(DEFAULT_ARCH) and t.page_size == t.arch.page_size
    assert t.is_default and t.label == DEFAULT_ARCH
    assert (t.cache_suffix, t.arch_cache_suffix, t.argv()) == ("", "", [])
    assert t.cell_name() == DEFAULT_ARCH == AXIS_DEFAULTS["arch"]


@pytest.mark.parametrize("options,label,suffix,arch_suffix,argv,cell", [
    (("arm64", None), "arm64", "arm64", "arm64", ["--arch", "arm64"], "arm64"),
    (("arm64", "64K"), "arm64 64K", "arm64-64k", "arm64",
     ["--arch", "arm64", "--page-size", "64k"], "arm64:64k"),
    (("arm64", "16384"), "arm64 16K", "arm64-16k", "arm64",
     ["--arch", "arm64", "--page-size", "16k"], "arm64:16k"),
    (("i386", None), "i386", "i386", "i386", ["--arch", "i386"], "i386"),
])
def test_other_targets(options, label, suffix, arch_suffix, argv, cell):
    t = Target.from_options(*options)
    assert not t.is_default
    assert (t.label, t.cache_suffix, t.arch_cache_suffix, t.argv(), t.cell_name()) == \
        (label, suffix, arch_suffix, argv, cell)
    # every form reads back to the same value
    assert Target.parse(cell) == t
    assert Target.from_options(argv[1], argv[3] if len(argv) > 2 else None) == t
    assert BuildRequest(arch=options[0], page_size=options[1]).target == t
    assert BuildRequest().set_target(t).target == t


def test_the_arch_default_page_size_spelled_out_is_the_same_target():
    assert Target.parse("arm64:4k") == Target.from_options("arm64") == Target.parse("arm64")
    assert Target.parse("arm64:4k").argv() == ["--arch", "arm64"]


@pytest.mark.parametrize("arch,page,words", [
    ("sparc", None, ["sparc", "arm64", "i386", "x86_64"]),
    ("arm64", "8k", ["8k", "4k", "16k", "64k"]),
    ("x86_64", "64k", ["64k", "4k"]),
])
def test_unknown_arch_or_page_size_is_a_usage_error_naming_the_choices(arch, page, words):
    with pytest.raises(BadInput) as err:
        Target.from_options(arch, page)
    assert err.value.exit_code == EXIT_USAGE
    assert all(w in err.value.message for w in words), err.value.message


def test_matrix_arch_values_go_through_parse():
    assert check_arch_value("arm64:64k", "m.toml") == "arm64:64k"
    with pytest.raises(BadInput, match=r"m.toml: arch 'mips' is not one of"):
        check_arch_value("mips", "m.toml")
    with pytest.raises(BadInput, match="arm64 offers 4k, 16k, 64k"):
        check_arch_value("arm64:32k", "m.toml")


def test_from_a_recorded_build_json(tmp_path):
    # a build.json from before there were arches: the default target
    assert Target.from_manifest(load_build(RECORDED_BUILD)) == Target.default()
    text = (RECORDED_BUILD / "build.json").read_text()
    marker = '"status":'
    assert marker in text
    arm = tmp_path / "arm"
    arm.mkdir()
    (arm / "build.json").write_text(text.replace(
        marker, '"arch": {"name": "arm64", "page_size": 65536}, ' + marker, 1))
    assert Target.from_manifest(load_build(arm)) == Target.parse("arm64:64k")


def test_objdir_names_default_and_other_targets(monkeypatch, tmp_path):
    monkeypatch.setenv("ZSTEST_CACHE", str(tmp_path))
    frags = kconfig.expand_configs(["base"])
    default = objdir_for("tree", frags, Target.default(), resolve_toolchain())
    # the default target's object dir keeps its pre-arch name: the profile alone
    assert default.name.startswith("tree-base-")
    arm = objdir_for("tree", frags, Target.parse("arm64:64k"), resolve_toolchain())
    assert arm.name.startswith("tree-arm64-64k_base-") and arm != default
    assert objdir_for("tree", frags, Target.parse("arm64"), resolve_toolchain()) not in (arm, default)
