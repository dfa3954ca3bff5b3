"""What every QEMU zstest starts does in the forked child before exec (the guest's QEMU in
guest.py, the KVM probe's in accel.py)."""

from __future__ import annotations

import ctypes
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """PR_SET_PDEATHSIG(SIGKILL): QEMU dies with the thread that launched it, even when zstest
    itself is SIGKILLed, so no guest outlives its run; a libc without prctl leaves it as is."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass
