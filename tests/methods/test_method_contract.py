"""The method contract: registry, groups, stages, harmonized pairs (REFERENCE 1.4), options."""

from __future__ import annotations

import pytest
import torch
from method_toys import MINE, build, toy_batch

from ghuda import methods
from ghuda.methods.base import Stage, StepInfo
from ghuda.methods.release import released_params

# Stage sequence per iteration: (name, stepped groups, loss names, pairs as
# (L1, L2, measure)), for the SMALL settings (MCD num_k 2; DWL num_k1 2, num_k3 2).
CDAN_MEASURE = ("backbone", "bottleneck", "classifier")
GVB_MEASURE = ("backbone", "classifier", "bridge")
MCD_C = ("C", ("backbone",), {"discrepancy"}, [])
DWL_SOURCE = ("source", ("backbone", "classifier"), {"cls"}, [])
DWL_BALANCE = ("balance", ("backbone",), {"adversarial", "discrepancy"},
               [("adversarial", "discrepancy", ("backbone",))])
EXPECTED = {
    "cdan": [("main", (*CDAN_MEASURE, "discriminator"), {"transfer", "cls"},
              [("transfer", "cls", CDAN_MEASURE)])],
    "gvb": [("main", (*GVB_MEASURE, "discriminator"), {"transfer", "cls", "gvbg", "gvbd"},
             [("transfer", "cls", GVB_MEASURE), ("gvbg", "gvbd", GVB_MEASURE)])],
    "mcd": [("A", ("backbone", "heads"), {"cls"}, []),
            ("B", ("heads",), {"cls", "max_discrepancy"},
             [("cls", "max_discrepancy", ("backbone",))]),
            MCD_C, MCD_C],
    "dwl": [DWL_SOURCE, DWL_SOURCE,
            ("discriminator", ("discriminator",), {"domain"}, []),
            ("classifiers", ("classifier", "heads"), {"cls", "max_discrepancy"}, []),
            DWL_BALANCE, DWL_BALANCE,
            ("pseudo", ("backbone", "classifier"), {"pseudo"}, [])],
    "ssrt": [("main", ("backbone", "bottleneck", "classifier", "discriminator"),
              {"cls", "transfer"}, [("cls", "transfer", ("backbone",))])],
}
LR_MULTIPLIERS = {
    "cdan": {"backbone": 1.0, "bottleneck": 10.0, "classifier": 10.0, "discriminator": 10.0},
    "gvb": {"backbone": 1.0, "classifier": 10.0, "bridge": 10.0, "discriminator": 10.0},
    "mcd": {"backbone": 1.0, "heads": 1.0},
    "dwl": {"backbone": 1.0, "classifier": 1.0, "heads": 1.0, "discriminator": 1.0},
    "ssrt": {"backbone": 0.1, "bottleneck": 1.0, "classifier": 1.0, "discriminator": 1.0},
}


def stages_of(name: str, step: int = 3, total: int = 10, **hparams) -> list[Stage]:
    method = build(name, **hparams)
    method.train()
    return list(method.stages(toy_batch(), StepInfo(step, total)))


def test_registry_finds_every_method_module_without_a_list():
    names = set(methods.names())
    assert names >= {"source_only", "dann", *MINE, "cgdm"}
    for name in names:
        assert methods.get(name).name == name
        assert methods.get(name).label


@pytest.mark.parametrize("name", methods.names())
def test_every_registered_method_honours_the_contract(name):
    method = build(name)
    groups = method.param_groups()
    seen: dict[int, str] = {}
    for g, ps in groups.items():
        for p in ps:
            assert id(p) not in seen, f"{name}: groups {seen[id(p)]} and {g} share a parameter"
            seen[id(p)] = g
    missing = [n for n, p in method.named_parameters() if p.requires_grad and id(p) not in seen]
    assert not missing, f"{name}: parameters outside every group: {missing}"
    assert set(method.lr_multipliers()) == set(groups)
    method.train()
    stages = list(method.stages(toy_batch(), StepInfo(2, 10)))
    assert stages
    for stage in stages:
        assert set(stage.step) <= set(groups)
        for loss in stage.losses.values():
            assert loss.dim() == 0
            assert torch.isfinite(loss)
        for pair in stage.pairs:
            assert {pair.first, pair.second} <= set(stage.losses)
            assert set(pair.measure) <= set(groups)
    method.eval()
    logits = method.predict(toy_batch().x_tgt)
    assert logits.shape == (toy_batch().x_tgt.shape[0], method.num_classes)


@pytest.mark.parametrize("name", MINE)
def test_stages_losses_pairs_and_scopes_match_the_released_wiring(name):
    got = [(s.name, s.step, set(s.losses), [(p.first, p.second, p.measure) for p in s.pairs])
           for s in stages_of(name)]
    assert got == EXPECTED[name]


