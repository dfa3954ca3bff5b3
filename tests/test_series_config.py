"""Series-aware config and build coverage: the series' own code must be compiled.

Parsers on real data (the 2016 v4 mbox, the project's fixture series, Debian's 6.1 tree);
then, with a real kernel build, a series whose new file sits behind a new `default n`
option: on by default, off with --no-series-config (and exit 4 with --require-built).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from zstest.cache import default_kernel_tree
from zstest.series.sources import load_series
from zstest.series_config import (fragment_text, guard_symbols, kconfig_changes,
                                  series_symbols, touched_files)

NEW_OPTION = REPO / "kernel-patches" / "fixtures" / "new-option"


@pytest.fixture(scope="module")
def tree() -> Path:
    return default_kernel_tree("6.1")


def test_guard_symbols_follow_makefiles_through_composites_and_dirs(tree):
    assert guard_symbols(tree, "mm/zsmalloc.c") == ["ZSMALLOC"]
    # zram_drv.o is part of the composite zram.o, which obj-$(CONFIG_ZRAM) names
    assert guard_symbols(tree, "drivers/block/zram/zram_drv.c") == ["ZRAM"]
    assert guard_symbols(tree, "mm/ksm.c") == ["KSM"]
    assert guard_symbols(tree, "drivers/misc/lkdtm/bugs.c") == ["LKDTM"]
    assert guard_symbols(tree, "mm/util.c") == []              # obj-y: always built
    assert guard_symbols(tree, "mm/no_such_file.c") is None     # no rule names it


def test_the_2016_series_needs_ksm_migration_zsmalloc_and_zram(shared_series, tree):
    series = load_series(str(shared_series / "nonlru-migration-v4.mbox"))
    files = {t.path: t for t in touched_files(series.patches)}
    assert files["mm/zsmalloc.c"].patches == [4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert "Documentation/filesystems/vfs.txt" in files
    assert kconfig_changes(series.patches) == []
    names = [s.name for s in series_symbols(series.patches, tree)]
    assert names == ["KSM", "MIGRATION", "ZSMALLOC", "ZRAM"]


def test_a_new_option_and_the_file_behind_it(tree):
    series = load_series(str(NEW_OPTION))
    added = kconfig_changes(series.patches)
    assert [(s.name, s.patch) for s in added] == [("ZSMALLOC_BOOT_REPORT", 1)]
    assert "added by patch 1" in added[0].why
    touched = {t.path: t for t in touched_files(series.patches)}
    assert touched["mm/zsmalloc_report.c"].added
    text = fragment_text(added)
    assert "CONFIG_ZSMALLOC_BOOT_REPORT=y  # optional: added by patch 1 (mm/Kconfig)" in text


def test_renames_deletions_and_a_changed_entry_read_by_the_one_diff_parser(tmp_path):
    """git's own format-patch of a rename, a deletion, a new empty file and a changed Kconfig
    entry: touched_files and kconfig_changes read it through series/diff.py."""
    import subprocess
    from types import SimpleNamespace
    from zstest.series.diff import parse_file_diffs

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@e", *args], cwd=tmp_path,
                       check=True, capture_output=True)
    (tmp_path / "mm").mkdir()
    (tmp_path / "mm" / "Kconfig").write_text("config ZSMALLOC\n\tbool \"zs\"\n\tdefault y\n")
    (tmp_path / "mm" / "old.c").write_text("int a;\n" * 20)
    (tmp_path / "mm" / "gone.c").write_text("int b;\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "base")
    git("mv", "mm/old.c", "mm/new.c")
    git("rm", "-q", "mm/gone.c")
    (tmp_path / "mm" / "empty.c").write_text("")
    (tmp_path / "mm" / "Kconfig").write_text("config ZSMALLOC\n\tbool \"zs\"\n\tdefault n\n")
    git("add", ".")
    git("commit", "-qm", "zsmalloc: change things")
    git("format-patch", "-q", "-M", "-1", "-o", "out")
    raw = next((tmp_path / "out").glob("*.patch")).read_bytes()
    diffs = {d.path: d for d in parse_file_diffs(raw.decode())}
    assert diffs["mm/new.c"].renamed and diffs["mm/new.c"].old_path == "mm/old.c"
    assert diffs["mm/gone.c"].deleted_file and diffs["mm/gone.c"].new_path is None
    assert diffs["mm/empty.c"].new_file and not diffs["mm/empty.c"].hunks
    patch = SimpleNamespace(index=1, raw=raw)
    touched = {t.path: t for t in touched_files([patch])}
    assert touched["mm/old.c"].deleted and touched["mm/gone.c"].deleted
    assert touched["mm/empty.c"].added and not touched["mm/new.c"].added
    assert [(k.name, k.why) for k in kconfig_changes([patch])] == [
        ("ZSMALLOC", "changed by patch 1 (mm/Kconfig)")]


def build_json(out: Path) -> dict:
    return json.loads((out / "build.json").read_text())


@pytest.mark.slow
def test_series_config_builds_the_new_file_and_says_why_not_without_it(kernel_build, tmp_path):
    on = tmp_path / "on"
    proc = run_zstest("build", "--series", NEW_OPTION, "--out", on, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = build_json(on)
    sym = {s["name"]: s for s in m["series"]["config"]["symbols"]}
    assert sym["ZSMALLOC_BOOT_REPORT"]["now"] == "y"
    cov = {c["file"]: c for c in m["series"]["build_coverage"]}
    assert cov["mm/zsmalloc_report.c"]["built"] is True
    assert cov["mm/Kconfig"]["built"] is None
    assert "series coverage: mm/zsmalloc_report.c: built" in proc.stdout + proc.stderr
    # the option is really in the kernel: it speaks at boot
    res = tmp_path / "res"
    boot = run_zstest("boot-and-run", "--build", on, "--suite", "boot", "-k", "one_built",
                      "--out", res, timeout=600)
    assert boot.returncode == 0, boot.stdout[-2000:] + boot.stderr
    assert "zsmalloc: 4096-byte pages" in (res / "console.log").read_text(errors="replace")

    off = tmp_path / "off"
    proc = run_zstest("build", "--series", NEW_OPTION, "--no-series-config", "--out", off,
                      timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cov = {c["file"]: c for c in build_json(off)["series"]["build_coverage"]}
    assert cov["mm/zsmalloc_report.c"]["built"] is False
    assert cov["mm/zsmalloc_report.c"]["why"] == "CONFIG_ZSMALLOC_BOOT_REPORT is not set"
    assert "mm/zsmalloc_report.c: NOT built: CONFIG_ZSMALLOC_BOOT_REPORT is not set" in \
        proc.stdout + proc.stderr

    strict = tmp_path / "strict"
    proc = run_zstest("build", "--series", NEW_OPTION, "--no-series-config", "--require-built",
                      "--out", strict, timeout=1800)
    assert proc.returncode == 4, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("zstest: error:")]
    assert len(errors) == 1 and "mm/zsmalloc_report.c" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
