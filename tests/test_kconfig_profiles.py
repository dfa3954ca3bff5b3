"""Both profiles survive olddefconfig on both trees (config only: seconds, no compile).

The cold builds of `--config debug` on 6.1 and `--config base` on 6.12 are too slow
for CI; they were verified by hand (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import pytest

from zstest import kconfig
from zstest.arch import arch_spec
from zstest.cache import cache_dir, default_kernel_tree


@pytest.mark.parametrize("version,profile", [("6.1", "base"), ("6.1", "debug"), ("6.12", "base"),
                                             ("6.12", "debug")])
def test_profile_survives_olddefconfig(version, profile):
    tree = default_kernel_tree(version)
    scratch = cache_dir("test-kconfig", f"{version}-{profile}")
    # as the build does: the profile, then the arch's own fragment
    res = kconfig.configure(tree, scratch, [kconfig.resolve_config_arg(profile),
                                            kconfig.arch_fragment(arch_spec())],
                            arch=arch_spec())
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


@pytest.mark.parametrize("version", ["6.1", "6.12"])
@pytest.mark.parametrize("arch,page_size", [("arm64", None), ("arm64", "64k"), ("i386", None)])
def test_base_survives_on_every_arch(version, arch, page_size):
    """The base profile and each arch's fragment (and page size) survive olddefconfig with
    ARCH= and CROSS_COMPILE= of the record: what `zstest build --arch` configures."""
    spec = arch_spec(arch)
    tree = default_kernel_tree(version)
    scratch = cache_dir("test-kconfig", f"{version}-base-{arch}-{page_size or 'default'}")
    res = kconfig.configure(tree, scratch, [kconfig.resolve_config_arg("base"),
                                            kconfig.arch_fragment(spec, page_size)], arch=spec)
    assert res.missing == [], "\n".join(m.sentence() for m in res.missing)
    final = kconfig.read_config(res.config_path)
    assert final["ZSMALLOC"] == "y" and final["ZRAM"] == "y" and final["LKDTM"] == "y"
    assert final.get("X86_64") is None
    if arch == "arm64":
        assert final["ARM64"] == "y" and final["SERIAL_AMBA_PL011_CONSOLE"] == "y"
        # 6.1 names it ARM64_PAGE_SHIFT, 6.12 the generic PAGE_SHIFT
        shift = final.get("ARM64_PAGE_SHIFT") or final.get("PAGE_SHIFT")
        assert shift == ("16" if page_size == "64k" else "12")
        assert final["PCI_HOST_GENERIC"] == "y" and final["VIRTIO_NET"] == "y"
    else:
        assert final["X86_32"] == "y" and final["HIGHMEM4G"] == "y" and final["HIGHMEM"] == "y"
        assert final.get("MEMORY_HOTPLUG") is None and final["SERIAL_8250_CONSOLE"] == "y"


def test_dropped_option_is_reported_with_its_dependency(tmp_path):
    frag = tmp_path / "nohotplug.config"
    frag.write_text("# include: base\n# CONFIG_MEMORY_HOTPLUG is not set\n")
    tree = default_kernel_tree("6.1")
    res = kconfig.configure(tree, cache_dir("test-kconfig", "6.1-drift"),
                            [kconfig.parse_fragment(frag)], arch=arch_spec())
    by_name = {m.name: m for m in res.missing}
    assert "MEMORY_HOTREMOVE" in by_name, [m.sentence() for m in res.missing]
    hotremove = by_name["MEMORY_HOTREMOVE"]
    assert hotremove.reason == "dropped" and "MEMORY_HOTPLUG=n" in hotremove.unmet
    assert "MEMORY_HOTPLUG" in hotremove.sentence() and "base.config" in hotremove.source
