"""Paired comparison of a variant with its baseline over matched (seed, task) runs.

The unit of pairing is one (task, seed): the variant's run and the baseline's run share the
seed, hence the initialisation and the data order. Over the n paired differences
``d = acc(variant) - acc(baseline)`` we report the mean, its two-sided confidence interval
from the t distribution (``scipy.stats.ttest_rel(...).confidence_interval``), the paired
t-test p-value (``scipy.stats.ttest_rel``) and the Wilcoxon signed-rank p-value
(``scipy.stats.wilcoxon``, exact for small n, zero differences dropped as Wilcoxon did).

Pairs from several tasks are strata (a blocked design; `paired(..., strata=tasks)`): the
tasks are fixed, so the estimate is the mean over tasks of each task's mean difference (the
paper's Avg over tasks), and its standard error comes from the within-task spreads only,
``se^2 = sum_k s_k^2 / n_k / K^2``, with Welch-Satterthwaite degrees of freedom. Differences
between the tasks' effects are part of the estimand, not noise; pooling all pairs into one
t-test would count them as noise (and weight tasks by their number of pairs). With one
stratum this is exactly the paired t-test. The Wilcoxon test stays over the pooled pairs.
The p-values describe consistency across this grid, not a population claim.
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


def paired(variant: Sequence[float], baseline: Sequence[float], confidence: float = 0.95,
           strata: Sequence[object] | None = None) -> Paired:
    """Paired difference of two equally long, aligned samples; with `strata` (one label per
    pair, e.g. its task) the stratified estimate of the module docstring. No interval when a
    stratum has fewer than two pairs (its spread is unknown)."""
    a = np.asarray(variant, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be aligned 1-D arrays, got {a.shape} and "
                         f"{b.shape}")
    d = a - b
    n = int(d.size)
    if n == 0:
        return Paired(0, NAN, NAN, NAN, NAN, NAN)
    groups = _strata(d, strata)
    mean = _mean_of_means(groups)
    if n < 2 or min(g.size for g in groups) < 2:
        return Paired(n, mean, NAN, NAN, NAN, NAN)
    if np.allclose(d, d[0], rtol=0.0, atol=1e-12):
        # zero variance (e.g. identical runs): the interval collapses and the t statistic
        # does not exist; report no p-value rather than a degenerate 0 or 1
        return Paired(n, mean, mean, mean, NAN, _wilcoxon(d))
    if len(groups) == 1:
        res = stats.ttest_rel(a, b)
        ci = res.confidence_interval(confidence_level=confidence)
        return Paired(n, mean, float(ci.low), float(ci.high), float(res.pvalue),
                      _wilcoxon(d))
    k = len(groups)
    terms = np.array([g.var(ddof=1) / g.size for g in groups])  # s_k^2 / n_k
    se = math.sqrt(terms.sum()) / k
    if se == 0.0:  # every stratum constant, strata differing
        return Paired(n, mean, mean, mean, NAN, _wilcoxon(d))
    dof = terms.sum() ** 2 / sum(t**2 / (g.size - 1) for t, g in zip(terms, groups,
                                                                      strict=True))
    half = float(stats.t.ppf(0.5 + confidence / 2, dof)) * se
    p_t = float(2 * stats.t.sf(abs(mean) / se, dof))
    return Paired(n, mean, mean - half, mean + half, p_t, _wilcoxon(d))


def _strata(d: np.ndarray, strata: Sequence[object] | None) -> list[np.ndarray]:
    """The differences of each stratum (all of them in one when no strata are given)."""
    if strata is None:
        return [d]
    labels = list(strata)
    if len(labels) != d.size:
        raise ValueError(f"{len(labels)} strata labels for {d.size} pairs")
    order = list(dict.fromkeys(labels))
    return [d[[i for i, lab in enumerate(labels) if lab == key]] for key in order]


def stratified_mean(values: Sequence[float], strata: Sequence[object]) -> float:
    """Mean over strata of each stratum's mean (the Avg over tasks of a row's runs)."""
    arr = np.asarray(values, dtype=float)
    return _mean_of_means(_strata(arr, strata)) if arr.size else NAN


def _mean_of_means(groups: list[np.ndarray]) -> float:
    return float(np.mean([g.mean() for g in groups]))


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


def projected_half_width(sds: Sequence[float], completion: Sequence[float], seeds: int,
                         confidence: float = 0.95) -> float:
    """Half-width of the stratified interval of `paired` with `seeds` seeds per task, given
    each task's sd of the paired differences and share of pairs that complete:
    ``se^2 = sum_k s_k^2 / (seeds c_k) / K^2``, Welch-Satterthwaite degrees of freedom (one
    task: ``seeds c - 1``); NaN when a task would have fewer than two complete pairs."""
    s = np.asarray(sds, dtype=float)
    pairs = seeds * np.asarray(completion, dtype=float)
    if s.shape != pairs.shape or s.size == 0:
        raise ValueError(f"{s.size} spreads for {pairs.size} completion shares")
    if (pairs < 2).any():
        return NAN
    terms = s**2 / pairs
    se = math.sqrt(terms.sum()) / s.size
    if se == 0.0:
        return 0.0
    dof = terms.sum() ** 2 / float(np.sum(terms**2 / (pairs - 1)))
    return float(stats.t.ppf(0.5 + confidence / 2, dof)) * se
