"""Paired comparison (ghuda.report.stats) against hand computations and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from ghuda.report.stats import mean_std, paired


def test_interval_and_tests_match_hand_computation():
    base = np.array([60.0, 61.0, 62.5, 70.0, 71.0, 72.5])
    diff = np.array([1.0, 1.5, 2.0, 1.0, 1.5, 2.0])
    res = paired(base + diff, base)
    sd = diff.std(ddof=1)
    half = sps.t.ppf(0.975, 5) * sd / math.sqrt(6)
    assert res.n == 6
    assert res.mean == pytest.approx(1.5)
    assert (res.ci_low, res.ci_high) == pytest.approx((1.5 - half, 1.5 + half))
    t = 1.5 / (sd / math.sqrt(6))
    assert res.p_t == pytest.approx(2 * sps.t.sf(t, 5))
    assert res.p_wilcoxon == pytest.approx(2 / 2**6)  # exact: all 6 differences positive


def test_confidence_level_widens_interval():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=8), rng.normal(size=8)
    r90, r99 = paired(a, b, 0.90), paired(a, b, 0.99)
    assert r99.ci_low < r90.ci_low < r90.mean < r90.ci_high < r99.ci_high


def test_degenerate_cases_give_no_p_values():
    same = paired([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same.mean == 0.0
    assert math.isnan(same.p_t)
    assert math.isnan(same.p_wilcoxon)
    const = paired([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert (const.ci_low, const.ci_high) == (1.0, 1.0)
    assert math.isnan(const.p_t)
    one = paired([2.0], [1.0])
    assert one.n == 1
    assert math.isnan(one.ci_low)
    assert paired([], []).n == 0


def test_misaligned_samples_are_an_error():
    with pytest.raises(ValueError, match="aligned"):
        paired([1.0, 2.0], [1.0])


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    m, s = mean_std([5.0])
    assert m == 5.0
    assert math.isnan(s)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-50, 50, allow_nan=False), min_size=3, max_size=12),
       st.floats(-10, 10, allow_nan=False))
def test_shift_moves_difference_not_baseline(values, shift):
    base = np.asarray(values)
    noise = np.linspace(-1.0, 1.0, len(values)) ** 3
    res = paired(base + shift + noise, base)
    assert res.mean == pytest.approx(shift + noise.mean(), abs=1e-9)
    assert res.ci_low <= res.mean <= res.ci_high
    again = paired(base + 100 + shift + noise, base + 100)  # common offset: same answer
    assert again.mean == pytest.approx(res.mean, abs=1e-9)


def test_no_interval_or_test_from_fewer_than_three_pairs():
    from ghuda.report.stats import paired
    from ghuda.report.tables import delta_cells

    assert delta_cells(paired([1.0, 3.0], [0.0, 0.0], 0.95)) == ["+2.0 [—, —]", "—", "—", "2"]
    cells = delta_cells(paired([1.0, 3.0, 2.0], [0.0, 0.0, 0.0], 0.95))
    assert cells[0].startswith("+2.0 [")
    assert "—" not in cells[0]


def test_one_stratum_is_the_paired_t_test():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=9), rng.normal(size=9)
    assert paired(a, b, strata=["t"] * 9) == paired(a, b)


def test_stratified_interval_matches_hand_computation():
    """Two tasks, unequal pairs: mean of task means, se from within-task spreads,
    Welch-Satterthwaite degrees of freedom (stats module docstring)."""
    d1, d2 = np.array([1.0, 2.0, 4.0]), np.array([-3.0, -1.0, -2.0, -6.0, 0.0])
    d = np.concatenate([d1, d2])
    res = paired(d, np.zeros_like(d), strata=["x"] * 3 + ["y"] * 5)
    v1, v2 = d1.var(ddof=1) / 3, d2.var(ddof=1) / 5
    se = math.sqrt(v1 + v2) / 2
    dof = (v1 + v2) ** 2 / (v1**2 / 2 + v2**2 / 4)
    mean = (d1.mean() + d2.mean()) / 2
    half = sps.t.ppf(0.975, dof) * se
    assert res.n == 8
    assert res.mean == pytest.approx(mean)
    assert (res.ci_low, res.ci_high) == pytest.approx((mean - half, mean + half))
    assert res.p_t == pytest.approx(2 * sps.t.sf(abs(mean) / se, dof))


def test_a_stratum_of_one_pair_gives_no_interval():
    res = paired([1.0, 2.0, 3.0, 9.0], [0.0] * 4, strata=["x", "x", "x", "y"])
    assert res.mean == pytest.approx((2.0 + 9.0) / 2)
    assert math.isnan(res.ci_low)
    assert math.isnan(res.p_t)


def test_strata_labels_must_match_pairs():
    with pytest.raises(ValueError, match="strata"):
        paired([1.0, 2.0], [0.0, 0.0], strata=["x"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-20, 20, allow_nan=False), min_size=2, max_size=3),
       st.integers(3, 8))
def test_task_offsets_move_the_estimate_not_its_width(offsets, per_task):
    """Fixed differences between the tasks' effects are not noise: shifting one task's
    differences moves the estimate by shift / tasks and leaves the interval's width."""
    rng = np.random.default_rng(per_task)
    noise = rng.normal(size=(len(offsets), per_task))
    labels = np.repeat(np.arange(len(offsets)), per_task)
    plain = paired(noise.ravel(), np.zeros(noise.size), strata=labels)
    shifted = paired((noise + np.asarray(offsets)[:, None]).ravel(), np.zeros(noise.size),
                     strata=labels)
    assert shifted.mean == pytest.approx(plain.mean + np.mean(offsets), abs=1e-9)
    assert shifted.ci_high - shifted.ci_low == pytest.approx(plain.ci_high - plain.ci_low,
                                                             rel=1e-9)
