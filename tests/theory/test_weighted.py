"""The integral-operator equivalence check (issue 6 item 2) on small networks."""

from __future__ import annotations

import numpy as np
import pytest

from ghuda.harmonize import make
from ghuda.theory import weighted


@pytest.mark.parametrize("name", weighted.NAMES)
def test_shipped_weighted_loss_equals_harmonized_gradient(name):
    result = weighted.random_part(name, 8, seed=0)
    assert result.verdict == "holds"
    assert result.cases == 8


class WrongWeights:
    """Geometry of GH but weights that are off by 10% for g1: the weighted loss misses h1+h2."""

    def __init__(self, mode: str = "direct") -> None:
        self.inner = make("gh", mode=mode)

    def harmonize(self, g1, g2):
        h = self.inner.harmonize(g1, g2)
        return type(h)(update=h.update, h1=h.h1, h2=h.h2, w1=1.1 * h.w1, w2=h.w2, cos=h.cos,
                       conflict=h.conflict)

    def backward(self, loss1, loss2, params):
        return self.inner.backward(loss1, loss2, params)


class PlainBackward(WrongWeights):
    """Right weights, but `backward` writes the plain sum."""

    def harmonize(self, g1, g2):
        return self.inner.harmonize(g1, g2)

    def backward(self, loss1, loss2, params):
        (loss1 + loss2).backward(inputs=params)


@pytest.mark.parametrize("fake", [WrongWeights, PlainBackward])
def test_broken_harmonizers_are_flagged(fake):
    result = weighted.random_part("gh", 8, seed=0, make=lambda name, mode="direct": fake(mode))
    assert result.verdict == "fails"
    assert result.violating_fraction == 1.0


def test_adversarial_part_runs_and_holds_for_gh():
    result = weighted.adversarial_part("gh", 0, 2, 4)
    assert result.verdict == "holds"
    assert result.cases > 10


def test_reference_update_for_gh_is_the_projection_sum(rng):
    g1, g2 = rng.standard_normal(7), rng.standard_normal(7)
    g2 -= 2 * (g1 @ g2 + 1) / (g1 @ g1) * g1  # make them conflict
    assert g1 @ g2 < 0
    u = weighted.reference_update("gh", g1, g2)
    assert u @ g1 >= 0
    assert u @ g2 >= 0
    np.testing.assert_allclose(weighted.reference_update("pcgrad", g1, g2), u)
    with pytest.raises(ValueError, match="agr_sum"):
        weighted.reference_update("agr_sum", g1, g2)


def test_unregistered_harmonizer_is_not_run():
    def make_none(name, mode="direct"):
        raise ValueError(f"unknown harmonizer {name!r}")

    assert weighted.random_part("ghpp", 2, 0, make=make_none).verdict == "not run"
