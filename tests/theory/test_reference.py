"""The numpy closed forms the shipped code is compared with (REFERENCE 1.2, 1.3)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghuda.theory import reference

angles = st.floats(90.5, 179.5)
log_ratios = st.floats(-3.0, 3.0)
trade_offs = st.floats(0.0, 1.0)


def pair(theta_deg: float, log_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    th = np.radians(theta_deg)
    return np.array([1.0, 0.0]), 10.0**log_ratio * np.array([np.cos(th), np.sin(th)])


@settings(max_examples=200, deadline=None)
@given(angles, log_ratios)
def test_gh_weights_give_the_pcgrad_update(theta, lr):
    g1, g2 = pair(theta, lr)
    w1, w2 = reference.gh_weights(np.cos(np.radians(theta)), 1.0, 10.0**lr)
    np.testing.assert_allclose(w1 * g1 + w2 * g2, reference.pcgrad_update(g1, g2),
                               atol=1e-12 * (1 + 10.0**lr))


@settings(max_examples=200, deadline=None)
@given(angles, log_ratios, trade_offs)
def test_exact_coefficients_rotate_to_orthogonal_keeping_norms(theta, lr, t):
    g1, g2 = pair(theta, lr)
    a11, a12, a21, a22 = reference.ghpp_exact_coefficients(np.cos(np.radians(theta)), 1.0,
                                                           10.0**lr, t)
    h1, h2 = a11 * g1 + a12 * g2, a21 * g1 + a22 * g2
    n2 = 10.0**lr
    assert abs(h1 @ h2) <= 1e-9 * n2
    assert np.linalg.norm(h1) == pytest.approx(1.0, rel=1e-9)
    assert np.linalg.norm(h2) == pytest.approx(n2, rel=1e-9)
    dev1 = np.degrees(np.arccos(np.clip(h1 @ g1 / np.linalg.norm(h1), -1, 1)))
    assert dev1 == pytest.approx(t * (theta - 90), abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(angles, log_ratios, trade_offs, st.sampled_from(["ghpp", "ghpp_exact"]))
def test_task_margins_have_the_sign_of_the_update_products(theta, lr, t, name):
    g1, g2 = pair(theta, lr)
    cos = np.cos(np.radians(theta))
    formula = reference.weights_for(name, {"t": t})
    w1, w2 = formula(cos, 1.0, 10.0**lr)
    u = w1 * g1 + w2 * g2
    m1, m2 = reference.task_margins(name, cos, 10.0**lr, t)
    for m, g in ((m1, g1), (m2, g2)):
        if abs(u @ g) > 1e-9 * np.linalg.norm(u) * np.linalg.norm(g):
            assert np.sign(m) == np.sign(u @ g)


def test_released_weights_match_the_worked_example():
    """theta = 150 deg, t = 0.5: beta = 30 deg, w1 = 1 + 2 sin 15°, w2 = 1 - 2 sin 15°."""
    w1, w2 = reference.ghpp_released_weights(np.cos(np.radians(150)), 3.0, 0.1, 0.5)
    assert w1 == pytest.approx(1 + 2 * np.sin(np.radians(15)))
    assert w2 == pytest.approx(1 - 2 * np.sin(np.radians(15)))


def test_no_conflict_means_plain_sum_and_unknown_names_have_no_formula():
    for name in ("sum", "gh", "pcgrad", "ghpp", "ghpp_exact"):
        w1, w2 = reference.weights_for(name, {})(0.3, 2.0, 5.0)
        assert (float(w1), float(w2)) == (1.0, 1.0)
    assert reference.weights_for("agr_sum", {}) is None
    with pytest.raises(ValueError, match="no closed form"):
        reference.task_margins("gh", -0.5, 1.0)
