"""The descent-bound check (issue 6 item 3): holds for GH with t <= 1/L, flags violations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import gh_coef, harmonizer

from ghuda.harmonize import Harmonized
from ghuda.theory import descent
from ghuda.theory.geometry import Subject
from ghuda.theory.subjects import shipped_subjects

GH = Subject("gh (test)", harmonizer(gh_coef))


@pytest.mark.parametrize("family", list(descent.FAMILIES))
def test_bound_holds_for_gh_with_admissible_steps(family):
    result = descent.random_part(family, GH, 150, seed=1, max_dim=300)
    assert result.verdict == "holds"
    assert result.cases >= 150


def test_bound_holds_for_the_shipped_gh():
    result = descent.random_part("quadratic", shipped_subjects()["gh"], 150, seed=2,
                                 max_dim=300)
    assert result.verdict == "holds"


@pytest.mark.parametrize("family", ["quadratic", "ripple"])
def test_steps_beyond_one_over_L_are_flagged(family):
    result = descent.random_part(family, GH, 200, seed=3, max_dim=50, step_factor=3.0)
    assert result.verdict == "fails"
    assert "t ≤ 3/L" in result.statement


def test_an_ascent_direction_is_flagged():
    def ascent(g1: torch.Tensor, g2: torch.Tensor) -> Harmonized:
        h = GH.fn(g1, g2)
        return Harmonized(update=-h.update, h1=-h.h1, h2=-h.h2, w1=h.w1, w2=h.w2, cos=h.cos,
                          conflict=h.conflict)

    result = descent.random_part("quadratic", Subject("ascent", ascent), 50, seed=4,
                                 max_dim=20)
    assert result.verdict == "fails"
    assert result.violating_fraction > 0.9


def test_adversarial_search_holds_for_gh_and_flags_long_steps():
    assert descent.adversarial_part("quadratic", GH, 0, 3, 4).verdict == "holds"
    assert descent.adversarial_part("quadratic", GH, 0, 3, 4, step_factor=3.0).verdict == \
        "fails"


def test_missing_gh_is_not_run():
    assert descent.random_part("quadratic", None, 10, 0).verdict == "not run"


def _hessian(f, x, h=1e-4):
    n = x.size
    hess = np.zeros((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = h
        hess[:, i] = (f(x + e) - f(x - e)) / (2 * h)
    return 0.5 * (hess + hess.T)


def test_rosenbrock_gradient_and_gershgorin_bound_on_the_box(rng):
    """L must bound the largest Hessian eigenvalue everywhere in |x_i| <= 2 (and be sharp
    enough to matter: within a factor 4 of the largest eigenvalue seen in the box)."""
    r = descent.Rosenbrock(b=37.0, sign=-1.0)
    worst = 0.0
    for _ in range(200):
        x = rng.uniform(-descent.BOX, descent.BOX, 4)
        e = 1e-6 * rng.standard_normal(4)
        assert r.value(x + e) - r.value(x - e) == pytest.approx(2 * r.grad(x) @ e, rel=1e-5)
        worst = max(worst, np.linalg.eigvalsh(_hessian(r.grad, x))[-1])
    corner = np.array([2.0, -2.0, 2.0, -2.0])
    worst = max(worst, np.linalg.eigvalsh(_hessian(r.grad, corner))[-1])
    assert worst <= r.hessian_bound(descent.BOX)
    assert worst >= r.hessian_bound(descent.BOX) / 4


def test_ripple_constant_bounds_the_hessian(rng):
    inst = descent.quadratic_instances(rng, 5, 1, ripple=True)[0]
    p = inst.problem

    def grad(x):
        g1, g2 = p.grads(x)
        return g1 + g2

    for _ in range(50):
        x = rng.uniform(-3, 3, 5)
        assert np.linalg.eigvalsh(_hessian(grad, x))[-1] <= p.L * (1 + 1e-6)


def test_largest_eigenvalue_sparse_matches_dense(rng):
    n = 200
    c = np.zeros(n)
    a = descent.random_quadratic(rng, c)
    b = descent.random_quadratic(rng, c)
    assert a.dense is None  # above DENSE_MAX_DIM: diagonal + rank 4
    dense = np.diag(a.diag) + a.low_rank @ a.low_rank.T + 3.0 * (
        np.diag(b.diag) + b.low_rank @ b.low_rank.T)
    assert descent.largest_eigenvalue(a, b, 3.0) == pytest.approx(
        np.linalg.eigvalsh(dense)[-1], rel=1e-10)
