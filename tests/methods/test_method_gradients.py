"""Which parameter groups each loss reaches, and which groups each stage moves."""

from __future__ import annotations

import pytest
import torch
from method_toys import build, grads, optimizers, run_stage, toy_batch

from ghuda import harmonize
from ghuda.methods.base import Method, Stage, StepInfo


def first_stage(method: Method, name: str, step: int = 5) -> Stage:
    method.train()
    stages = method.stages(toy_batch(), StepInfo(step, 10))
    return next(s for s in stages if s.name == name)


def reached(method: Method, loss: torch.Tensor) -> set[str]:
    return {g for g, sq in grads(method, loss).items() if sq > 0}


def test_cdan_gradient_flow():
    method = build("cdan")
    stage = first_stage(method, "main")
    assert reached(method, stage.losses["cls"]) == {"backbone", "bottleneck", "classifier"}
    # transfer reaches the classifier only through the (reversed) entropy weights
    assert reached(method, stage.losses["transfer"]) == {
        "backbone", "bottleneck", "classifier", "discriminator"}


def test_cdan_transfer_reaches_the_features_only_through_the_reversal_layer():
    # counter "zero": reversal coefficient 0 at step 0 (released: the coefficient of step 1)
    method = build("cdan", grl_counter="zero")
    stage = first_stage(method, "main", step=0)
    assert reached(method, stage.losses["transfer"]) == {"discriminator"}
    released = build("cdan")
    stage = first_stage(released, "main", step=0)
    assert "backbone" in reached(released, stage.losses["transfer"])


def test_gvb_gradient_flow():
    method = build("gvb")
    stage = first_stage(method, "main")
    losses = stage.losses
    assert reached(method, losses["cls"]) == {"backbone", "classifier", "bridge"}
    assert reached(method, losses["transfer"]) == {
        "backbone", "classifier", "bridge", "discriminator"}
    assert reached(method, losses["gvbg"]) == {"backbone", "bridge"}
    assert reached(method, losses["gvbd"]) == {
        "backbone", "classifier", "bridge", "discriminator"}
    # the discriminator bridge reaches the generator only through the reversal layer
    zero = build("gvb", grl_counter="zero")
    assert reached(zero, first_stage(zero, "main", step=0).losses["gvbd"]) == {"discriminator"}


def test_mcd_gradient_flow():
    method = build("mcd")
    stage_b = first_stage(method, "B")
    # step B's pair is measured on G although only the heads are stepped
    assert reached(method, stage_b.losses["max_discrepancy"]) == {"backbone", "heads"}
    assert reached(method, stage_b.losses["cls"]) == {"backbone", "heads"}


def test_dwl_gradient_flow():
    method = build("dwl")
    assert reached(method, first_stage(method, "discriminator").losses["domain"]) == {
        "discriminator"}
    balance = first_stage(method, "balance").losses
    assert reached(method, balance["adversarial"]) >= {"backbone"}
    assert reached(method, balance["discrepancy"]) == {"backbone", "classifier", "heads"}
    assert reached(method, first_stage(method, "pseudo").losses["pseudo"]) == {
        "backbone", "classifier"}


def test_ssrt_gradient_flow():
    method = build("ssrt")
    stage = first_stage(method, "main")
    assert reached(method, stage.losses["cls"]) == {"backbone", "bottleneck", "classifier"}
    # near-uniform predictions at initialisation are below the confidence threshold 0.4, so
    # only the domain loss contributes to transfer: it does not reach the classifier
    assert reached(method, stage.losses["transfer"]) == {
        "backbone", "bottleneck", "discriminator"}
    method = build("ssrt", sr_epsilon=0.0)  # every target sample teaches
    stage = first_stage(method, "main")
    assert reached(method, stage.losses["transfer"]) == {
        "backbone", "bottleneck", "classifier", "discriminator"}


def snapshot(method: Method) -> dict[str, list[torch.Tensor]]:
    return {g: [p.detach().clone() for p in ps] for g, ps in method.param_groups().items()}


def moved(before: dict[str, list[torch.Tensor]], method: Method) -> set[str]:
    return {g for g, ps in method.param_groups().items()
            if any(not torch.equal(a, p) for a, p in zip(before[g], ps, strict=True))}


@pytest.mark.parametrize(("name", "expected"), [
    ("cdan", [{"backbone", "bottleneck", "classifier", "discriminator"}]),
    ("gvb", [{"backbone", "classifier", "bridge", "discriminator"}]),
    ("mcd", [{"backbone", "heads"}, {"heads"}, {"backbone"}, {"backbone"}]),
    ("dwl", [{"backbone", "classifier"}, {"backbone", "classifier"}, {"discriminator"},
             {"classifier", "heads"}, {"backbone"}, {"backbone"}, {"backbone", "classifier"}]),
    ("ssrt", [{"backbone", "bottleneck", "classifier", "discriminator"}]),
])
@pytest.mark.parametrize("harmonizer", ["sum", "gh"])
def test_each_stage_moves_exactly_its_groups(name, expected, harmonizer):
    method = build(name)
    method.train()
    hz, opts = harmonize.make(harmonizer), optimizers(method)
    got = []
    for stage in method.stages(toy_batch(), StepInfo(5, 10)):
        before = snapshot(method)
        run_stage(method, stage, hz, opts)
        got.append(moved(before, method))
    assert got == expected
