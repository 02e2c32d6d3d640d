"""`make(name).backward` on a small network whose discriminator sits behind a gradient reversal:
it equals `harmonize` on the flattened gradients, and the weighted-loss mode; measure-scope
semantics; accumulation; the number of backward passes."""

from __future__ import annotations

import pytest
import torch
from harmonize_cases import (
    ELEMENTWISE,
    PAIRWISE,
    VECTOR,
    BackwardCounter,
    DannNet,
    conflicting_net,
    flat_grad_attr,
    flat_grads,
)

import ghuda.harmonize as H

NAMES = PAIRWISE
SEED = 11


def _options(name: str) -> dict:
    return {"seed": SEED} if name == "agr_rand" else {}


def _reference(name: str, g1: torch.Tensor, g2: torch.Tensor, measure: list[torch.Tensor]
               ) -> torch.Tensor:
    """What backward must write on the measure scope, from the flattened gradients.

    `harmonize` on the flat vectors, except Agr-Rand's noise: backward draws it tensor by
    tensor in measure order (documented), so the flat reference draws the same way."""
    r = H.harmonize(name, g1, g2, **_options(name))
    if name != "agr_rand":
        return r.update
    gen = torch.Generator().manual_seed(SEED)
    noise = torch.cat([torch.randn(t.shape, generator=gen, dtype=g1.dtype).reshape(-1)
                       for t in measure])
    conflict = (torch.sign(g1) * torch.sign(g2)) < 0
    kept = (g1 + g2)[~conflict]
    kept = kept[kept != 0]
    assert torch.equal(r.update[~conflict], (g1 + g2)[~conflict])
    return torch.where(conflict, float(kept.abs().mean()) * noise, g1 + g2)


@pytest.fixture(scope="module")
def net() -> DannNet:
    return conflicting_net()


def _fresh_grads(net: DannNet) -> None:
    for p in net.parameters():
        p.grad = None


@pytest.mark.parametrize("name", NAMES)
def test_backward_equals_harmonize_on_flat_gradients(net, name):
    params = list(net.parameters())
    g1, g2 = (flat_grads(loss, params) for loss in net.losses())
    flat = H.harmonize(name, g1, g2, **_options(name))
    assert flat.conflict  # the fixture really conflicts
    _fresh_grads(net)
    stats = H.make(name, **_options(name)).backward(*net.losses(), params)
    got = flat_grad_attr(params)
    expected = _reference(name, g1, g2, params)
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-14)
    assert stats["cos"] == pytest.approx(flat.cos, rel=1e-10)
    assert stats["conflict"] is True
    if flat.w1 is None:
        assert (stats["w1"], stats["w2"]) == (None, None)
    else:
        assert (stats["w1"], stats["w2"]) == pytest.approx((flat.w1, flat.w2), rel=1e-10)
    assert stats["norm1"] == pytest.approx(float(g1.norm()), rel=1e-10)
    assert stats["norm2"] == pytest.approx(float(g2.norm()), rel=1e-10)
    assert stats["norm_update"] == pytest.approx(float(expected.norm()), rel=1e-8)
    assert stats["fallback"] is None
    assert net.unused.weight.grad is None  # reached by neither loss: untouched
    assert set(stats) == {"cos", "angle_deg", "conflict", "w1", "w2", "norm1", "norm2",
                          "norm_update", "fallback"}


