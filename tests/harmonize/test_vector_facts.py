"""The facts of REFERENCE 1.2 (GH, PCGrad) and 1.3 (GH++ released and exact) on random
conflicting pairs, and the plain sum without conflict."""

from __future__ import annotations

import math

import pytest
import torch
from harmonize_cases import FAST, VECTOR, angle_deg, pair_with_angle, pairs
from hypothesis import given
from hypothesis import strategies as st

import ghuda.harmonize as H
from ghuda.harmonize.pcgrad import pcgrad_coefficients

ANGLE_TOL = 1e-7  # degrees


def _close(x: torch.Tensor, y: torch.Tensor, scale: float, rel: float = 1e-10) -> bool:
    return float((x - y).abs().max()) <= rel * scale


# ---------------------------------------------------------------- GH (REFERENCE 1.2)
@FAST
@given(pairs())
def test_gh_projections_are_orthogonal_to_the_other_gradient(case):
    g1, g2, _ = case
    r = H.harmonize("gh", g1, g2)
    scale = float(g1.norm() * g2.norm())
    assert abs(float(r.h1 @ g2)) <= 1e-12 * scale
    assert abs(float(r.h2 @ g1)) <= 1e-12 * scale
    assert r.conflict


@FAST
@given(pairs())
def test_gh_angles(case):
    g1, g2, theta = case
    r = H.harmonize("gh", g1, g2)
    assert angle_deg(r.h1, r.h2) == pytest.approx(180.0 - theta, abs=ANGLE_TOL)
    assert angle_deg(r.h1, g1) == pytest.approx(theta - 90.0, abs=ANGLE_TOL)
    assert angle_deg(r.h2, g2) == pytest.approx(theta - 90.0, abs=ANGLE_TOL)
    assert math.degrees(math.acos(r.cos)) == pytest.approx(theta, abs=1e-6)


@FAST
@given(pairs())
def test_gh_update_agrees_with_both_tasks(case):
    g1, g2, theta = case
    r = H.harmonize("gh", g1, g2)
    sin2 = math.sin(math.radians(theta)) ** 2
    for g in (g1, g2):
        rounding = 1e-12 * float(r.update.norm() * g.norm())  # cancellation in the dot
        assert float(r.update @ g) == pytest.approx(float(g @ g) * sin2, rel=1e-9, abs=rounding)
        assert float(r.update @ g) >= -rounding


@FAST
@given(pairs())
def test_gh_weighted_loss_form(case):
    g1, g2, _ = case
    r = H.harmonize("gh", g1, g2)
    d = float(g1 @ g2)
    assert r.w1 == pytest.approx(1 - d / float(g1 @ g1), rel=1e-12)
    assert r.w2 == pytest.approx(1 - d / float(g2 @ g2), rel=1e-12)
    assert r.w1 >= 1.0
    assert r.w2 >= 1.0
    scale = float(g1.norm() * abs(r.w1) + g2.norm() * abs(r.w2))
    assert _close(r.update, r.w1 * g1 + r.w2 * g2, scale)
    assert _close(r.update, r.h1 + r.h2, scale)


def test_gh_weights_are_unbounded_as_released():
    """REFERENCE 1.2: |g1| = 10, |g2| = 1, theta = 150 deg gives w2 ~ 9.7 (never clipped)."""
    g1, g2 = pair_with_angle(150.0, 10.0, 1.0, 5, seed=0)
    assert H.harmonize("gh", g1, g2).w2 == pytest.approx(1 + 10 * math.cos(math.radians(30)))


@FAST
@given(pairs(), st.floats(0.05, 1.0), st.integers(0, 1000))
def test_gh_descent_guarantee_on_smooth_quadratics(case, step_fraction, seed):
    """PCGrad's guarantee (REFERENCE 1.2): for L-smooth L = L1 + L2 and step t <= 1/L,
    L(x - t (h1 + h2)) <= L(x) - t/2 sin^2(theta) |g1 + g2|^2.

    Quadratic L1, L2 whose gradients at x are g1, g2; their sum has Hessian A (SPD), and the
    change of L along -t*u is exactly -t <g, u> + t^2/2 u^T A u (no cancellation)."""
    g1, g2, theta = case
    dim = g1.numel()
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    hessian = m @ m.T + 0.1 * torch.eye(dim, dtype=torch.float64)
    t = step_fraction / float(torch.linalg.eigvalsh(hessian).max())
    g, u = g1 + g2, H.harmonize("gh", g1, g2).update
    change = -t * float(g @ u) + t * t / 2 * float(u @ hessian @ u)
    bound = -t / 2 * math.sin(math.radians(theta)) ** 2 * float(g @ g)
    assert change <= bound + 1e-9 * t * float(g1 @ g1 + g2 @ g2)


