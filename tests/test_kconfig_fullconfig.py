"""A developer's own full .config as --config: it is the start (not tinyconfig), zstest's
required options go on top, and the survival check names what their config forbids.

Config step only (make tinyconfig for a real kernel-written .config, then configure()):
seconds, no compile. The tree is Debian's 6.1 (/tmp/k/linux-source-6.1 when unpacked there,
else the cache's); everything is written to O= scratch dirs, never into the tree.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from zstest import kconfig
from zstest.arch import arch_spec
from zstest.cache import default_kernel_tree


@pytest.fixture(scope="module")
def tree() -> Path:
    unpacked = Path("/tmp/k/linux-source-6.1")
    return unpacked if (unpacked / "Makefile").is_file() else default_kernel_tree("6.1")


@pytest.fixture(scope="module")
def their_config(tree, tmp_path_factory) -> Path:
    """A real .config written by the kernel's own kconfig (tinyconfig: SMP off, no zram),
    with two choices of the developer's own: a LOCALVERSION and gzip over lz4."""
    objdir = tmp_path_factory.mktemp("theirs")
    subprocess.run(kconfig.kbuild_make_args(tree, objdir, arch_spec("x86_64")) + ["-s", "tinyconfig"], check=True,
                   capture_output=True, timeout=600)
    text = (objdir / ".config").read_text()
    assert text.splitlines()[1] == kconfig.FULL_CONFIG_HEADER
    text = text.replace('CONFIG_LOCALVERSION=""', 'CONFIG_LOCALVERSION="-dev"')
    dest = objdir / "my.config"
    dest.write_text(text)
    return dest


def test_detection_rule(tmp_path, their_config):
    assert kconfig.is_full_config(their_config)
    headerless = tmp_path / "headerless.config"
    headerless.write_text("\n".join(their_config.read_text().splitlines()[4:]) + "\n")
    assert kconfig.is_full_config(headerless)          # hundreds of CONFIG_ lines
    fragment = tmp_path / "zram.config"
    fragment.write_text("CONFIG_ZRAM=y\n# CONFIG_ZRAM_WRITEBACK is not set\n")
    assert not kconfig.is_full_config(fragment)
    frags = kconfig.expand_configs([str(fragment)])
    assert [f.profile for f in frags] == ["base", None]          # a fragment goes on base
    frags = kconfig.expand_configs([str(their_config)])
    assert frags[0].start_config == their_config.resolve() and frags[1].profile == "required"
    required = {o.name for o in frags[1].options}
    assert {"ZSMALLOC", "ZRAM", "MIGRATION", "COMPACTION", "DEBUG_FS", "LKDTM",
            "VIRTIO_NET", "MODULES"} <= required
    # The lean guest's taste stays theirs: no compiler/allocator choices, no "off" list.
    assert not required & {"KERNEL_LZ4", "CC_OPTIMIZE_FOR_PERFORMANCE", "SMP", "IPV6", "VT"}
    assert all(o.value != "n" for o in frags[1].options)
    # the arch's fragment on a full .config: its console and platform, not its taste
    arch = {o.name: o.value for o in
            kconfig.arch_fragment(arch_spec("x86_64"), full_config=True).options}
    assert {"SERIAL_8250_CONSOLE", "ACPI", "ACPI_HOTPLUG_MEMORY"} <= set(arch)
    assert not set(arch) & {"KERNEL_LZ4", "64BIT", "UNWINDER_ORC", "SERIO_I8042", "ACPI_FAN"}
    whole = {o.name for o in kconfig.arch_fragment(arch_spec("x86_64")).options}
    assert {"KERNEL_LZ4", "64BIT", "UNWINDER_ORC", "SERIO_I8042"} <= whole


def test_full_config_is_the_start_and_their_config_forbids_numa(tree, their_config, tmp_path):
    before = sorted(p.name for p in tree.iterdir())
    frags = kconfig.expand_configs([str(their_config)])
    res = kconfig.configure(tree, tmp_path / "scratch", frags, arch=arch_spec("x86_64"))
    assert res.start == f"file {their_config.resolve()}"
    final = kconfig.read_config(res.config_path)
    # Their choices survive ...
    assert final["LOCALVERSION"] == '"-dev"'
    assert final.get("SMP", "n") == "n" and final.get("KERNEL_LZ4", "n") == "n"
    # ... zstest's required options are on top ...
    for name in ("ZSMALLOC", "ZRAM", "MIGRATION", "COMPACTION", "DEBUG_FS", "LKDTM",
                 "MEMORY_HOTREMOVE", "VIRTIO_NET", "MODULES"):
        assert final.get(name) == "y", name
    # ... and what their config forbids is named with the reason: NUMA needs SMP.
    missing = {m.name: m for m in res.missing}
    assert set(missing) == {"NUMA"}, [m.sentence() for m in res.missing]
    assert "SMP=n" in missing["NUMA"].unmet
    assert "became not set" in missing["NUMA"].sentence()
    # The same inputs again: no make run, the same answer (config_key covers their file).
    again = kconfig.configure(tree, tmp_path / "scratch", frags, arch=arch_spec("x86_64"))
    assert [m.name for m in again.missing] == ["NUMA"]
    # A change in their file is a new config.
    their_config.write_text(their_config.read_text().replace("# CONFIG_SMP is not set",
                                                             "CONFIG_SMP=y"))
    res = kconfig.configure(tree, tmp_path / "scratch", frags, arch=arch_spec("x86_64"))
    assert res.missing == [], [m.sentence() for m in res.missing]
    assert sorted(p.name for p in tree.iterdir()) == before      # the tree was not written
