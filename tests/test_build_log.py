"""zstest.buildlog on recorded real build logs (tests/data/build/)."""

from __future__ import annotations

from pathlib import Path

from zstest import buildlog

DATA = Path(__file__).parent / "data" / "build"


def parse(name: str, **kw) -> buildlog.BuildLog:
    return buildlog.parse_build_log((DATA / name).read_text().splitlines(), **kw)


def test_clean_kernel_build_has_no_diagnostics_and_counts_units():
    log = parse("base-6.1-cold.log")
    assert log.warnings == [] and log.errors == []
    assert len(log.compiled) > 300
    assert "mm/zsmalloc.o" in log.compiled
    assert log.steps["LD"] >= 1 and log.failed_targets == []


def test_gcc_warning_in_module_is_file_line_message():
    log = parse("kmod-warning.log", srctree="/root/.cache/zstest/src/linux-source-6.1",
                objdir="/root/.cache/zstest/objs/bootstrap-6.1-base")
    assert log.errors == []
    found = {(d.file, d.line, d.col, d.flag): d.message for d in log.warnings}
    assert found[("/tmp/logmods/warn/warnmod.c", 6, 13, "-Wunused-variable")] == \
        "unused variable ‘unused_here’"
    # a warning inside a macro is reported where gcc puts it: the header, relative to the tree
    assert "format ‘%d’ expects argument of type ‘int’, but argument 2 has " \
        "type ‘long unsigned int’" == found[("include/linux/kern_levels.h", 5, 25, "-Wformat=")]
    assert len(log.warnings) == 2   # notes are not warnings
    assert log.compiled == ["/tmp/logmods/warn/warnmod.o"]


def test_gcc_error_and_failed_target():
    log = parse("kmod-error.log")
    first = log.first_error
    assert first is not None and first.file.endswith("errmod.c") and first.line == 5
    assert "no_such_symbol_here" in first.message and first.kind == "error"
    assert any(t.endswith("errmod.o") for t in log.failed_targets)
    assert str(first).startswith(first.file + ":5: error: ")


def test_modpost_undefined_symbol_is_an_error():
    log = parse("modpost-undefined.log")
    assert any(d.file == "modpost" and "zs_no_such_export" in d.message for d in log.errors)


def fixture_paths() -> dict:
    """srctree and objdir of the recorded fixture builds (ccache made gcc's paths relative)."""
    srctree, objdir = (DATA / "fixture-paths.txt").read_text().split()
    return {"srctree": srctree, "objdir": objdir}


def test_in_tree_warning_path_is_relative_to_the_tree():
    log = parse("fixture-warning.log", **fixture_paths())
    assert [(d.file, d.kind) for d in log.warnings] == [("mm/zsmalloc.c", "warning")]
    assert "nr_classes" in log.warnings[0].message
    assert "mm/zsmalloc.o" in log.compiled


def test_in_tree_error_from_build_break_fixture():
    log = parse("fixture-build-break.log", **fixture_paths())
    first = log.first_error
    assert (first.file, first.line, first.col) == ("mm/zsmalloc.c", 2354, 9)
    assert first.flag == "-Werror=implicit-function-declaration"
    assert "zs_report_layout" in first.message


def test_new_warnings_ignore_line_shifts_but_count_copies():
    old = [buildlog.Diagnostic("mm/a.c", 10, 3, "warning", "unused variable 'x'")]
    shifted = [buildlog.Diagnostic("mm/a.c", 12, 3, "warning", "unused variable 'x'")]
    assert buildlog.new_warnings(old, shifted) == []
    two = shifted + [buildlog.Diagnostic("mm/a.c", 40, 3, "warning", "unused variable 'x'")]
    assert [d.line for d in buildlog.new_warnings(old, two)] == [40]


def test_no_space_left_is_detected():
    log = buildlog.parse_build_log(["  CC      mm/zsmalloc.o",
                                    "/tmp/x.s: Fatal error: can't close mm/zsmalloc.o: No space left on device"])
    assert log.no_space


def test_normalize_path():
    assert buildlog.normalize_path("/src/linux/mm/zsmalloc.c", "/src/linux", "/obj") == "mm/zsmalloc.c"
    assert buildlog.normalize_path("../../src/linux/mm/z.c", "/src/linux", "/obj/x") == "mm/z.c"
    assert buildlog.normalize_path("include/generated/x.h", "/src/linux", "/obj") == "include/generated/x.h"
