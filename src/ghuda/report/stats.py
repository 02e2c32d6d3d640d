"""Paired comparison of a variant with its baseline over matched (seed, task) runs.

The unit of pairing is one (task, seed): the variant's run and the baseline's run share the
seed, hence the initialisation and the data order. Over the n paired differences
``d = acc(variant) - acc(baseline)`` we report the mean, its two-sided confidence interval
from the t distribution (``scipy.stats.ttest_rel(...).confidence_interval``), the paired
t-test p-value (``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank p-value
(``scipy.stats.wilcoxon``, exact for small n, zero differences dropped as Wilcoxon did).
Differences of runs on different tasks are not independent draws of one distribution, so the
p-values describe consistency across this grid, not a population claim.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

NAN = float("nan")


@dataclass(frozen=True)
class Paired:
    """Summary of paired differences variant - baseline."""

    n: int
    mean: float
    ci_low: float
    ci_high: float
    p_t: float
    p_wilcoxon: float


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; NaN std for a single value)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return NAN, NAN
    std = float(arr.std(ddof=1)) if arr.size > 1 else NAN
    return float(arr.mean()), std


def paired(variant: Sequence[float], baseline: Sequence[float],
           confidence: float = 0.95) -> Paired:
    """Paired difference of two equally long, aligned samples."""
    a = np.asarray(variant, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be aligned 1-D arrays, got {a.shape} and "
                         f"{b.shape}")
    d = a - b
    n = int(d.size)
    if n == 0:
        return Paired(0, NAN, NAN, NAN, NAN, NAN)
    mean = float(d.mean())
    if n < 2:
        return Paired(n, mean, NAN, NAN, NAN, NAN)
    if np.allclose(d, d[0], rtol=0.0, atol=1e-12):
        # zero variance (e.g. identical runs): the interval collapses and the t statistic
        # does not exist; report no p-value rather than a degenerate 0 or 1
        return Paired(n, mean, mean, mean, NAN, _wilcoxon(d))
    res = stats.ttest_rel(a, b)
    ci = res.confidence_interval(confidence_level=confidence)
    return Paired(n, mean, float(ci.low), float(ci.high), float(res.pvalue), _wilcoxon(d))


def _wilcoxon(d: np.ndarray) -> float:
    nonzero = d[np.abs(d) > 1e-12]
    if nonzero.size == 0:
        return NAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            p = stats.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided").pvalue
        except ValueError:
            return NAN
    return float(p) if not math.isnan(p) else NAN
