"""source_only and dann: stages, harmonized pair and measure scope as released (REFERENCE 1.4),
gradient reversal with the released schedule."""

from __future__ import annotations

import pytest
import torch

from ghuda import methods
from ghuda.methods.base import Batch, StepInfo
from ghuda.models import build_backbone
from ghuda.models.heads import grl_coefficient


def _build(name: str, **params):
    torch.manual_seed(0)
    backbone = build_backbone("digit_cnn", widths=(4, 8), feature_dim=16)
    return methods.build(name, backbone, backbone.feature_dim, 10, **params)


def _batch() -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(x_src=torch.randn(6, 3, 32, 32, generator=g), y_src=torch.arange(6) % 10,
                 x_tgt=torch.randn(6, 3, 32, 32, generator=g))


def test_source_only_has_one_loss_and_no_pair():
    (stage,) = _build("source_only").stages(_batch(), StepInfo(0, 10))
    assert set(stage.losses) == {"cls"}
    assert stage.pairs == ()
    assert stage.step == ("backbone", "bottleneck", "classifier")


@pytest.mark.parametrize(("bottleneck", "measure"), [
    (256, ("backbone", "bottleneck", "classifier")), (0, ("backbone", "classifier"))])
def test_dann_pair_and_measure_scope(bottleneck, measure):
    method = _build("dann", bottleneck_dim=bottleneck, trade_off=0.3)
    (stage,) = method.stages(_batch(), StepInfo(5, 10))
    (pair,) = stage.pairs
    assert (pair.first, pair.second, pair.measure) == ("transfer", "cls", measure)
    assert pair.scales == (0.3, 1.0)  # trade-off applied after harmonization, as released
    assert stage.step == (*measure, "discriminator")
    assert method.lr_multipliers() == {g: (1.0 if g == "backbone" else 10.0)
                                       for g in stage.step}


@pytest.mark.parametrize(("step", "total", "max_iter", "counter"), [
    (0, 100, None, "zero"), (40, 100, None, "zero"), (40, 100, 10000.0, "zero"),
    (0, 100, None, "released"), (40, 100, 10000.0, "released")])
def test_dann_reverses_the_domain_gradient_with_the_released_schedule(step, total, max_iter,
                                                                      counter):
    # joint forward: the reference below recomputes the features of the joint batch
    method = _build("dann", bottleneck_dim=0, disc_dropout=0.0, grl_max_iter=max_iter,
                    forward="joint", grl_counter=counter)
    batch = _batch()
    (stage,) = method.stages(batch, StepInfo(step, total))
    transfer = stage.losses["transfer"]
    disc_params = list(method.discriminator.parameters())
    w = method.backbone.fc[1].weight
    g_backbone, *g_disc = torch.autograd.grad(transfer, [w, *disc_params])
    # the same loss without reversal: discriminator gradients equal, backbone's scaled by -coeff
    f = method.backbone(torch.cat((batch.x_src, batch.x_tgt)))
    logits = method.discriminator(f)
    labels = torch.cat((torch.ones(6, 1), torch.zeros(6, 1)))
    # the released domain loss: sigmoid, then BCE
    plain = torch.nn.functional.binary_cross_entropy(torch.sigmoid(logits), labels)
    p_backbone, *p_disc = torch.autograd.grad(plain, [w, *disc_params])
    # the released discriminator counts its calls from 1: the coefficient of step + 1
    coeff = grl_coefficient(step + (counter == "released"), max_iter=max_iter or total)
    assert torch.allclose(g_backbone, -coeff * p_backbone, atol=1e-7)
    assert all(torch.allclose(a, b) for a, b in zip(g_disc, p_disc, strict=True))
