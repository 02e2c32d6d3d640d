"""The stage loop: what the harmonizer receives (pair order, params, measure scope, scales,
statistics only on logging steps) and exact float16-style loss scaling."""

from __future__ import annotations

import pytest
import torch

from ghuda.engine.amp import LossScaler
from ghuda.engine.trainer import Trainer

DANN = ["method.name=dann", "method.params.disc_hidden=32", "method.params.bottleneck_dim=16"]


def _spy(trainer: Trainer) -> list[dict]:
    calls: list[dict] = []
    original = trainer.harmonizer.backward

    def backward(loss1, loss2, params, measure=None, **kwargs):
        calls.append({"loss1": float(loss1.detach()), "loss2": float(loss2.detach()),
                      "params": {id(p) for p in params},
                      "measure": {id(p) for p in measure}, **kwargs})
        return original(loss1, loss2, params, measure, **kwargs)

    trainer.harmonizer.backward = backward
    return calls


def _ids(trainer: Trainer, *groups: str) -> set[int]:
    return {id(p) for p in trainer.optim.parameters(groups)}


@pytest.mark.parametrize(("order", "measure"), [("released", "released"),
                                                ("swapped", "stepped")])
def test_harmonizer_gets_pair_params_and_measure_scope(make_cfg, tmp_path, order, measure):
    cfg = make_cfg(*DANN, "method.params.trade_off=0.5", "harmonizer.name=gh",
                   f"harmonizer.order={order}",
                   f"harmonizer.measure={measure}", "train.steps=10", "train.log_every=5",
                   "train.eval_every=10")
    trainer = Trainer(cfg, tmp_path, bar=False)
    trainer.setup()
    calls = _spy(trainer)
    trainer.run()
    assert len(calls) == 10
    everything = _ids(trainer, "backbone", "bottleneck", "classifier", "discriminator")
    assert all(c["params"] == everything for c in calls)
    released_scope = _ids(trainer, "backbone", "bottleneck", "classifier")
    expected = released_scope if measure == "released" else everything
    assert all(c["measure"] == expected for c in calls)
    assert [c["with_stats"] for c in calls] == [False] * 4 + [True] + [False] * 4 + [True]
    assert all(c["retain_graph"] is False for c in calls)
    scales = (1.0, 0.5) if order == "swapped" else (0.5, 1.0)  # the trade-off follows L_transfer
    assert all(tuple(c["scales"]) == scales for c in calls)
    # cross-entropy of 10 classes starts near log(10); the domain BCE near log(2)
    first = calls[0]
    cls, transfer = (first["loss1"], first["loss2"]) if order == "swapped" else (
        first["loss2"], first["loss1"])
    assert cls > 1.5 > transfer


@pytest.mark.parametrize("harmonizer", ["gh", "ghpp", "agr_sum"])
def test_loss_scaling_is_exact(make_cfg, tmp_path, harmonizer):
    """Scaling every loss by 2^k and unscaling the gradients changes nothing, bit for bit."""
    params = {}
    stats = {}
    for scaled in (False, True):
        cfg = make_cfg(*DANN, f"harmonizer.name={harmonizer}", "train.steps=12",
                       "train.log_every=4", "train.eval_every=12")
        trainer = Trainer(cfg, tmp_path / str(scaled), bar=False)
        trainer.setup()
        if scaled:
            trainer.scaler = LossScaler(True, init_scale=2.0**10)
        trainer.run()
        params[scaled] = [p.detach().clone() for p in trainer.method.parameters()]
        history = (tmp_path / str(scaled) / "history.jsonl").read_text()
        stats[scaled] = history
    assert all(torch.equal(a, b) for a, b in zip(params[False], params[True], strict=True))
    assert stats[False] == stats[True]  # losses, cos, w1, w2 AND unscaled norms identical


def test_loss_scaler_skips_overflowing_steps_and_halves():
    scaler = LossScaler(True, init_scale=2.0**4, growth_interval=2)
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.tensor([16.0, float("inf")])
    assert not scaler.unscale_and_check([p])
    assert scaler.scale == 8.0
    p.grad = torch.tensor([8.0, 8.0])
    assert scaler.unscale_and_check([p])
    assert torch.equal(p.grad, torch.ones(2))
    p.grad = torch.tensor([8.0, 8.0])
    assert scaler.unscale_and_check([p])
    assert scaler.scale == 16.0
    assert scaler.unscale_stats({"norm1": 32.0, "cos": 0.5}) == {"norm1": 2.0, "cos": 0.5}
    with pytest.raises(ValueError, match="power of two"):
        LossScaler(True, init_scale=3.0)
