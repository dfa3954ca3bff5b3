"""The toolchain record (zstest/toolchains.toml -> toolchain.Toolchain): resolving a name, the
make variables of gcc and clang for each arch, the missing-compiler error, build.json's record
read from a real built .config, and the object dir a toolchain gets; one real clang-16 build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from test_settings import make_tree
from zstest import kconfig
from zstest.build import BuildRequest, make_variables, objdir_for, run_build
from zstest.errors import EXIT_PREREQ, EXIT_USAGE, BadInput, PrereqMissing
from zstest.target import Target
from zstest.toolchain import (DEFAULT_TOOLCHAIN, cc_version_text, known_toolchains,
                              read_records, resolve)

DATA = REPO / "tests" / "data" / "toolchain"
ARM64, DEFAULT = Target.parse("arm64"), Target.default()
RECORD = """
[gcc-12]
family = "gcc"
cc = "gcc"
ld = "ld"
cross_prefix = true
make_vars = []
[gcc-12.packages]
x86_64 = ["gcc"]
"""


def test_known_toolchains_and_the_default():
    assert known_toolchains() == ["clang-13", "clang-14", "clang-15", "clang-16", "gcc-11",
                                  "gcc-12"]
    assert resolve() == resolve(DEFAULT_TOOLCHAIN) and resolve().is_default
    assert BuildRequest().toolchain == DEFAULT_TOOLCHAIN


def test_unknown_toolchain_is_a_usage_error_naming_the_known_ones():
    with pytest.raises(BadInput) as err:
        resolve("gcc-99")
    assert err.value.exit_code == EXIT_USAGE
    assert "gcc-99" in err.value.message and all(n in err.value.message
                                                 for n in known_toolchains())
    # the build stage refuses it before it touches anything
    with pytest.raises(BadInput, match="unknown toolchain 'icc'"):
        run_build(BuildRequest(toolchain="icc"))


def test_make_variables_come_from_the_record():
    # gcc: the arch's cross prefix in front, no variables of its own
    assert make_variables([], DEFAULT, resolve()) == (["CC=ccache gcc"], [])
    assert make_variables([], ARM64, resolve("gcc-11")) == \
        (["CC=ccache aarch64-linux-gnu-gcc-11"], [])
    # clang: one compiler for every arch (Kbuild gives it --target), LLVM=-N for the rest
    for target in (DEFAULT, ARM64, Target.parse("i386")):
        assert make_variables(["KCFLAGS=-Wno-x"], target, resolve("clang-16")) == \
            (["CC=ccache clang-16"], ["LLVM=-16", "KCFLAGS=-Wno-x"])
    # --make-arg still chooses the compiler with the default toolchain ...
    assert make_variables(["LLVM=1"], DEFAULT, resolve()) == (["CC=ccache clang"], ["LLVM=1"])
    # ... but not against another toolchain's choice
    with pytest.raises(BadInput, match="--make-arg CC=gcc and --toolchain clang-16 both"):
        make_variables(["CC=gcc"], DEFAULT, resolve("clang-16"))


def test_build_json_record_reads_the_built_config():
    gcc = kconfig.read_config(DATA / "gcc-12.config")
    assert cc_version_text(gcc) == "gcc (Debian 12.2.0-14+deb12u1) 12.2.0"
    clang = kconfig.read_config(DATA / "clang-16.config")
    assert cc_version_text(clang) == "Debian clang version 16.0.6 (15~deb12u1)"
    assert clang["CC_IS_CLANG"] == "y" and clang["CLANG_VERSION"] == "160006"
    assert cc_version_text({}) is None       # kernels before 5.8 do not record it
    record = resolve().record(DEFAULT, gcc)
    assert (record["name"], record["cc"], record["version"]) == \
        ("gcc-12", "gcc", "gcc (Debian 12.2.0-14+deb12u1) 12.2.0")
    # the host's own gcc --version, under the key build.json had before toolchains
    assert record["gcc"].startswith("gcc") and record["make"].startswith("GNU Make")


def test_a_toolchain_gets_object_dirs_of_its_own(monkeypatch, tmp_path):
    monkeypatch.setenv("ZSTEST_CACHE", str(tmp_path))
    frags = kconfig.expand_configs(["base"])
    gcc = objdir_for("tree", frags, DEFAULT, resolve())
    clang = objdir_for("tree", frags, DEFAULT, resolve("clang-16"))
    gcc11 = objdir_for("tree", frags, DEFAULT, resolve("gcc-11"))
    assert gcc.name.startswith("tree-base-")          # the default keeps its pre-toolchain name
    assert clang.name.startswith("tree-clang-16_base-")
    assert len({gcc, clang, gcc11, objdir_for("tree", frags, ARM64, resolve("clang-16"))}) == 4


def test_missing_compiler_is_exit_6_with_the_apt_line(tmp_path):
    (record,) = read_records(RECORD.replace('cc = "gcc"', 'cc = "zstest-no-such-cc"'),
                             "t.toml").values()
    with pytest.raises(PrereqMissing) as err:
        record.check_installed(DEFAULT)
    assert err.value.exit_code == EXIT_PREREQ
    assert err.value.message == ("zstest-no-such-cc is missing; --toolchain gcc-12 builds "
                                 "x86_64 kernels with it (apt-get install gcc).")
    # an arch the record has no packages for: it cannot build it
    with pytest.raises(BadInput, match="does not build arm64 kernels; it builds x86_64"):
        record.check_installed(ARM64)


def test_missing_compiler_stops_the_build_before_its_build_dir(tmp_path, monkeypatch):
    tree = make_tree(tmp_path / "linux")
    monkeypatch.setenv("ZSTEST_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(PrereqMissing, match=r"gcc is missing.*apt-get install gcc\)"):
        run_build(BuildRequest(kernel=tree, out=tmp_path / "b", progress=False))
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("text,words", [
    ("[gcc-12]\nfamily = 1\n", "field 'family' is missing or not str"),
    (RECORD.replace("ld = ", "extra = 1\nld = "), "unknown field 'extra'"),
    (RECORD.replace('"gcc"\ncc', '"icc"\ncc'), "family 'icc' is not one of gcc, clang"),
    (RECORD.replace("x86_64 =", "sparc ="), "unknown arch 'sparc'"),
    (RECORD.replace("[gcc-12", "[gcc-13"), "has no gcc-12 record"),
])
def test_broken_records_name_the_field(text, words):
    with pytest.raises(BadInput, match=words):
        read_records(text, "t.toml")


@pytest.mark.slow
@pytest.mark.too_slow_for_ci(bench="docs/PERFORMANCE.md's 'Toolchains' section (the same build, "
                                   "by hand)")
def test_demo_series_builds_with_clang_16(tmp_path):
    """The demo series with --toolchain clang-16: its own object dir, and build.json says
    clang-16 built it (the .config's CC_VERSION_TEXT), not the host's gcc."""
    if not shutil.which("clang-16"):
        pytest.fail("clang-16 is not installed: apt-get install clang-16 lld-16 llvm-16")
    out = tmp_path / "clang"
    res = run_build(BuildRequest(series=str(REPO / "kernel-patches" / "demo-migrated" / "v2"),
                                 toolchain="clang-16", out=out, progress=False))
    assert res.status == "ok"
    m = json.loads((out / "build.json").read_text())
    assert (m["toolchain"]["name"], m["toolchain"]["cc"]) == ("clang-16", "clang-16")
    assert m["toolchain"]["version"].startswith("Debian clang version 16.")
    assert "clang-16" in Path(m["objdir"]).name
    assert kconfig.read_config(out / ".config")["CC_IS_CLANG"] == "y"


def _with_toolchain(src: Path, dest: Path, record: dict) -> Path:
    """A copy of a recorded build.json whose toolchain is `record`."""
    dest.mkdir(parents=True)
    data = json.loads((src / "build.json").read_text())
    data["toolchain"] = record
    (dest / "build.json").write_text(json.dumps(data))
    return dest / "build.json"


def test_compare_and_report_show_the_toolchain(tmp_path):
    from test_report import DATA as REPORT_DATA, results_copy
    from zstest import compare as cmp
    from zstest.report import render_report
    # B: what the real clang-16 build of the demo series wrote; A: gcc-12 on a real .config
    clang = json.loads((DATA / "clang-16.toolchain.json").read_text())
    gcc = resolve().record(DEFAULT, kconfig.read_config(DATA / "gcc-12.config"))
    build = REPO / "tests" / "data" / "compare" / "builds" / "good-3-run"
    a = cmp.load_side(_with_toolchain(build, tmp_path / "a", gcc))
    b = cmp.load_side(_with_toolchain(build, tmp_path / "b", clang))
    c = cmp.compare(a, b)
    assert c.top["toolchain"] == ("gcc-12", "clang-16")
    assert c.top["compiler"] == ("gcc (Debian 12.2.0-14+deb12u1) 12.2.0", clang["version"])
    assert "note: A and B differ in toolchain (gcc-12 -> clang-16)" in cmp.render_text(c)
    assert "differ in toolchain" not in cmp.render_text(cmp.compare(a, a))
    results = results_copy(tmp_path / "r", "failure-probe",
                           _with_toolchain(REPORT_DATA / "failure-probe", tmp_path / "fp", clang))
    assert f"\nCompiler: clang-16: {clang['version']}\n" in render_report(results)


def test_doctor_checks_a_toolchain_with_its_apt_line():
    from zstest.doctor import toolchain_checks
    checks = toolchain_checks("gcc-11", ARM64)
    assert [(c.name, c.package) for c in checks] == [
        ("aarch64-linux-gnu-gcc-11", "gcc-11-aarch64-linux-gnu"),
        ("aarch64-linux-gnu-ld", "gcc-11-aarch64-linux-gnu")]
    checks = toolchain_checks("clang-16", DEFAULT)
    assert [c.name for c in checks] == ["clang-16", "ld.lld-16"]
    assert {c.package for c in checks} == {"clang-16 lld-16 llvm-16"}
    assert all(c.found == bool(shutil.which(c.name)) for c in checks)
