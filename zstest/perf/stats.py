"""One metric's runs on A and on B, described: means, spreads, the change and Welch's test.

Every figure comes from numpy and scipy.stats (ttest_ind with equal_var=False, and its own
confidence interval of the difference of means); nothing here is a hand-written formula
beyond turning a difference into a percentage of A's mean.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95


@dataclass(frozen=True)
class MetricStats:
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    sd_a: Optional[float]                  # None with a single run
    sd_b: Optional[float]
    change_pct: Optional[float]            # (B - A) / A in %; None when A's mean is 0
    ci_pct: Optional[Tuple[float, float]]  # 95% CI of (B - A) / A in %, Welch's
    p: Optional[float]                     # Welch's two-sided p; None: no test was possible
    identical_a: bool                      # every run of A gave the same value
    identical_b: bool

    @property
    def difference(self) -> float:
        return self.mean_b - self.mean_a


def _sd(values: np.ndarray) -> Optional[float]:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _pct(diff: float, base: float) -> Optional[float]:
    return None if base == 0 else 100.0 * diff / abs(base)


def welch(a: Sequence[float], b: Sequence[float]) -> Tuple[Optional[float], Optional[Tuple[float, float]]]:
    """Welch's two-sided p and the 95% CI of mean(B) - mean(A); (None, None) when the test is
    undefined (fewer than 2 runs a side, or no variance on either side)."""
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):
        return None, None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # nearly identical samples make scipy warn about precision; the p it gives stands
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sps.ttest_ind(b, a, equal_var=False)
        ci = result.confidence_interval(CONFIDENCE)
    p = float(result.pvalue)
    if math.isnan(p):
        return None, None
    return p, (float(ci.low), float(ci.high))


def describe(a: Sequence[float], b: Sequence[float]) -> MetricStats:
    """The statistics of one metric; a and b are the per-run values (each at least one)."""
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    mean_a, mean_b = float(np.mean(va)), float(np.mean(vb))
    p, ci = welch(va, vb)
    ci_pct = None
    if ci is not None and mean_a != 0:
        ci_pct = (_pct(ci[0], mean_a), _pct(ci[1], mean_a))
    return MetricStats(n_a=len(va), n_b=len(vb), mean_a=mean_a, mean_b=mean_b,
                       sd_a=_sd(va), sd_b=_sd(vb), change_pct=_pct(mean_b - mean_a, mean_a),
                       ci_pct=ci_pct, p=p, identical_a=bool(np.ptp(va) == 0),
                       identical_b=bool(np.ptp(vb) == 0))