@FAST
@given(pairs())
def test_gh_equals_pcgrad_for_two_tasks(case):
    g1, g2, _ = case
    gh, pc = H.harmonize("gh", g1, g2), H.harmonize("pcgrad", g1, g2)
    scale = float(g1.norm() + g2.norm()) * max(abs(gh.w1), abs(gh.w2))
    for a, b in ((gh.h1, pc.h1), (gh.h2, pc.h2), (gh.update, pc.update)):
        assert _close(a, b, scale)
    assert pc.w1 == pytest.approx(gh.w1, rel=1e-12)
    assert pc.w2 == pytest.approx(gh.w2, rel=1e-12)


def test_pcgrad_gram_algorithm_matches_vector_pcgrad_for_three_tasks():
    """The Gram-matrix form of PCGrad equals the published vector algorithm (natural order)."""
    gen = torch.Generator().manual_seed(3)
    g = [torch.randn(7, generator=gen, dtype=torch.float64) for _ in range(3)]
    g[1] = -g[0] + 0.3 * g[1]
    g[2] = -g[1] + 0.5 * g[2]
    expected = []
    for i in range(3):
        pc = g[i].clone()
        for j in range(3):
            if j != i and float(pc @ g[j]) < 0:
                pc -= (pc @ g[j]) / (g[j] @ g[j]) * g[j]
        expected.append(pc)
    gram = torch.stack([torch.stack([a @ b for b in g]) for a in g])
    coef = pcgrad_coefficients(gram)
    projections = 0
    for i in range(3):
        got = sum(coef[i][l] * g[l] for l in range(3))
        assert torch.allclose(got, expected[i], rtol=1e-12, atol=1e-12)
        projections += sum(bool(coef[i][l] != 0.0) for l in range(3) if l != i)
    assert projections >= 2  # the case really exercises projections


# ------------------------------------------------------- GH++ as released (REFERENCE 1.3a)
@FAST
@given(pairs(), st.floats(0.0, 1.0))
def test_ghpp_released_weight_formula(case, t):
    g1, g2, theta = case
    r = H.harmonize("ghpp", g1, g2, t=t)
    beta_max = theta - 90.0
    beta = t * beta_max
    assert r.w1 == pytest.approx(1 + 2 * math.sin(math.radians(beta / 2)), abs=1e-9)
    assert r.w2 == pytest.approx(1 - 2 * math.sin(math.radians((beta_max - beta) / 2)),
                                 abs=1e-9)
    assert r.w1 >= 1.0 >= r.w2  # asymmetric: the first loss is up-weighted
    scale = float(g1.norm() * abs(r.w1) + g2.norm() * abs(r.w2))
    assert _close(r.update, r.w1 * g1 + r.w2 * g2, scale)
    assert _close(r.h1, r.w1 * g1, scale)
    assert _close(r.h2, r.w2 * g2, scale)


@FAST
@given(pairs(), st.floats(1e-3, 1e3))
def test_ghpp_released_weights_ignore_the_norms(case, factor):
    g1, g2, _ = case
    a, b = H.harmonize("ghpp", g1, g2), H.harmonize("ghpp", factor * g1, g2)
    assert (a.w1, a.w2) == pytest.approx((b.w1, b.w2), abs=1e-9)


def test_ghpp_default_trade_off_is_one_half():
    g1, g2 = pair_with_angle(130.0, 1.0, 2.0, 4, seed=1)
    assert H.harmonize("ghpp", g1, g2).w1 == H.harmonize("ghpp", g1, g2, t=0.5).w1
    assert H.harmonize("ghpp", g1, g2, t=0.2).w1 != H.harmonize("ghpp", g1, g2).w1