@pytest.mark.parametrize("name", VECTOR)
def test_weighted_loss_mode_equals_direct(net, name):
    params = list(net.parameters())
    _fresh_grads(net)
    direct = H.make(name).backward(*net.losses(), params, net.backbone())
    want = flat_grad_attr(params)
    _fresh_grads(net)
    weighted = H.make(name, mode="weighted_loss").backward(*net.losses(), params,
                                                           net.backbone())
    assert torch.allclose(flat_grad_attr(params), want, rtol=1e-10, atol=1e-14)
    assert weighted.pop("fallback") == direct.pop("fallback")
    assert weighted == pytest.approx(direct, rel=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_measure_subset(net, name):
    """Angle and weights on the backbone; heads get w1*g1 + w2*g2 (element-wise: g1 + g2)."""
    params, backbone, heads = list(net.parameters()), net.backbone(), net.heads()
    g1, g2 = (flat_grads(loss, backbone) for loss in net.losses())
    h1, h2 = (flat_grads(loss, heads) for loss in net.losses())
    flat = H.harmonize(name, g1, g2, **_options(name))
    _fresh_grads(net)
    stats = H.make(name, **_options(name)).backward(*net.losses(), params, backbone)
    assert torch.allclose(flat_grad_attr(backbone), _reference(name, g1, g2, backbone),
                          rtol=1e-10, atol=1e-14)
    w1, w2 = (1.0, 1.0) if flat.w1 is None else (flat.w1, flat.w2)
    assert torch.allclose(flat_grad_attr(heads), w1 * h1 + w2 * h2, rtol=1e-10, atol=1e-14)
    assert stats["cos"] == pytest.approx(flat.cos, rel=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_measure_disjoint_from_params(net, name):
    """MCD-style: measure on the backbone, step only the heads; the backbone's .grad stays."""
    backbone, heads = net.backbone(), net.heads()
    g1, g2 = (flat_grads(loss, backbone) for loss in net.losses())
    h1, h2 = (flat_grads(loss, heads) for loss in net.losses())
    flat = H.harmonize(name, g1, g2, **_options(name))
    _fresh_grads(net)
    stats = H.make(name, **_options(name)).backward(*net.losses(), heads, backbone)
    assert all(p.grad is None for p in backbone)
    w1, w2 = (1.0, 1.0) if flat.w1 is None else (flat.w1, flat.w2)
    assert torch.allclose(flat_grad_attr(heads), w1 * h1 + w2 * h2, rtol=1e-10, atol=1e-14)
    assert stats["cos"] == pytest.approx(flat.cos, rel=1e-10)
    if name != "sum":
        assert stats["conflict"]


@pytest.mark.parametrize("name", NAMES)
def test_unreached_tensors_count_as_zeros_at_their_position(net, name):
    """The classifier is not reached by the transfer loss, the discriminator not by the
    classification loss: zeros at their fixed positions, never a shifted vector."""
    params = [*net.classifier.parameters(), *net.l2.parameters(), *net.disc.parameters()]
    transfer, cls = net.losses()
    assert torch.autograd.grad(transfer, net.classifier.weight, retain_graph=True,
                               allow_unused=True)[0] is None
    g1, g2 = flat_grads(transfer, params), flat_grads(cls, params)
    _fresh_grads(net)
    H.make(name, **_options(name)).backward(transfer, cls, params)
    assert torch.allclose(flat_grad_attr(params), _reference(name, g1, g2, params),
                          rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_loss_that_reaches_no_measured_parameter(net, name):
    """A loss with zero gradient on the measure scope: fallback plain sum."""
    params = list(net.parameters())
    transfer, cls = net.losses()
    disc_only = net.disc(torch.ones(3, 5, dtype=torch.float64)).square().mean()
    g1, g2 = flat_grads(cls, params), flat_grads(disc_only, params)
    _fresh_grads(net)
    stats = H.make(name, **_options(name)).backward(cls, disc_only, params, net.backbone())
    assert stats["fallback"] == (None if name == "sum" else "zero_gradient")
    assert stats["norm2"] == 0.0
    assert torch.allclose(flat_grad_attr(params), g1 + g2, rtol=1e-12, atol=0.0)
    constant = torch.tensor(3.0, dtype=torch.float64)
    _fresh_grads(net)
    stats = H.make(name, **_options(name)).backward(cls, constant, params)
    assert torch.allclose(flat_grad_attr(params), g1, rtol=1e-12, atol=0.0)
    assert stats["norm2"] == 0.0
    del transfer


@pytest.mark.parametrize("name", NAMES)
def test_backward_accumulates_into_existing_grads(net, name):
    params = list(net.parameters())
    _fresh_grads(net)
    H.make(name, **_options(name)).backward(*net.losses(), params)
    once = flat_grad_attr(params)
    _fresh_grads(net)
    for p in params:
        p.grad = torch.full_like(p, 0.5)
    H.make(name, **_options(name)).backward(*net.losses(), params)
    assert net.unused.weight.grad is not None
    reached = flat_grad_attr(params) - 0.5
    assert torch.allclose(reached, once, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("on_backbone", [False, True])
def test_scales_apply_after_harmonization(net, name, on_backbone):
    """update = s1*w1*g1 + s2*w2*g2 (element-wise: s1*h1 + s2*h2), weights unscaled; outside
    the measure scope s1*w1*g1 + s2*w2*g2 (element-wise: s1*g1 + s2*g2)."""
    params, scales = list(net.parameters()), (2.0, 0.25)
    measure = net.backbone() if on_backbone else params
    outside = net.heads() if on_backbone else []
    g1, g2 = (flat_grads(loss, measure) for loss in net.losses())
    o1, o2 = (flat_grads(loss, outside) if outside else torch.zeros(0) for loss in net.losses())
    flat = H.harmonize(name, g1, g2, **_options(name))
    _fresh_grads(net)
    stats = H.make(name, **_options(name)).backward(*net.losses(), params, measure,
                                                    scales=scales)
    w1, w2 = (1.0, 1.0) if flat.w1 is None else (flat.w1, flat.w2)
    if outside:
        assert torch.allclose(flat_grad_attr(outside), scales[0] * w1 * o1 + scales[1] * w2 * o2,
                              rtol=1e-10, atol=1e-14)
    got = flat_grad_attr(measure)
    if flat.w1 is None:
        expected = scales[0] * flat.h1 + scales[1] * flat.h2
    else:
        expected = scales[0] * flat.w1 * g1 + scales[1] * flat.w2 * g2
        assert (stats["w1"], stats["w2"]) == pytest.approx((flat.w1, flat.w2), rel=1e-10)
    if name == "agr_rand":  # noise is drawn per tensor: compare it with an unscaled run
        _fresh_grads(net)
        H.make(name, **_options(name)).backward(*net.losses(), params, measure)
        kept = (torch.sign(g1) * torch.sign(g2)) >= 0
        noise = flat_grad_attr(measure)[~kept]
        assert torch.allclose(got[~kept], (scales[0] + scales[1]) / 2 * noise)
        got, expected = got[kept], expected[kept]
    else:
        assert stats["norm_update"] == pytest.approx(float(expected.norm()), rel=1e-8)
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", VECTOR)
def test_outside_sum_harmonizes_only_the_measure_scope(net, name):
    """outside="sum": the backbone gets the released update, the heads s1*g1 + s2*g2."""
    params, backbone, heads, scales = (list(net.parameters()), net.backbone(), net.heads(),
                                       (2.0, 0.25))
    h1, h2 = (flat_grads(loss, heads) for loss in net.losses())
    _fresh_grads(net)
    released = H.make(name).backward(*net.losses(), params, backbone, scales=scales)
    want_backbone, want_heads = flat_grad_attr(backbone), flat_grad_attr(heads)
    _fresh_grads(net)
    ablation = H.make(name, outside="sum").backward(*net.losses(), params, backbone,
                                                    scales=scales)
    assert torch.allclose(flat_grad_attr(backbone), want_backbone, rtol=1e-12, atol=1e-15)
    assert torch.allclose(flat_grad_attr(heads), scales[0] * h1 + scales[1] * h2,
                          rtol=1e-10, atol=1e-14)
    assert ablation == released  # statistics live on the measure scope
    if name not in ("sum",):
        assert not torch.allclose(flat_grad_attr(heads), want_heads)  # the option matters


@pytest.mark.parametrize("name", VECTOR)
def test_outside_option_is_validated(name):
    with pytest.raises(ValueError, match="outside must be one of"):
        H.make(name, outside="nope")
    with pytest.raises(ValueError, match="no weighted-loss form"):
        H.make(name, outside="sum", mode="weighted_loss")


@pytest.mark.parametrize("name", VECTOR)
def test_weighted_loss_mode_with_scales(net, name):
    params, scales = list(net.parameters()), (3.0, 0.5)
    _fresh_grads(net)
    H.make(name).backward(*net.losses(), params, scales=scales)
    want = flat_grad_attr(params)
    _fresh_grads(net)
    H.make(name, mode="weighted_loss").backward(*net.losses(), params, scales=scales)
    assert torch.allclose(flat_grad_attr(params), want, rtol=1e-10, atol=1e-14)


def test_sum_without_stats_is_one_plain_backward(net):
    params = list(net.parameters())
    _fresh_grads(net)
    transfer, cls = net.losses()
    (2.0 * transfer + cls).backward()
    want = flat_grad_attr(params)
    _fresh_grads(net)
    assert H.make("sum").backward(*net.losses(), params, with_stats=False,
                                  scales=(2.0, 1.0)) == {}
    assert torch.allclose(flat_grad_attr(params), want, rtol=1e-12, atol=0.0)


def _passes(harmonizer: H.Harmonizer, net: DannNet, **kwargs) -> int:
    _fresh_grads(net)
    losses = net.losses()
    BackwardCounter.calls = 0
    harmonizer.backward(*losses, list(net.parameters()), **kwargs)
    return BackwardCounter.calls


@pytest.mark.parametrize("name", NAMES)
def test_direct_mode_costs_two_backward_passes(net, name):
    assert _passes(H.make(name, **_options(name)), net) == 2


@pytest.mark.parametrize("name", VECTOR)
def test_weighted_loss_mode_costs_three_backward_passes(net, name):
    assert _passes(H.make(name, mode="weighted_loss"), net) == 3


def test_sum_without_stats_costs_one_backward_pass(net):
    assert _passes(H.make("sum"), net, with_stats=False) == 1


def test_retain_graph_allows_another_backward(net):
    params = list(net.parameters())
    transfer, cls = net.losses()
    H.make("gh").backward(transfer, cls, params, retain_graph=True)
    H.make("gh").backward(transfer, cls, params)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        H.make("gh").backward(transfer, cls, params)


@pytest.mark.parametrize("name", ["gh", "ghpp_exact", "pcgrad"])
def test_weighted_loss_overflow_falls_back_to_direct_writing(name):
    """Norms 1e20 and 1e-20 give a weight ~1e40: the weighted float32 loss would be inf."""
    p = torch.zeros(4, requires_grad=True)
    u1 = torch.tensor([1.0, 0.5, 0.0, 0.0])
    u2 = torch.tensor([-1.0, 0.0, 0.3, 0.0])
    losses = (lambda: 1e20 * (p @ u1) + 1.0, lambda: 1e-20 * (p @ u2) + 1.0)
    H.make(name).backward(losses[0](), losses[1](), [p])
    want = p.grad.clone()
    p.grad = None
    stats = H.make(name, mode="weighted_loss").backward(losses[0](), losses[1](), [p])
    assert stats["fallback"] == "weighted_loss_overflow"
    assert bool(torch.isfinite(p.grad).all())
    assert torch.equal(p.grad, want)


@pytest.mark.parametrize("name", NAMES)
def test_non_finite_gradient_in_backward_raises(name):
    p = torch.ones(3, requires_grad=True)
    bad = (p * torch.tensor([1.0, float("inf"), 0.0])).sum()
    with pytest.raises(H.NonFiniteGradientError, match="second loss"):
        H.make(name, **_options(name)).backward(p.sum(), bad, [p])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"params": []}, "`params` is empty"),
    ({"measure": []}, "`measure` is empty"),
    ({"scales": (1.0, float("nan"))}, "scales must be two finite numbers"),
    ({"scales": (1.0,)}, "scales must be two finite numbers"),
])
@pytest.mark.parametrize("name", ["gh", "agr_sum"])
def test_bad_backward_arguments(net, name, kwargs, message):
    call = {"params": list(net.parameters()), **kwargs}
    with pytest.raises(ValueError, match=message):
        H.make(name).backward(*net.losses(), **call)


