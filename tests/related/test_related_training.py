"""The new names train 20 iterations on digits-mini through the engine and `ghuda train`;
metrics.json states the harmonizer's extra passes; MetaAlign gets the right learning rates and
its roles survive a crash and resume; CGDM's pseudo-labels come from target images only and
survive a resume too; `Stage.reevaluate` is optional (a new method without it trains, and
MetaAlign names it), complete where given, and given by every method a config trains with
MetaAlign."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from conftest import META_LR, TINY
from torch import Tensor, nn

from ghuda import cli, methods, models
from ghuda.engine.optim import schedule
from ghuda.engine.trainer import Trainer
from ghuda.harmonize.metaalign import MetaAlign
from ghuda.methods import Batch, Method, Pair, Stage, StepInfo
from ghuda.methods.cgdm import CGDM
from ghuda.methods.losses import cross_entropy, entropy
from ghuda.pipeline.config import load_config

REPO = Path(__file__).resolve().parents[2]

PAIR_KEYS = {"first", "second", "cos", "angle_deg", "conflict", "w1", "w2", "norm1", "norm2",
             "norm_update", "fallback"}
METAALIGN = ["harmonizer.name=metaalign", f"harmonizer.options={{meta_lr: {META_LR}}}"]
EXTRA = {"sum": (0, 0), "gh": (0, 1), "ghpp": (0, 1), "metaalign": (1, 1)}


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


def _check_run(metrics: dict, out: Path, harmonizer: str) -> list[dict]:
    """Complete outputs, stated extra passes, finite losses and well-formed pair statistics."""
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["protocols"]["last"]["step"] == 20
    cost = metrics["cost"]
    assert (cost["extra_forward"], cost["extra_backward"]) == EXTRA[harmonizer]
    train = [r for r in _history(out) if r["kind"] == "train"]
    assert train
    for record in train:
        assert all(torch.isfinite(torch.tensor(v)) for v in record["losses"].values())
        for pair in record["pairs"]:
            assert set(pair) == PAIR_KEYS
            assert -1.0 <= pair["cos"] <= 1.0
    return train


@pytest.mark.parametrize(("method", "pair"), [
    ("dann", "transfer|cls"), ("cdan", "transfer|cls"), ("mcd", "cls|max_discrepancy")])
def test_metaalign_trains_with_the_right_learning_rates(method, pair, tiny_cfg, tmp_path,
                                                        monkeypatch):
    seen = []
    original = MetaAlign.backward

    def spy(self, *args, **kwargs):
        seen.append(kwargs["context"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MetaAlign, "backward", spy)
    trainer = Trainer(tiny_cfg(f"method.name={method}", *METAALIGN), tmp_path, bar=False)
    train = _check_run(trainer.run(), tmp_path, "metaalign")
    assert trainer.harmonizer.state_dict() == {"updates": {pair: 20}}
    assert any(r["pairs"] for r in train)
    # names are the method's parameter names; lrs the group's current rate at that iteration
    groups = trainer.method.param_groups()
    multipliers = trainer.method.lr_multipliers()
    group_of = {id(p): g for g, ps in groups.items() for p in ps}
    params = dict(trainer.method.named_parameters())
    for step in (0, 19):
        la = seen[step]
        base = 0.01 * schedule("inv", step)
        assert la.reevaluate is not None
        assert la.loss_scale == 1.0
        for name, lr in zip(la.names, la.lrs, strict=True):
            assert lr == pytest.approx(base * multipliers[group_of[id(params[name])]], rel=1e-12)
    assert len(seen) == 20


def test_metaalign_differs_from_the_plain_sum(tiny_cfg, tmp_path):
    runs = {}
    for name, extra in (("sum", ["harmonizer.name=sum"]), ("metaalign", METAALIGN)):
        out = tmp_path / name
        cfg = tiny_cfg("method.name=dann", "train.steps=5", "train.eval_every=5",
                       "train.log_every=1", *extra)
        Trainer(cfg, out, bar=False).run()
        runs[name] = [r["losses"] for r in _history(out) if r["kind"] == "train"]
    assert runs["sum"][0] == runs["metaalign"][0]  # same weights at the first logged loss...
    assert runs["sum"] != runs["metaalign"]  # ...then the look-ahead changes the updates


@pytest.mark.parametrize("harmonizer", ["sum", "gh", "ghpp", "metaalign"])
def test_cgdm_trains_with_pseudo_labels_from_target_images(harmonizer, tiny_cfg, tmp_path,
                                                           monkeypatch):
    calls = []
    original = CGDM.refresh

    def spy(self, target_images, info):
        batches = list(target_images)
        assert all(isinstance(x, torch.Tensor) and x.dim() == 4 for x in batches)  # images only
        calls.append((info.step, self.training, torch.is_grad_enabled(),
                      sum(x.shape[0] for x in batches)))
        return original(self, iter(batches), info)

    monkeypatch.setattr(CGDM, "refresh", spy)
    extra = METAALIGN if harmonizer == "metaalign" else [f"harmonizer.name={harmonizer}"]
    trainer = Trainer(tiny_cfg("method.name=cgdm", "method.params={refresh_every: 5}", *extra),
                      tmp_path, bar=False)
    train = _check_run(trainer.run(), tmp_path, harmonizer)
    n_target = len(trainer.splits.target_train)
    assert calls == [(i, False, False, n_target) for i in (0, 5, 10, 15)]
    labels = trainer.method.pseudo_labels
    assert labels is not None
    assert labels.shape == (n_target,)
    assert labels.unique().numel() > 1
    gdm = {r["step"]: r["losses"]["gdm"] for r in train if r["stage"] == "C"}
    pseudo = {r["step"]: r["losses"]["pseudo"] for r in train if r["stage"] == "A"}
    assert gdm[5] == pseudo[5] == 0.0  # no labels before the first refresh at iteration 5
    assert all(gdm[s] > 0 and pseudo[s] > 0 for s in (10, 15, 20))
    assert any(r["pairs"] for r in train if r["stage"] == "B")


def _stable(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in {"cost", "provenance"}}


class Crash(Exception):
    pass


@pytest.mark.parametrize("run", [
    # checkpoint at iteration 7: an odd number of MetaAlign updates, so a lost role counter
    # would restart with the other role
    ("method.name=dann", *METAALIGN),
    # checkpoint after the refresh at iteration 5: lost pseudo-labels would zero gdm until 10
    ("method.name=cgdm", "method.params={refresh_every: 5}", "harmonizer.name=gh")])
def test_crash_and_resume_gives_identical_outputs(run, tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg(*run, "train.checkpoint_every=7")
    Trainer(cfg, tmp_path / "reference", bar=False).run()
    original, calls = Trainer._iteration, {"n": 0}

    def crashing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 10:
            raise Crash
        return original(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "_iteration", crashing)
        with pytest.raises(Crash):
            Trainer(cfg, tmp_path / "resumed", bar=False).run()
    assert (tmp_path / "resumed" / "checkpoint.pt").exists()
    metrics = Trainer(cfg, tmp_path / "resumed", bar=False).run()
    assert metrics["cost"]["resumed"]
    assert _stable(tmp_path / "resumed") == _stable(tmp_path / "reference")
    assert ((tmp_path / "resumed" / "history.jsonl").read_bytes()
            == (tmp_path / "reference" / "history.jsonl").read_bytes())


def test_ghuda_train_runs_cgdm_with_metaalign(digits_mini_root, tmp_path, capsys):
    sets = [f"dataset.root={digits_mini_root}", *TINY, "train.steps=6", "train.eval_every=6",
            "method.name=cgdm", "method.params={refresh_every: 3}", *METAALIGN]
    argv = ["train", *[a for s in sets for a in ("--set", s)], "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["run"]["method"] == "cgdm"
    assert metrics["run"]["harmonizer"] == "metaalign"
    assert (metrics["cost"]["extra_forward"], metrics["cost"]["extra_backward"]) == (1, 1)


def _configured_with(harmonizer: str) -> set[str]:
    """Methods that a pipeline config (configs/*.yaml with a grid) trains with `harmonizer`."""
    out: set[str] = set()
    for path in sorted((REPO / "configs").glob("*.yaml")):
        if "grid" not in yaml.safe_load(path.read_text()):
            continue
        config = load_config(path)
        for block in config["grid"]:
            if any(config["variants"][v]["harmonizer"] == harmonizer for v in block["variants"]):
                out |= set(block["methods"])
    return out


def _harmonized_stages(name: str) -> list[Stage]:
    vit = methods.get(name).requires_backbone == "vit"
    backbone = models.build_backbone("tiny_vit" if vit else "digit_cnn")
    method = methods.build(name, backbone, backbone.feature_dim, 10)
    method.train()
    gen = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(4, 3, 32, 32, generator=gen), torch.arange(4),
                  torch.randn(4, 3, 32, 32, generator=gen), torch.arange(4))
    return [s for s in method.stages(batch, StepInfo(1, 10)) if s.pairs]


def check_reevaluate(name: str, required: set[str]) -> None:
    """`Stage.reevaluate` is optional (MetaAlign then refuses the method, naming the stage);
    where given it recomputes every harmonized loss, and a method the configs train with
    MetaAlign gives it on every harmonized stage."""
    for stage in _harmonized_stages(name):
        if stage.reevaluate is None:
            assert name not in required, f"{name}: stage {stage.name!r} lacks reevaluate"
            continue
        losses = stage.reevaluate({})
        for pair in stage.pairs:
            for loss in (pair.first, pair.second):
                assert torch.isfinite(losses[loss]), (name, stage.name, loss)


@pytest.mark.parametrize("name", methods.names())
def test_reevaluate_is_optional_and_complete_where_given(name):
    check_reevaluate(name, _configured_with("metaalign"))


def test_the_configs_train_some_method_with_metaalign():
    assert _configured_with("metaalign")


class NoLookahead(Method):
    """A new method with a harmonized pair and no `Stage.reevaluate` (like docs/extending.md's
    example): target entropy against source cross-entropy."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__(backbone, feature_dim, num_classes)
        self.head = nn.Linear(feature_dim, num_classes)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.backbone.parameters()),
                "classifier": list(self.head.parameters())}

    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        probs = self.predict(batch.x_tgt).float().softmax(dim=1)
        losses = {"transfer": entropy(probs).mean(),
                  "cls": cross_entropy(self.predict(batch.x_src), batch.y_src)}
        yield Stage("main", losses, step=tuple(self.param_groups()),
                    pairs=(Pair("transfer", "cls", ("backbone",)),))

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))


def test_a_new_method_without_reevaluate_passes_and_metaalign_names_it(tiny_cfg, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(methods.REGISTRY, "_classes", dict(methods.REGISTRY._classes))
    methods.register("no_lookahead")(NoLookahead)
    check_reevaluate("no_lookahead", _configured_with("metaalign"))
    trainer = Trainer(tiny_cfg("method.name=no_lookahead", "harmonizer.name=gh"), tmp_path,
                      bar=False)
    assert any(r["pairs"] for r in _check_run(trainer.run(), tmp_path, "gh"))
    with pytest.raises(ValueError, match=r"has no Stage\.reevaluate"):
        Trainer(tiny_cfg("method.name=no_lookahead", *METAALIGN), tmp_path / "metaalign",
                bar=False).run()
