"""Gradient surgery (REFERENCE 2): Agr-Sum and Agr-Rand on the flat API."""

from __future__ import annotations

import io

import pytest
import torch
from harmonize_cases import ELEMENTWISE, FAST, signed_vectors
from hypothesis import given

import ghuda.harmonize as H


def _conflict(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    return ((g1 > 0) & (g2 < 0)) | ((g1 < 0) & (g2 > 0))


def _expected_noise(seed: int, n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@FAST
@given(signed_vectors())
def test_agr_sum_zeroes_exactly_the_sign_conflicting_coordinates(case):
    g1, g2 = case
    r = H.harmonize("agr_sum", g1, g2)
    conflict = _conflict(g1, g2)
    assert torch.equal(r.update[conflict], torch.zeros(int(conflict.sum()), dtype=g1.dtype))
    assert torch.equal(r.update[~conflict], (g1 + g2)[~conflict])
    assert torch.equal(r.h1, torch.where(conflict, 0.0, g1))
    assert torch.equal(r.h2, torch.where(conflict, 0.0, g2))
    assert (r.w1, r.w2) == (None, None)


@FAST
@given(signed_vectors())
def test_agr_rand_fills_conflicts_with_scaled_seeded_noise(case):
    g1, g2 = case
    r = H.harmonize("agr_rand", g1, g2, seed=7)
    conflict = _conflict(g1, g2)
    kept = (g1 + g2)[~conflict]
    kept = kept[kept != 0]
    scale = float(kept.abs().mean()) if kept.numel() else 0.0
    noise = scale * _expected_noise(7, g1.numel())
    assert torch.equal(r.update[~conflict], (g1 + g2)[~conflict])
    assert torch.allclose(r.update[conflict], noise[conflict], rtol=1e-12, atol=0.0)
    assert torch.allclose(r.h1 + r.h2, r.update, rtol=1e-12, atol=0.0)
    assert torch.equal(r.h1[~conflict], g1[~conflict])


def test_agr_rand_noise_scale_is_the_mean_kept_magnitude():
    """Statistical check on many coordinates: conflicting entries ~ N(0, scale^2)."""
    gen = torch.Generator().manual_seed(0)
    g1 = torch.randn(200_000, generator=gen, dtype=torch.float64)
    g2 = torch.randn(200_000, generator=gen, dtype=torch.float64) * 3
    r = H.harmonize("agr_rand", g1, g2, seed=1)
    conflict = _conflict(g1, g2)
    scale = float((g1 + g2)[~conflict].abs().mean())
    filled = r.update[conflict]
    assert float(filled.mean()) == pytest.approx(0.0, abs=0.02 * scale)
    assert float(filled.std()) == pytest.approx(scale, rel=0.02)


def test_agr_rand_is_seeded():
    gen = torch.Generator().manual_seed(0)
    g1, g2 = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
    a = H.harmonize("agr_rand", g1, g2, seed=3).update
    assert torch.equal(a, H.harmonize("agr_rand", g1, g2, seed=3).update)
    assert not torch.equal(a, H.harmonize("agr_rand", g1, g2, seed=4).update)


def test_agr_rand_state_round_trips_through_a_checkpoint():
    gen = torch.Generator().manual_seed(0)
    g1, g2 = torch.randn(50, generator=gen), torch.randn(50, generator=gen)
    h = H.make("agr_rand", seed=5)
    h.harmonize(g1, g2)
    buffer = io.BytesIO()
    torch.save(h.state_dict(), buffer)
    buffer.seek(0)
    resumed = H.make("agr_rand", seed=0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(h.harmonize(g1, g2).update, resumed.harmonize(g1, g2).update)
    fresh = H.make("agr_rand", seed=5)
    assert not torch.equal(fresh.harmonize(g1, g2).update, resumed.harmonize(g1, g2).update)
    with pytest.raises(ValueError, match="state must have keys"):
        resumed.load_state_dict({"seed": 1})


def test_agr_rand_without_agreeing_coordinates_falls_back_to_zero_fill():
    g1 = torch.tensor([1.0, -2.0, 3.0])
    r = H.harmonize("agr_rand", g1, -0.5 * g1)
    assert r.fallback == "no_agreeing_coordinate"
    assert torch.equal(r.update, torch.zeros(3))


@pytest.mark.parametrize("name", ELEMENTWISE)
@FAST
@given(signed_vectors())
def test_agreeing_signs_give_the_plain_sum(name, case):
    g1, g2 = case
    g2 = g2.abs() * torch.sign(g1)  # same sign (or zero) everywhere
    r = H.harmonize(name, g1, g2)
    assert torch.equal(r.update, g1 + g2)
    assert torch.equal(r.h1, g1)
    assert torch.equal(r.h2, g2)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_have_no_weighted_loss_form(name):
    with pytest.raises(ValueError, match="element-wise"):
        H.make(name, mode="weighted_loss")