def test_params_must_be_leaves_requiring_grad(net):
    frozen = torch.zeros(2)
    with pytest.raises(ValueError, match=r"params\[1\].*requires_grad=True"):
        H.make("gh").backward(*net.losses(), [net.l1.weight, frozen])
    with pytest.raises(ValueError, match="scalar tensor"):
        H.make("gh").backward(net.l1.weight.sum(0), net.l1.weight.sum(), [net.l1.weight])


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_agr_rand_backward_resumes_exactly(net, name):
    """Two steps in a row equal one step, a checkpoint of the state, and a resumed step."""
    params = list(net.parameters())
    h = H.make(name, **_options(name))
    _fresh_grads(net)
    h.backward(*net.losses(), params)
    state = h.state_dict()
    _fresh_grads(net)
    h.backward(*net.losses(), params)
    second = flat_grad_attr(params)
    resumed = H.make(name, **_options(name))
    resumed.load_state_dict(state)
    _fresh_grads(net)
    resumed.backward(*net.losses(), params)
    assert torch.equal(flat_grad_attr(params), second)


def test_float32_network_matches_float64_reference():
    """The same facts hold for a float32 network (tolerances of float32)."""
    net = conflicting_net(torch.float32)
    params = list(net.parameters())
    g1, g2 = (flat_grads(loss, params) for loss in net.losses())
    for name in ("gh", "ghpp", "ghpp_exact", "agr_sum"):
        _fresh_grads(net)
        H.make(name).backward(*net.losses(), params)
        want = H.harmonize(name, g1.double(), g2.double()).update
        assert torch.allclose(flat_grad_attr(params).double(), want, rtol=1e-4,
                              atol=1e-6 * float(want.norm()))
