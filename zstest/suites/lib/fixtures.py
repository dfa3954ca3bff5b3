"""pytest fixtures for the zram/zsmalloc suites; test modules import the ones they use."""

from __future__ import annotations

import pytest

from ...guest_tools import GUEST_TOOLS, build_guest_tools
from .zram import ZramDevice, ensure_zram_control


@pytest.fixture(scope="session")
def guest_tools(guest):
    """zsfill and memtouch in the guest: from the image, else copied in now."""
    missing = [t for t in GUEST_TOOLS if not guest.exists(t.guest_path)]
    if missing:
        binaries = build_guest_tools(guest.spec.arch_spec)
        for tool in missing:
            guest.put(str(binaries[tool.guest_path]), tool.guest_path)
            guest.check(f"chmod 755 {tool.guest_path}")
    return {t.name: t.guest_path for t in GUEST_TOOLS}


@pytest.fixture
def zram(guest):
    """A fresh hot-added zram device, reset and removed after the test."""
    ensure_zram_control(guest)
    with ZramDevice.add(guest) as dev:
        yield dev


def require_config(kernel_config, *options: str) -> None:
    """Skip unless every CONFIG_ option is y or m (an empty config: the build did not say)."""
    if not kernel_config:
        return
    missing = [o for o in options if kernel_config.get(o) not in ("y", "m")]
    if missing:
        pytest.skip(f"the kernel lacks {', '.join(missing)}")
