"""kconfig_symbols on Kconfig text: dependencies come from `depends on` lines, never from help."""

from __future__ import annotations

from pathlib import Path

from zstest.kconfig import kconfig_symbols

# Shaped after lib/Kconfig.debug's LKDTM entry in 6.1, whose help text has prose that a
# line-based reader took for dependencies ("the system crashes for example during ...").
KCONFIG = """\
menuconfig RUNTIME_TESTING_MENU
\tbool "Runtime Testing"
\tdef_bool y

if RUNTIME_TESTING_MENU

config LKDTM
\ttristate "Linux Kernel Dump Test Tool Module"
\tdepends on DEBUG_FS
\thelp
\tThis module enables testing of the different dumping mechanisms by
\tinducing system failures at predefined crash points.
\t  depends on nothing: this line is help text, indented deeper

\tDocumentation on how to use the module can be found in
\tDocumentation/fault-injection/provoke-crashes.rst

config AFTER_HELP
\tbool "after"
\tdepends on LKDTM && !SPARC32
\t---help---
\t  depends on prose again
\t  more prose

endif
"""


def test_help_text_is_not_read_as_dependencies(tmp_path: Path):
    (tmp_path / "Kconfig").write_text(KCONFIG)
    syms = kconfig_symbols(tmp_path, ["LKDTM", "AFTER_HELP"])
    assert syms["LKDTM"].depends_on == ["RUNTIME_TESTING_MENU", "DEBUG_FS"]
    assert syms["AFTER_HELP"].depends_on == ["RUNTIME_TESTING_MENU", "LKDTM && !SPARC32"]