@pytest.mark.parametrize("name", MINE)
def test_lr_multipliers_are_the_released_ones(name):
    assert build(name).lr_multipliers() == LR_MULTIPLIERS[name]


def test_pair_scales_carry_trade_offs_applied_after_harmonization():
    (cdan,) = stages_of("cdan", trade_off=0.7)
    assert cdan.pairs[0].scales == (0.7, 1.0)
    (gvb,) = stages_of("gvb", trade_off=0.5, gvbg_weight=0.3, gvbd_weight=2.0)
    assert [p.scales for p in gvb.pairs] == [(0.5, 1.0), (0.3, 2.0)]
    mcd_b = stages_of("mcd")[1]
    assert mcd_b.pairs[0].scales == (1.0, 1.0)  # released: measured with the trade-off inside
    ssrt = stages_of("ssrt")[0]
    assert ssrt.pairs[0].scales == (1.0, 1.0)


def test_dwl_balance_pair_is_weighted_by_t_and_one_minus_t():
    method = build("dwl")
    method.dynamic_weight.state[0] = 0.3  # A_norm
    method.dynamic_weight.state[1] = 0.6  # J_norm -> T = 0.3 / (0.3 + 0.4)
    method.train()
    balance = [s for s in method.stages(toy_batch(), StepInfo(0, 10)) if s.name == "balance"]
    t = 0.3 / 0.7
    for stage in balance:
        assert stage.pairs[0].scales == pytest.approx((t, 1.0 - t))


def test_mcd_num_k_sets_the_generator_steps():
    assert [s.name for s in stages_of("mcd", num_k=4)] == ["A", "B", "C", "C", "C", "C"]


def test_dwl_inner_steps():
    names = [s.name for s in stages_of("dwl", num_k1=3, num_k3=1)]
    assert names == ["source"] * 3 + ["discriminator", "classifiers", "balance", "pseudo"]


@pytest.mark.parametrize("name", MINE)
def test_released_hyper_parameters_build(name):
    released = released_params(methods.get(name))
    method = build(name, **{**released, **SMALL_SHAPES.get(name, {})})
    method.train()
    assert list(method.stages(toy_batch(), StepInfo(0, 10)))


# The released widths are kept; only what must fit the 4-block toy ViT is adapted.
SMALL_SHAPES = {"ssrt": {"sr_layers": [0, 2, 3]}}


@pytest.mark.parametrize(("name", "bad", "key"), [
    ("cdan", {"trade_off": -1.0}, "trade_off"),
    ("cdan", {"random_dim": 0}, "random_dim"),
    ("gvb", {"gvbd_weight": -1.0}, "gvbd_weight"),
    ("mcd", {"num_k": 0}, "num_k"),
    ("mcd", {"entropy_weight": -0.1}, "entropy_weight"),
    ("dwl", {"window": 0}, "window"),
    ("ssrt", {"sr_alpha": 1.5}, "sr_alpha"),
    ("ssrt", {"sr_layers": [0, 9]}, "sr_layers"),
    ("ssrt", {"safe_period": 8}, "safe_period"),
])
def test_bad_hyper_parameters_are_named(name, bad, key):
    with pytest.raises(ValueError, match=key):
        build(name, **bad)


def test_unknown_hyper_parameter_is_an_error():
    with pytest.raises(ValueError, match="bad hyper-parameters"):
        build("cdan", not_a_parameter=1)


def test_ssrt_refuses_a_backbone_without_transformer_blocks():
    from method_toys import FEATURE_DIM, NUM_CLASSES, mlp_backbone

    with pytest.raises(ValueError, match="ViT backbone"):
        methods.build("ssrt", mlp_backbone(), FEATURE_DIM, NUM_CLASSES)
    assert methods.get("ssrt").requires_backbone == "vit"


@pytest.mark.parametrize(("name", "stage_name"), [
    ("cdan", "main"), ("gvb", "main"), ("mcd", "B"), ("dwl", "balance"), ("ssrt", "main")])
def test_reevaluate_recomputes_the_stage_losses(name, stage_name):
    method = build(name)
    method.eval()  # no dropout, batch-norm running statistics: a deterministic forward
    stage = next(s for s in method.stages(toy_batch(), StepInfo(4, 10)) if s.name == stage_name)
    assert stage.reevaluate is not None
    params = dict(method.named_parameters())
    again = stage.reevaluate(params)
    for key, value in stage.losses.items():
        assert torch.allclose(again[key], value), key
    moved = {k: v + 0.1 for k, v in params.items()}
    changed = stage.reevaluate(moved)
    assert any(not torch.allclose(changed[k], v) for k, v in stage.losses.items())
    assert all(torch.equal(p, params[k]) for k, p in method.named_parameters())
