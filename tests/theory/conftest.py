"""Injectable harmonizers for the theory checks: correct ones built from the numpy references
(independent of ghuda.harmonize) and deliberately broken ones."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from ghuda.harmonize import Harmonized
from ghuda.theory import reference
from ghuda.theory.geometry import Subject

Coef = Callable[[float, float, float, float], tuple[float, float, float, float]]


def harmonizer(coef: Coef, t_default: float = 0.5) -> Callable[..., Harmonized]:
    """A harmonize function from 2x2 coefficients (cos, n1, n2, t) -> (a11, a12, a21, a22)."""

    def fn(g1: torch.Tensor, g2: torch.Tensor, t: float = t_default) -> Harmonized:
        n1, n2 = float(g1.norm()), float(g2.norm())
        cos = float(g1 @ g2) / n1 / n2 if n1 > 0 and n2 > 0 else 0.0
        a11, a12, a21, a22 = coef(max(-1.0, min(1.0, cos)), n1, n2, t)
        h1, h2 = a11 * g1 + a12 * g2, a21 * g1 + a22 * g2
        return Harmonized(update=h1 + h2, h1=h1, h2=h2, w1=a11 + a21, w2=a12 + a22, cos=cos,
                          conflict=cos < 0)

    return fn


def gh_coef(cos: float, n1: float, n2: float, t: float, shrink: float = 1.0):
    if cos >= 0 or n1 == 0 or n2 == 0:
        return 1.0, 0.0, 0.0, 1.0
    return 1.0, -shrink * cos * n1 / n2, -shrink * cos * n2 / n1, 1.0


def exact_coef(cos: float, n1: float, n2: float, t: float):
    if cos >= 0 or n1 == 0 or n2 == 0 or cos == -1.0:
        return 1.0, 0.0, 0.0, 1.0
    return tuple(float(a) for a in reference.ghpp_exact_coefficients(cos, n1, n2, t))


def released_coef(cos: float, n1: float, n2: float, t: float):
    w1, w2 = reference.ghpp_released_weights(cos, n1, n2, t)
    return float(w1), 0.0, 0.0, float(w2)


def subjects_from(**fns: Callable[..., Harmonized]) -> dict[str, Subject]:
    out = {}
    for key, fn in fns.items():
        out[key] = Subject(f"{key} (test)", fn, takes_t=key.endswith("@t"))
    return out


@pytest.fixture
def correct() -> dict[str, Subject]:
    """Reference-built harmonizers for every subject key (all properties of 1, 2, 4 hold)."""
    gh = harmonizer(gh_coef)
    exact = harmonizer(exact_coef)
    return subjects_from(gh=gh, pcgrad=gh, ghpp=harmonizer(released_coef), ghpp_exact=exact,
                         **{"ghpp_exact@t": exact})


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
