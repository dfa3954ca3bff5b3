"""Accelerator probe (placeholder until the vm stage lands): TCG always works."""

from dataclasses import dataclass


@dataclass
class AccelChoice:
    name: str     # "kvm" or "tcg"
    reason: str


def probe_accel(kernel=None, timeout: float = 10.0) -> AccelChoice:
    return AccelChoice("tcg", "KVM probe not implemented yet")
