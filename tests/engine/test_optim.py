"""Optimizers per parameter group: the SGD update, learning-rate multipliers and schedule,
stepping a subset of groups."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ghuda.engine.optim import GroupOptimizers, schedule, step_decay
from ghuda.engine.sgd import SGD

TRAIN = {"lr": 0.01, "lr_schedule": "inv", "momentum": 0.9, "nesterov": True,
         "weight_decay": 5e-4}


@settings(max_examples=25, deadline=None)
@given(momentum=st.sampled_from([0.0, 0.5, 0.9]), nesterov=st.booleans(),
       wd=st.sampled_from([0.0, 5e-4, 1e-2]), seed=st.integers(0, 2**16))
def test_sgd_matches_torch_bit_for_bit(momentum, nesterov, wd, seed):
    if nesterov and momentum == 0:
        nesterov = False
    g = torch.Generator().manual_seed(seed)
    ours = [torch.randn(5, 3, generator=g), torch.randn(4, generator=g)]
    theirs = [p.clone().requires_grad_() for p in ours]
    ours = [p.clone().requires_grad_() for p in ours]
    a = SGD(ours, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    b = torch.optim.SGD(theirs, lr=0.1, momentum=momentum, nesterov=nesterov,
                        weight_decay=wd, foreach=False)
    for step in range(4):
        grads = [torch.randn(p.shape, generator=g) for p in ours]
        for p, q, gr in zip(ours, theirs, grads, strict=True):
            # the second tensor gets no gradient on step 1: skipped, momentum not advanced
            p.grad = None if (step == 1 and p.dim() == 1) else gr.clone()
            q.grad = None if (step == 1 and q.dim() == 1) else gr.clone()
        a.step()
        b.step()
        for p, q in zip(ours, theirs, strict=True):
            assert torch.equal(p, q)


def test_sgd_state_roundtrip():
    p = nn.Parameter(torch.ones(3))
    opt = SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    p.grad = torch.ones(3)
    opt.step()
    clone = SGD([p], lr=0.5, momentum=0.9, nesterov=True)
    clone.load_state_dict(opt.state_dict())
    assert torch.equal(clone.buffers[0], opt.buffers[0])
    assert clone.param_groups[0]["lr"] == 0.1


def test_inv_schedule_matches_released_formula():
    for i in (0, 1, 10, 1000, 8003):
        assert schedule("inv", i) == pytest.approx((1 + 0.001 * i) ** -0.75, rel=1e-15)
        assert schedule("constant", i) == 1.0
    with pytest.raises(ValueError, match="lr_schedule"):
        schedule("cosine", 0)


def _groups():
    torch.manual_seed(0)
    mods = {"backbone": nn.Linear(3, 3), "classifier": nn.Linear(3, 2),
            "discriminator": nn.Linear(3, 1)}
    return mods, {g: list(m.parameters()) for g, m in mods.items()}


def test_learning_rates_follow_multipliers_and_schedule():
    _, groups = _groups()
    opt = GroupOptimizers(groups, {"backbone": 1.0, "classifier": 10.0,
                                   "discriminator": 10.0}, TRAIN)
    base = opt.set_step(500)
    assert base == pytest.approx(0.01 * 1.5 ** -0.75)
    assert opt.optimizers["backbone"].param_groups[0]["lr"] == pytest.approx(base)
    assert opt.optimizers["classifier"].param_groups[0]["lr"] == pytest.approx(10 * base)


def test_the_step_decay_of_train_keys_is_the_extension_loops_product_to_the_bit():
    _, groups = _groups()
    mults = {"backbone": 1.0, "classifier": 0.1, "discriminator": 3.0}
    plain = GroupOptimizers(groups, mults, {**TRAIN, "lr": 0.002, "lr_schedule": "constant"})
    opt = GroupOptimizers(groups, mults, {**TRAIN, "lr": 0.002, "lr_schedule": "constant",
                                          "lr_decay": 0.1, "lr_decay_every": 3,
                                          "lr_milestones": []})
    for step in (0, 3, 7):
        factor = step_decay(0.1, 3, [], step)
        base = opt.set_step(step)
        for g, o in opt.optimizers.items():  # was: set_step(step), then lr *= factor
            assert o.param_groups[0]["lr"] == (base * mults[g]) * factor
        assert plain.set_step(step) == base
        for g, o in plain.optimizers.items():  # no decay keys (the UDA engine): no bit changes
            assert o.param_groups[0]["lr"] == base * mults[g]
    milestones = GroupOptimizers(groups, mults, {**TRAIN, "lr_schedule": "constant",
                                                 "lr_decay": 0.5, "lr_milestones": [2, 4]})
    milestones.set_step(4)
    assert milestones.optimizers["discriminator"].param_groups[0]["lr"] == pytest.approx(
        TRAIN["lr"] * 3.0 * 0.25)


def test_stepping_a_subset_leaves_other_groups_untouched():
    mods, groups = _groups()
    opt = GroupOptimizers(groups, dict.fromkeys(groups, 1.0), TRAIN)
    before = {g: [p.detach().clone() for p in ps] for g, ps in groups.items()}
    x = torch.randn(4, 3)
    loss = mods["classifier"](mods["backbone"](x)).sum() + mods["discriminator"](x).sum()
    loss.backward()
    opt.step(["classifier"])
    for g, ps in groups.items():
        changed = any(not torch.equal(p, q) for p, q in zip(ps, before[g], strict=True))
        assert changed == (g == "classifier"), g


def test_groups_must_be_disjoint_and_known():
    _, groups = _groups()
    groups["copy"] = groups["backbone"]
    with pytest.raises(ValueError, match="share a parameter"):
        GroupOptimizers(groups, dict.fromkeys(groups, 1.0), TRAIN)
    _, groups = _groups()
    opt = GroupOptimizers(groups, dict.fromkeys(groups, 1.0), TRAIN)
    with pytest.raises(ValueError, match="unknown parameter group 'heads'"):
        opt.parameters(["heads"])
    with pytest.raises(ValueError, match="lr_multipliers"):
        GroupOptimizers(groups, {"backbone": 1.0}, TRAIN)


def test_engine_uses_method_multipliers_with_config_overrides(make_cfg):
    from ghuda.engine.trainer import Trainer

    cfg = make_cfg("method.name=dann", "train.lr_multipliers={discriminator: 2.5}")
    trainer = Trainer(cfg, "unused", bar=False)
    trainer.setup()
    mult = trainer.optim.multipliers
    assert mult["backbone"] == 1.0
    assert mult["classifier"] == 10.0
    assert mult["discriminator"] == 2.5
    assert set(mult) == set(trainer.method.param_groups())
