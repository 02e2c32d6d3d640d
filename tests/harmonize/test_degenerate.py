"""Degenerate inputs (issue 2): zero gradients, exact antiparallel pairs, norms from 1e-20 to
1e20, float16/bfloat16, non-finite values, and bad options — never NaN/Inf, documented
fallbacks, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from harmonize_cases import PAIRWISE, VECTOR, angle_deg, pair_with_angle

import ghuda.harmonize as H
from ghuda.harmonize.ghpp_exact import ANTIPARALLEL_SIN

NAMES = PAIRWISE


def _finite(r: H.Harmonized) -> bool:
    return all(bool(torch.isfinite(x).all()) for x in (r.update, r.h1, r.h2))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("which", ["first", "second", "both"])
def test_zero_gradient_gives_the_plain_sum(name, which):
    g, _ = pair_with_angle(120.0, 2.0, 1.0, 6, seed=0)
    zero = torch.zeros_like(g)
    g1 = zero if which in ("first", "both") else g
    g2 = zero if which in ("second", "both") else -g
    r = H.harmonize(name, g1, g2)
    assert _finite(r)
    assert torch.equal(r.update, g1 + g2)
    assert r.cos == 0.0
    assert not r.conflict
    assert r.fallback == (None if name == "sum" else "zero_gradient")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exactly_antiparallel(name, dtype):
    g1 = torch.tensor([0.5, -1.0, 2.0, 0.25], dtype=dtype)
    g2 = -2.0 * g1
    r = H.harmonize(name, g1, g2)
    assert _finite(r)
    assert r.conflict
    assert r.cos == -1.0
    n = float(g1.norm())
    if name in ("gh", "pcgrad", "agr_sum", "agr_rand"):
        # GH/PCGrad: each gradient is its own projection (exact limit); Agr-*: every
        # coordinate conflicts, and Agr-Rand has no kept magnitude to scale noise with.
        assert float(r.update.norm()) <= 1e-6 * n
    if name == "ghpp":
        assert (r.w1, r.w2) == pytest.approx((1 + 2 * math.sin(math.radians(22.5)),
                                              1 - 2 * math.sin(math.radians(22.5))))
    if name == "ghpp_exact":
        assert r.fallback == "antiparallel"
        c = math.cos(math.radians(45.0))
        assert torch.allclose(r.h1, c * g1)
        assert torch.allclose(r.h2, c * g2)
    if name == "agr_rand":
        assert r.fallback == "no_agreeing_coordinate"


def test_ghpp_exact_just_outside_the_antiparallel_tolerance_keeps_its_facts_in_float32():
    theta = 180.0 - math.degrees(2 * ANTIPARALLEL_SIN)
    g1, g2 = pair_with_angle(theta, 3.0, 1.0, 64, seed=1, dtype=torch.float32)
    r = H.harmonize("ghpp_exact", g1, g2)
    assert r.fallback is None
    assert float(r.h1.norm()) == pytest.approx(3.0, rel=1e-3)
    assert float(r.h2.norm()) == pytest.approx(1.0, rel=1e-3)
    assert angle_deg(r.h1, r.h2) == pytest.approx(90.0, abs=0.1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1e-20, 1e20])
def test_extreme_common_scale_is_equivariant(name, dtype, scale):
    g1, g2 = pair_with_angle(140.0, 1.0, 3.0, 32, seed=2, dtype=dtype)
    base = H.harmonize(name, g1, g2, **({"seed": 1} if name == "agr_rand" else {}))
    r = H.harmonize(name, g1 * scale, g2 * scale, **({"seed": 1} if name == "agr_rand" else {}))
    assert _finite(r)
    assert r.cos == pytest.approx(base.cos, abs=1e-6)
    if name in VECTOR:
        assert (r.w1, r.w2) == pytest.approx((base.w1, base.w2), rel=1e-5)
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(r.update.double() / scale, base.update.double(), rtol=rtol,
                          atol=rtol * float(base.update.norm()))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("norms", [(1e-20, 1e20), (1e20, 1e-20)])
def test_extreme_norm_ratio_stays_finite_and_exact(name, dtype, norms):
    g1, g2 = pair_with_angle(130.0, *norms, 16, seed=3, dtype=dtype)
    r = H.harmonize(name, g1, g2)
    assert _finite(r)
    assert r.conflict
    g1, g2, h1, h2 = (x.double() for x in (g1, g2, r.h1, r.h2))  # float32 norms overflow
    if name in ("gh", "pcgrad"):  # h1 _|_ g2 and h2 _|_ g1 still hold
        assert abs(float(h1 @ g2)) <= 1e-5 * float(h1.norm() * g2.norm())
        assert abs(float(h2 @ g1)) <= 1e-5 * float(h2.norm() * g1.norm())
    if name == "ghpp_exact":
        assert float(h1.norm()) == pytest.approx(norms[0], rel=1e-5)
        assert float(h2.norm()) == pytest.approx(norms[1], rel=1e-5)
        assert angle_deg(r.h1, r.h2) == pytest.approx(90.0, abs=1e-3)


def _half_case(kind: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    if kind == "near_max":  # ghpp's w1 * 6e4 exceeds float16's 65504
        return (torch.tensor([6e4, -100.0, 2e3], dtype=dtype),
                torch.tensor([-3e4, 5e3, 1e3], dtype=dtype))
    norm = {"tiny": 1e-3, "unit": 1.0}[kind]
    return pair_with_angle(150.0, norm, norm / 4, 128, seed=4, dtype=dtype)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", ["tiny", "unit", "near_max"])
def test_half_precision_inputs(name, dtype, kind):
    """Half inputs are combined in float32: results match the float32 computation on the same
    (already rounded) values to half precision, and saturate instead of overflowing."""
    g1, g2 = _half_case(kind, dtype)
    options = {"seed": 2} if name == "agr_rand" else {}
    r = H.harmonize(name, g1, g2, **options)
    assert r.update.dtype == dtype
    assert _finite(r)
    ref = H.harmonize(name, g1.float(), g2.float(), **options)
    limit = torch.finfo(dtype).max
    eps = torch.finfo(dtype).eps
    for got, want in ((r.update, ref.update), (r.h1, ref.h1), (r.h2, ref.h2)):
        want = want.clamp(-limit, limit)
        assert torch.allclose(got.float(), want, rtol=eps, atol=eps * float(g1.float().norm()))


def test_half_precision_case_really_saturates():
    g1, g2 = _half_case("near_max", torch.float16)
    assert float(H.harmonize("ghpp", g1.float(), g2.float()).update.abs().max()) > 65504
    assert float(H.harmonize("ghpp", g1, g2).update.abs().max()) == 65504


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["first", "second"])
def test_non_finite_gradients_raise(name, bad, where):
    g1, g2 = pair_with_angle(120.0, 1.0, 1.0, 4, seed=5)
    (g1 if where == "first" else g2)[2] = bad
    with pytest.raises(H.NonFiniteGradientError, match=f"{where} loss is not finite"):
        H.harmonize(name, g1, g2)


@pytest.mark.parametrize(("options", "message"), [
    ({"t": -0.1}, "trade-off t"),
    ({"t": 1.5}, "trade-off t"),
    ({"t": "half"}, "trade-off t"),
    ({"t": True}, "trade-off t"),
    ({"t": math.nan}, "trade-off t"),
    ({"mode": "fast"}, "mode must be one of"),
    ({"alpha": 1}, "bad options"),
])
@pytest.mark.parametrize("name", ["ghpp", "ghpp_exact"])
def test_bad_options_are_rejected(name, options, message):
    with pytest.raises(ValueError, match=message):
        H.make(name, **options)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        H.make("agr_rand", seed=seed)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown harmonizer 'nope'.*'gh'"):
        H.make("nope")


@pytest.mark.parametrize(("g1", "g2", "message"), [
    (torch.zeros(3), torch.zeros(4), "1-D tensors of equal length"),
    (torch.zeros(2, 2), torch.zeros(2, 2), "1-D tensors of equal length"),
    (torch.zeros(3), torch.zeros(3, dtype=torch.float64), "one dtype"),
    (torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64), "floating-point"),
])
def test_bad_flat_inputs_are_rejected(g1, g2, message):
    with pytest.raises(ValueError, match=message):
        H.harmonize("gh", g1, g2)


@pytest.mark.parametrize("name", VECTOR)
def test_registry_classes_declare_their_costs(name):
    direct, weighted = H.make(name), H.make(name, mode="weighted_loss")
    assert direct.extra_forward == 0
    assert direct.extra_backward == (0 if name == "sum" else 1)
    assert weighted.extra_backward == 2
