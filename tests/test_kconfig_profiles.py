"""Both profiles survive olddefconfig on both trees (config only: seconds, no compile).

The cold builds of `--config debug` on 6.1 and `--config base` on 6.12 are too slow
for CI; they were verified by hand (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import pytest

from zstest import kconfig
from zstest.cache import cache_dir, default_kernel_tree


@pytest.mark.parametrize("version,profile", [("6.1", "base"), ("6.1", "debug"), ("6.12", "base"),
                                             ("6.12", "debug")])
def test_profile_survives_olddefconfig(version, profile):
    tree = default_kernel_tree(version)
    scratch = cache_dir("test-kconfig", f"{version}-{profile}")
    res = kconfig.configure(tree, scratch, [kconfig.resolve_config_arg(profile)])
    assert res.missing == [], "\n".join(m.sentence() for m in res.missing)
    final = kconfig.read_config(res.config_path)
    assert final["ZSMALLOC"] == "y" and final["ZRAM"] == "y" and final["X86_64"] == "y"
    if version == "6.1":
        assert set(res.ignored_optional) >= {"ZRAM_MULTI_COMP", "ZRAM_BACKEND_ZSTD"}
        assert final["CRYPTO_ZSTD"] == "y"
    else:
        assert "ZRAM_MULTI_COMP" not in res.ignored_optional
        assert final["ZRAM_BACKEND_ZSTD"] == "y" and final["ZRAM_MULTI_COMP"] == "y"
    if profile == "debug":
        assert final["KASAN"] == "y" and final["PROVE_LOCKING"] == "y"
        assert final["DEBUG_INFO"] == "y" and final["SLUB_DEBUG"] == "y"


def test_dropped_option_is_reported_with_its_dependency(tmp_path):
    frag = tmp_path / "nohotplug.config"
    frag.write_text("# include: base\n# CONFIG_MEMORY_HOTPLUG is not set\n")
    tree = default_kernel_tree("6.1")
    res = kconfig.configure(tree, cache_dir("test-kconfig", "6.1-drift"),
                            [kconfig.parse_fragment(frag)])
    by_name = {m.name: m for m in res.missing}
    assert "MEMORY_HOTREMOVE" in by_name, [m.sentence() for m in res.missing]
    hotremove = by_name["MEMORY_HOTREMOVE"]
    assert hotremove.reason == "dropped" and "MEMORY_HOTPLUG=n" in hotremove.unmet
    assert "MEMORY_HOTPLUG" in hotremove.sentence() and "base.config" in hotremove.source
