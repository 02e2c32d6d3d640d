"""MetaAlign's update against a hand-computed first-order look-ahead on a two-parameter model
(both role orders), its state, loss-scale exactness, and its errors (REFERENCE 2)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

import ghuda.harmonize as H
from ghuda.harmonize import StepContext
from ghuda.harmonize.metaalign import MetaAlign
from ghuda.methods.lookahead import reevaluator

A0, B0 = 0.7, -1.3
LRS = {"a": 0.1, "b": 0.05}
META_LR = 2.0
SCALES = (0.5, 1.5)


class TwoParams(nn.Module):
    """L1 = (ab - 1)^2, L2 = a^2 b + cos b: both losses reach both parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(A0, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(B0, dtype=torch.float64))

    def losses(self) -> dict[str, Tensor]:
        return {"l1": (self.a * self.b - 1.0) ** 2, "l2": self.a**2 * self.b + torch.cos(self.b)}


# hand-derived gradients of the two losses
def grad_l1(a: float, b: float) -> tuple[float, float]:
    return 2 * (a * b - 1) * b, 2 * (a * b - 1) * a


def grad_l2(a: float, b: float) -> tuple[float, float]:
    return 2 * a * b, a * a - math.sin(b)


def hand_update(meta_train: str, stepped: tuple[str, ...] = ("a", "b")) -> dict[str, float]:
    """s_a grad L_a(w) + s_b grad L_b(w - meta_lr * lr * s_a grad L_a(w)), stepped coords."""
    grads = {"l1": grad_l1, "l2": grad_l2}
    scale = {"l1": SCALES[0], "l2": SCALES[1]}
    meta_test = "l2" if meta_train == "l1" else "l1"
    ga = dict(zip("ab", grads[meta_train](A0, B0), strict=True))
    fast = {k: (A0 if k == "a" else B0) - (META_LR * LRS[k] * scale[meta_train] * ga[k]
                                            if k in stepped else 0.0) for k in "ab"}
    gb = dict(zip("ab", grads[meta_test](fast["a"], fast["b"]), strict=True))
    return {k: scale[meta_train] * ga[k] + scale[meta_test] * gb[k] for k in stepped}


def run(h: MetaAlign, net: TwoParams, *, stepped: tuple[str, ...] = ("a", "b"),
        measure: tuple[str, ...] | None = None, with_stats: bool = True,
        loss_scale: float = 1.0) -> tuple[dict, dict[str, Tensor | None]]:
    for p in net.parameters():
        p.grad = None
    losses = net.losses()
    params = [getattr(net, k) for k in stepped]
    la = StepContext(reevaluate=reevaluator(net, net.losses), names=list(stepped),
                     lrs=[LRS[k] for k in stepped], first="l1", second="l2",
                     loss_scale=loss_scale, where="toy")
    stats = h.backward(losses["l1"] * loss_scale, losses["l2"] * loss_scale, params,
                       None if measure is None else [getattr(net, k) for k in measure],
                       with_stats=with_stats, scales=SCALES, context=la)
    return stats, {k: getattr(net, k).grad for k in "ab"}


@pytest.mark.parametrize("start", ["second", "first"])
def test_update_equals_the_hand_computed_look_ahead_in_both_role_orders(start):
    h, net = MetaAlign(meta_lr=META_LR, start=start), TwoParams()
    first_role, second_role = ("l2", "l1") if start == "second" else ("l1", "l2")
    for meta_train in (first_role, second_role, first_role):  # roles swap at every update
        _, got = run(h, net)
        want = hand_update(meta_train)
        assert float(got["a"]) == pytest.approx(want["a"], rel=1e-12)
        assert float(got["b"]) == pytest.approx(want["b"], rel=1e-12)
    assert h.state_dict() == {"updates": {"l1|l2": 3}}
    # the two orders really differ here (the test could not pass by accident)
    assert hand_update("l1")["a"] != pytest.approx(hand_update("l2")["a"], rel=1e-3)


def test_statistics_are_those_of_the_gradients_at_w():
    h, net = MetaAlign(meta_lr=META_LR), TwoParams()
    stats, got = run(h, net)
    g1, g2 = (torch.tensor(g(A0, B0), dtype=torch.float64) for g in (grad_l1, grad_l2))
    assert stats["cos"] == pytest.approx(float(g1 @ g2 / (g1.norm() * g2.norm())), rel=1e-12)
    assert stats["conflict"] == bool(g1 @ g2 < 0)
    assert (stats["w1"], stats["w2"], stats["fallback"]) == (None, None, None)
    assert stats["norm1"] == pytest.approx(float(g1.norm()), rel=1e-12)
    assert stats["norm2"] == pytest.approx(float(g2.norm()), rel=1e-12)
    written = torch.stack([got["a"], got["b"]])
    assert stats["norm_update"] == pytest.approx(float(written.norm()), rel=1e-12)
    assert set(stats) == {"cos", "angle_deg", "conflict", "w1", "w2", "norm1", "norm2",
                          "norm_update", "fallback"}


