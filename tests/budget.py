"""Time budgets measured on this machine, per byte of real input, for the linear-time properties
(issue 26: "time grows at most linearly with input size").

A hostile input of n bytes may take at most FACTOR times what the same code takes on n bytes of
recorded real input (measured here, now: a loaded CI host is slower for both), plus SLACK_S for
timer and scheduling noise. Super-linear code misses it by orders of magnitude.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

DATA = Path(__file__).parent / "data"
FACTOR = 50
SLACK_S = 0.25


def elapsed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def real_console_text(n: int) -> str:
    """n characters of recorded QEMU console logs (tests/data/console), repeated as needed."""
    logs = "".join(p.read_text(errors="replace") for p in sorted((DATA / "console").glob("*.log")))
    return (logs * (n // len(logs) + 1))[:n]


def real_mbox_bytes(n: int) -> bytes:
    """n bytes of recorded patch mails (tests/data/series and kernel-patches), repeated."""
    root = Path(__file__).parent.parent
    files = sorted((DATA / "series").rglob("*.patch")) + \
        sorted((root / "kernel-patches" / "fixtures").rglob("*.patch"))
    data = b"".join(p.read_bytes() for p in files)
    return (data * (n // len(data) + 1))[:n]


def budget_s(per_real_run_s: float) -> float:
    return FACTOR * per_real_run_s + SLACK_S


def assert_within_budget(hostile: Callable[[], object], real: Callable[[], object],
                         what: str) -> None:
    """hostile() (n bytes of bad input) within the budget of real() (n bytes of real input)."""
    reference = min(elapsed(real) for _ in range(3))
    took = elapsed(hostile)
    assert took <= budget_s(reference), (
        f"{what}: {took:.3f} s, budget {budget_s(reference):.3f} s "
        f"({FACTOR}x the {reference:.4f} s the same size of real input takes here)")
