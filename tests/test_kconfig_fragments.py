"""Profiles and fragments: parsing, includes, merge order, the survival check."""

from __future__ import annotations

from pathlib import Path

import pytest

from zstest import kconfig
from zstest.cache import default_kernel_tree
from zstest.errors import BadInput


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_profiles_are_data_files():
    assert {"base", "debug"} <= set(kconfig.profile_names())
    base = kconfig.resolve_config_arg("base")
    assert base.profile == "base" and base.start == "tinyconfig"
    names = {o.name for o in base.options}
    for needed in ("ZSMALLOC", "ZRAM", "ZRAM_WRITEBACK", "MEMORY_HOTREMOVE",
                   "VM_EVENT_COUNTERS", "IKCONFIG_PROC", "MAGIC_SYSRQ", "VIRTIO_NET", "DEBUG_VM"):
        assert needed in names, needed
    # the console and the platform are the arch's (configs/arch/<arch>.config)
    assert not names & {"SERIAL_8250_CONSOLE", "SERIAL_AMBA_PL011", "ACPI", "64BIT"}


def test_debug_includes_base_and_adds_checkers():
    debug = kconfig.resolve_config_arg("debug")
    names = [o.name for o in debug.options]
    assert debug.start == "tinyconfig"
    assert "ZSMALLOC" in names and "KASAN" in names and "PROVE_LOCKING" in names
    # base comes first, so debug's own lines win in a merge
    assert names.index("ZSMALLOC") < names.index("KASAN")


def test_optional_marker_and_unset_lines(tmp_path):
    frag = kconfig.parse_fragment(write(tmp_path, "f.config",
                                        "# a comment\n\nCONFIG_A=y  # optional: new in 6.12\n"
                                        "# CONFIG_B is not set\nCONFIG_C=\"x y\"\nCONFIG_D=0x10\n"))
    opts = {o.name: o for o in frag.options}
    assert opts["A"].optional and opts["A"].value == "y"
    assert opts["B"].value == "n" and not opts["B"].optional
    assert opts["C"].value == '"x y"' and opts["D"].value == "0x10"
    assert opts["A"].source.endswith("f.config:3")


@pytest.mark.parametrize("text,line", [("CONFIG_OK=y\nCONFIG_FOO bar\n", 2),
                                       ("CONFIG_X=yes\n", 1),
                                       ("CONFIG_S=unquoted string\n", 1),
                                       ("ZRAM=y\n", 1)])
def test_syntax_error_names_file_and_line(tmp_path, text, line):
    path = write(tmp_path, "bad.config", text)
    with pytest.raises(BadInput) as err:
        kconfig.parse_fragment(path)
    assert f"bad.config:{line}:" in err.value.message
    assert err.value.exit_code == 2


def test_include_cycle_and_unknown_include(tmp_path):
    write(tmp_path, "a.config", "# include: b.config\n")
    write(tmp_path, "b.config", "# include: a.config\n")
    with pytest.raises(BadInput, match="include cycle"):
        kconfig.parse_fragment(tmp_path / "a.config")
    with pytest.raises(BadInput, match="unknown profile 'nope'"):
        kconfig.parse_fragment(write(tmp_path, "c.config", "# include: nope\n"))


def test_unknown_profile_or_file():
    with pytest.raises(BadInput, match="no such profile"):
        kconfig.resolve_config_arg("no-such-profile")


def test_merge_later_wins_and_render_replaces(tmp_path):
    a = kconfig.parse_fragment(write(tmp_path, "a.config", "CONFIG_X=y\nCONFIG_Y=m\n"))
    b = kconfig.parse_fragment(write(tmp_path, "b.config", "# CONFIG_X is not set\nCONFIG_Z=3\n"))
    merged = kconfig.merge_fragments([a, b])
    assert merged["X"].value == "n" and merged["X"].source.endswith("b.config:1")
    assert merged["Y"].value == "m"
    text = kconfig.render_config("CONFIG_X=y\nCONFIG_W=y\n# CONFIG_Z is not set\n", merged)
    assert text.count("CONFIG_X") == 1 and "# CONFIG_X is not set" in text
    assert "CONFIG_W=y" in text and "CONFIG_Z=3" in text and "CONFIG_Y=m" in text


def test_evaluate_depends():
    values = {"A": "y", "B": "m", "C": "n", "S": '"lzo"'}
    ev = kconfig.evaluate_depends
    assert ev("A && B", values) == 1
    assert ev("A && !C", values) == 2
    assert ev("C || (A && B)", values) == 1
    assert ev("!A", values) == 0
    assert ev("D", values) == 0
    assert ev("A=y && B!=y", values) == 2
    assert kconfig.unmet_symbols("BLOCK && SYSFS && MMU", {"SYSFS": "y", "MMU": "y"}) == ["BLOCK=n"]


def test_kconfig_symbols_reads_depends_and_if_blocks(tmp_path):
    (tmp_path / "Kconfig").write_text(
        "config TOP\n\tbool \"top\"\n\tdepends on FOO && \\\n\t   BAR\n"
        "if NET\nmenuconfig INNER\n\ttristate \"x\" # c\n\tdepends on TOP\n\thelp\n\t  text\nendif\n"
        "config AFTER\n\tbool\n")
    syms = kconfig.kconfig_symbols(tmp_path)
    assert syms["TOP"].depends_on == ["FOO && BAR"]
    assert syms["INNER"].depends_on == ["NET", "TOP"]
    assert syms["AFTER"].depends_on == []
    assert syms["TOP"].where == "Kconfig:1"


def test_check_survival_names_unmet_depends_and_absent_options():
    tree = default_kernel_tree("6.1")
    requested = {
        "ZRAM_WRITEBACK": kconfig.ConfigOption("ZRAM_WRITEBACK", "y", "f:1"),
        "ZRAM_MULTI_COMP": kconfig.ConfigOption("ZRAM_MULTI_COMP", "y", "f:2", optional=True),
        "NO_SUCH_OPTION_ZS": kconfig.ConfigOption("NO_SUCH_OPTION_ZS", "y", "f:3"),
        "ZRAM": kconfig.ConfigOption("ZRAM", "y", "f:4"),
    }
    final = {"ZRAM": "y"}
    missing, ignored = kconfig.check_survival(requested, final, tree)
    by_name = {m.name: m for m in missing}
    assert ignored == ["ZRAM_MULTI_COMP"]
    assert by_name["NO_SUCH_OPTION_ZS"].reason == "not in tree"
    wb = by_name["ZRAM_WRITEBACK"]
    assert wb.reason == "dropped"
    assert any("ZRAM" in d for d in wb.depends_on)
    assert "ZRAM" not in by_name