def test_update_without_statistics_is_identical():
    with_stats = run(MetaAlign(meta_lr=META_LR), TwoParams())[1]
    without = run(MetaAlign(meta_lr=META_LR), TwoParams(), with_stats=False)
    assert without[0] == {}
    assert all(torch.equal(with_stats[k], without[1][k]) for k in "ab")


def test_only_stepped_parameters_look_ahead_and_receive_gradients():
    """MCD step B: step b only, measure a; a is neither perturbed nor written."""
    h, net = MetaAlign(meta_lr=META_LR), TwoParams()
    stats, got = run(h, net, stepped=("b",), measure=("a",))
    assert got["a"] is None
    assert float(got["b"]) == pytest.approx(hand_update("l2", stepped=("b",))["b"], rel=1e-12)
    assert stats["norm1"] == pytest.approx(abs(grad_l1(A0, B0)[0]), rel=1e-12)


def test_zero_meta_lr_is_the_plain_sum():
    _, got = run(MetaAlign(meta_lr=0.0), TwoParams())
    want = [SCALES[0] * x + SCALES[1] * y
            for x, y in zip(grad_l1(A0, B0), grad_l2(A0, B0), strict=True)]
    assert [float(got["a"]), float(got["b"])] == pytest.approx(want, rel=1e-12)


def test_loss_scale_is_exact():
    """Mixed precision: losses scaled by 2^10 give exactly 2^10 times the update."""
    plain = run(MetaAlign(meta_lr=META_LR), TwoParams())[1]
    scaled = run(MetaAlign(meta_lr=META_LR), TwoParams(), loss_scale=2.0**10)[1]
    assert all(torch.equal(scaled[k], plain[k] * 2.0**10) for k in "ab")


def test_state_round_trip_continues_the_alternation():
    h = MetaAlign(meta_lr=META_LR)
    run(h, TwoParams())
    resumed = MetaAlign(meta_lr=META_LR)
    resumed.load_state_dict(h.state_dict())
    assert resumed.meta_train_is_first("l1", "l2") == h.meta_train_is_first("l1", "l2")
    assert float(run(resumed, TwoParams())[1]["a"]) == pytest.approx(hand_update("l1")["a"])
    with pytest.raises(ValueError, match="updates"):
        resumed.load_state_dict({"updates": {"l1|l2": -1}})
    with pytest.raises(ValueError, match="updates"):
        resumed.load_state_dict({"seed": 0})


def test_registered_with_honest_cost_and_flags():
    h = H.make("metaalign")
    assert (h.flat_form, h.extra_forward, h.extra_backward) == (False, 1, 1)
    assert h.meta_lr == 100.0  # the released command line
    assert all(H.make(n).flat_form for n in H.names() if n != "metaalign")


@pytest.mark.parametrize(("options", "match"), [
    ({"mode": "weighted_loss"}, "no weighted-loss form"),
    ({"meta_lr": -1.0}, "meta_lr"),
    ({"meta_lr": float("nan")}, "meta_lr"),
    ({"start": "middle"}, "start"),
])
def test_bad_options_are_named(options, match):
    with pytest.raises(ValueError, match=match):
        H.make("metaalign", **options)


def test_missing_context_and_missing_reevaluate_are_clear_errors():
    net = TwoParams()
    losses = net.losses()
    h = MetaAlign()
    with pytest.raises(ValueError, match="needs the engine's step context"):
        h.backward(losses["l1"], losses["l2"], list(net.parameters()))
    la = StepContext("l1", "l2", ["a", "b"], [0.1, 0.1], where="method 'x', stage 'main'")
    with pytest.raises(ValueError, match=r"method 'x', stage 'main' has no Stage.reevaluate"):
        h.backward(losses["l1"], losses["l2"], list(net.parameters()), context=la)
    with pytest.raises(TypeError, match="no form on two flat gradients"):
        h.harmonize(torch.ones(2), -torch.ones(2))
    assert h.state_dict() == {"updates": {}}  # failed calls do not advance the roles
