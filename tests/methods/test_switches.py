"""The fidelity switches: each released form against its definition, and the alternatives."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from method_toys import build, toy_batch

from ghuda import methods
from ghuda.engine.optim import GroupOptimizers
from ghuda.methods.base import StepInfo
from ghuda.methods.grl import grl_coeff
from ghuda.methods.losses import domain_bce
from ghuda.methods.release import released_params
from ghuda.methods.script import script_crop
from ghuda.models.heads import grl_coefficient

LABELS = torch.tensor([1.0, 1.0, 0.0, 0.0])


def test_released_bce_is_sigmoid_then_bce_with_its_clamp():
    logits = torch.tensor([0.3, -2.0, 1.5, -0.7])
    expected = F.binary_cross_entropy(torch.sigmoid(logits), LABELS, reduction="none")
    assert torch.allclose(domain_bce(logits, LABELS, "bce"), expected)
    assert torch.allclose(domain_bce(logits, LABELS, "logits"), expected, atol=1e-6)
    # saturated wrong prediction: log clamped at -100, and no gradient
    big = torch.tensor([-200.0, 0.0, 0.0, 0.0], requires_grad=True)
    loss = domain_bce(big, LABELS, "bce")
    assert loss[0].item() == pytest.approx(100.0)
    loss.sum().backward()
    assert big.grad[0].item() == 0.0
    # the logits form keeps a gradient of -1 there
    big.grad = None
    domain_bce(big, LABELS, "logits").sum().backward()
    assert big.grad[0].item() == pytest.approx(-1.0)


def test_gvb_released_form_is_log_p_plus_eps():
    logits = torch.tensor([0.3, -2.0, 1.5, -0.7])
    p = torch.sigmoid(logits)
    expected = -(LABELS * torch.log(p + 1e-8) + (1 - LABELS) * torch.log(1 - p + 1e-8))
    assert torch.allclose(domain_bce(logits, LABELS, "bce_eps"), expected)
    assert domain_bce(torch.tensor([-200.0]), torch.tensor([1.0]), "bce_eps").item() == (
        pytest.approx(-torch.log(torch.tensor(1e-8)).item(), rel=1e-5))


@pytest.mark.parametrize("name", ["dann", "cdan", "gvb"])
def test_domain_loss_switch_changes_only_the_form(name):
    def transfer(**params):
        method = build(name, **params)
        method.eval()
        stage = next(iter(method.stages(toy_batch(), StepInfo(3, 10))))
        return stage.losses["transfer"]

    # not saturated: the forms agree up to GVB's 1e-8
    assert torch.allclose(transfer(), transfer(domain_loss="logits"), atol=1e-5)
    with pytest.raises(ValueError, match="domain_loss 'sigmoid' is not allowed; allowed values: "
                                         "released, logits"):
        build(name, domain_loss="sigmoid")


def test_grl_counter_released_is_one_ahead():
    info = StepInfo(0, 100)
    assert grl_coeff(info, 100.0) == 0.0
    assert grl_coeff(info, 100.0, "released") == pytest.approx(grl_coefficient(1, max_iter=100.0))


def _optimizer_settings(name, **params):
    method = build(name, **params)
    train = {"lr": 0.01, "lr_schedule": "inv", "momentum": 0.9, "nesterov": True,
             "weight_decay": 5e-4}
    opt = GroupOptimizers(method.param_groups(), method.lr_multipliers(), train,
                          method.optimizer_overrides())
    return {g: (o.momentum, o.nesterov, o.weight_decay) for g, o in opt.optimizers.items()}


def test_released_optimizers():
    mcd = _optimizer_settings("mcd")
    assert mcd["backbone"] == (0.0, False, 5e-4)
    assert mcd["heads"] == (0.9, False, 5e-4)
    assert set(_optimizer_settings("dwl").values()) == {(0.9, False, 5e-4)}
    assert set(_optimizer_settings("cdan").values()) == {(0.9, True, 1e-3)}
    assert set(_optimizer_settings("cdan", optimizer="config").values()) == {(0.9, True, 5e-4)}
    assert set(_optimizer_settings("mcd", optimizer="config").values()) == {(0.9, True, 5e-4)}


def test_released_crops():
    assert script_crop("released", "webcam", per_domain=True) == "random_resized_crop"
    assert script_crop("released", "amazon", per_domain=True) == "random_crop"
    assert script_crop("released", "webcam", per_domain=False) == "random_crop"
    assert script_crop("random_resized_crop", "amazon", per_domain=False) == (
        "random_resized_crop")
    assert methods.get("mcd").train_crop({}, "amazon") == "random_resized_crop"
    assert methods.get("gvb").train_crop({}, "dslr") == "random_crop"
    assert methods.get("cdan").train_crop({"augment": "random_crop"}, "dslr") == "random_crop"


def test_dann_forward_switch():
    # per-domain batch norm: with a BN backbone the two forwards give different features
    from torch import nn

    from ghuda.methods.networks import joint_forward, separate_forward

    backbone = nn.Sequential(nn.Linear(8, 4), nn.BatchNorm1d(4))
    batch = toy_batch()
    a = separate_forward(backbone, batch)
    b = joint_forward(backbone, batch)
    assert not torch.allclose(a[0], b[0])
    assert build("dann").forward_features is separate_forward
    assert build("dann", forward="joint").forward_features is joint_forward


@pytest.mark.parametrize("name", methods.names())
def test_every_switch_default_is_released(name):
    cls = methods.get(name)
    defaults = released_params(cls)
    for item in cls.RELEASE.items:
        if item.switch.startswith("method.params."):
            assert defaults[item.switch.removeprefix("method.params.")] == item.released_value


def test_released_bce_of_a_nan_logit_is_nan_not_an_error():
    logits = torch.tensor([float("nan"), 0.3])
    loss = domain_bce(logits, torch.tensor([1.0, 0.0]), "bce")
    assert torch.isnan(loss[0])
    assert torch.isfinite(loss[1])