def test_ghpp_released_second_weight_can_be_negative():
    """REFERENCE 1.3a: w2 < 0 for t = 0 and theta > 150 deg."""
    g1, g2 = pair_with_angle(160.0, 1.0, 1.0, 4, seed=2)
    assert H.harmonize("ghpp", g1, g2, t=0.0).w2 < 0.0


# ------------------------------------------------------ exact GH++ (REFERENCE 1.3b)
@FAST
@given(pairs(), st.floats(0.0, 1.0))
def test_ghpp_exact_rotation(case, t):
    g1, g2, theta = case
    r = H.harmonize("ghpp_exact", g1, g2, t=t)
    n1, n2 = float(g1.norm()), float(g2.norm())
    assert abs(float(r.h1 @ r.h2)) <= 1e-10 * n1 * n2  # rotated pair orthogonal
    assert float(r.h1.norm()) == pytest.approx(n1, rel=1e-10)  # norms kept
    assert float(r.h2.norm()) == pytest.approx(n2, rel=1e-10)
    assert angle_deg(r.h1, g1) == pytest.approx(t * (theta - 90), abs=ANGLE_TOL)
    assert angle_deg(r.h2, g2) == pytest.approx((1 - t) * (theta - 90), abs=ANGLE_TOL)
    # rotated TOWARD the other gradient, inside span(g1, g2)
    assert angle_deg(r.h1, g2) == pytest.approx(theta - t * (theta - 90), abs=ANGLE_TOL)
    assert r.fallback is None
    scale = (n1 + n2) * max(abs(r.w1), abs(r.w2), 1.0)
    assert _close(r.update, r.h1 + r.h2, scale)
    assert _close(r.update, r.w1 * g1 + r.w2 * g2, scale)


@FAST
@given(pairs())
def test_ghpp_exact_half_trade_off_halves_gh_deviation(case):
    g1, g2, theta = case
    exact, gh = H.harmonize("ghpp_exact", g1, g2), H.harmonize("gh", g1, g2)
    half = angle_deg(gh.h1, g1) / 2
    assert angle_deg(exact.h1, g1) == pytest.approx(half, abs=ANGLE_TOL)
    assert angle_deg(exact.h2, g2) == pytest.approx(half, abs=ANGLE_TOL)
    # t = 0.5 minimises the summed squared deviation among orthogonal rotations
    deviations = [
        angle_deg(r.h1, g1) ** 2 + angle_deg(r.h2, g2) ** 2
        for r in (H.harmonize("ghpp_exact", g1, g2, t=t) for t in (0.0, 0.3, 0.5, 0.8))
    ]
    assert deviations[2] == pytest.approx(min(deviations), abs=1e-9)
    assert theta > 90


def test_ghpp_versions_do_not_guarantee_agreement_with_both_tasks():
    """REFERENCE 1.3: with very different norms, <update, g2> < 0 is possible."""
    g1, g2 = pair_with_angle(170.0, 10.0, 1.0, 6, seed=4)
    for name in ("ghpp", "ghpp_exact"):
        assert float(H.harmonize(name, g1, g2).update @ g2) < 0.0
    assert float(H.harmonize("gh", g1, g2).update @ g2) >= 0.0


# ------------------------------------------------------------------ no conflict
@pytest.mark.parametrize("name", VECTOR)
@FAST
@given(pairs(lo=0.0, hi=89.5))
def test_no_conflict_gives_the_plain_sum(name, case):
    g1, g2, _ = case
    r = H.harmonize(name, g1, g2)
    assert not r.conflict
    assert (r.w1, r.w2) == (1.0, 1.0)
    assert torch.equal(r.update, g1 + g2)
    assert torch.equal(r.h1, g1)
    assert torch.equal(r.h2, g2)


@pytest.mark.parametrize("name", VECTOR)
def test_conflict_changes_the_sum(name):
    """Guard for the test above: under conflict every harmonizer but `sum` acts."""
    g1, g2 = pair_with_angle(120.0, 1.0, 3.0, 5, seed=5)
    r = H.harmonize(name, g1, g2)
    assert r.conflict
    assert torch.equal(r.update, g1 + g2) == (name == "sum")
