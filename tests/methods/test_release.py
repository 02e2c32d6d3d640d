"""The paper and digits-mini configs agree with each method's `Release` record."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghuda import methods
from ghuda.methods.release import SCRIPT_DATASETS, released_params
from ghuda.pipeline.config import load_config
from ghuda.pipeline.grid import expand_runs

REPO = Path(__file__).resolve().parents[2]


def _runs(config_name: str) -> list:
    config = load_config(REPO / "configs" / config_name)
    return expand_runs(config)


def _differences(run_config: dict, expected: dict) -> list[str]:
    cls = methods.get(run_config["method"]["name"])
    params = {**released_params(cls), **run_config["method"].get("params", {})}
    out = [f"method.params.{k}: config {params.get(k)!r}, released {v!r}"
           for k, v in expected["params"].items() if params.get(k) != v]
    out += [f"train.{k}: config {run_config['train'].get(k)!r}, released {v!r}"
            for k, v in expected["train"].items() if run_config["train"].get(k) != v]
    return out


def test_paper_config_uses_the_released_values():
    problems = []
    for run in _runs("paper.yaml"):
        cls = methods.get(run.method)
        if not cls.RELEASE.covers(run.dataset):
            continue
        for diff in _differences(run.run_config, cls.RELEASE.expected(run.dataset, run.task)):
            problems.append(f"{run.dataset} {run.task} {run.method}: {diff}")
    assert not sorted(set(problems))


def test_release_coverage_is_stated_once_per_script():
    for name in methods.names():
        script = methods.get(name).RELEASE.script
        assert script is None or script in SCRIPT_DATASETS, name
    dann = methods.get("dann").RELEASE  # trained by the released CDAN script
    assert dann.covers("office31")
    assert not dann.covers("digits")
    assert not methods.get("source_only").RELEASE.covers("office31")  # no released script


def test_paper_config_keeps_every_switch_released():
    for run in _runs("paper.yaml"):
        cls = methods.get(run.method)
        params = {**released_params(cls), **run.run_config["method"].get("params", {})}
        for item in cls.RELEASE.items:
            if item.switch.startswith("method.params."):
                key = item.switch.removeprefix("method.params.")
                assert params[key] == item.released_value, (run.key, key)
        assert run.run_config["train"].get("amp") is False, run.key  # released fp32


@pytest.mark.parametrize("config_name", ["default.yaml", "digits_full.yaml"])
def test_digits_configs_use_each_methods_digits_mini_values(config_name):
    for run in _runs(config_name):
        cls = methods.get(run.method)
        params = {**released_params(cls), **run.run_config["method"].get("params", {})}
        for key, cheaper in cls.RELEASE.digits_mini.items():
            assert params[key] == cheaper.value, (run.key, key)
        # every other parameter is released, except the named switch ablations
        ablated = set(run.run_config["method"].get("params", {})) - set(cls.RELEASE.digits_mini)
        assert ablated <= {"domain_loss"}, (run.key, ablated)


def test_a_wrong_released_value_is_caught():
    run = next(r for r in _runs("paper.yaml") if r.method == "cdan"
               and r.dataset == "office31" and r.task == "amazon->dslr")
    expected = methods.get("cdan").RELEASE.expected("office31", "amazon->dslr")
    assert expected["train"]["lr"] == 3e-4
    run.run_config["train"]["lr"] = 1e-3
    assert _differences(run.run_config, expected) == ["train.lr: config 0.001, released 0.0003"]


# ---------------------------------------------------------------- issue 24: second audit
def test_paper_digits_use_the_released_networks():
    backbones = {(r.task, r.method): r.run_config["model"]["backbone"]
                 for r in _runs("paper.yaml") if r.dataset == "digits"}
    assert backbones
    for (task, method), backbone in backbones.items():
        assert backbone == ("dtn" if task == "svhn->mnist" else "lenet"), (task, method)


def test_released_digit_networks_shapes():
    import torch

    from ghuda import models

    x = torch.rand(4, 3, 32, 32) * 2 - 1  # ghuda's digits tensors: 32x32 RGB in [-1, 1]
    lenet, dtn = models.build_backbone("lenet").eval(), models.build_backbone("dtn").eval()
    assert lenet.prepare(x).shape == (4, 1, 28, 28)
    assert lenet(x).shape == (4, 500)
    assert dtn(x).shape == (4, 512)
    grey = x[:, :1].expand(-1, 3, -1, -1)  # replicated grey: the channel mean is exact
    assert torch.allclose(lenet.prepare(grey).mean(), grey.mean(), atol=0.05)


def _records(heads: dict[int, dict[str, float]], main: dict[int, float]) -> list[dict]:
    out = []
    for step, accs in heads.items():
        r = {"step": step, "target_acc": main[step], "target_mean_class_acc": main[step],
             "source_val_acc": 50.0, "source_val_mean_class_acc": 50.0}
        for h, a in accs.items():
            r[f"target_acc@{h}"] = a
            r[f"target_mean_class_acc@{h}"] = a
        out.append(r)
    return out


def test_released_oracle_takes_the_best_head():
    from ghuda.engine.evaluate import protocols

    evals = _records({100: {"F1": 60.0, "F2": 72.0}, 200: {"F1": 70.0, "F2": 65.0}},
                     {100: 66.0, 200: 71.0})
    block = protocols(evals)
    assert block["oracle"]["acc"] == 72.0
    assert block["oracle"]["head"] == "F2"
    assert block["oracle"]["step"] == 100
    assert block["last"]["acc"] == 71.0  # last / source_val keep the method's prediction
    # without per-head records (oracle: ensemble / main, or other methods): unchanged
    plain = [{k: v for k, v in r.items() if "@" not in k} for r in evals]
    assert protocols(plain)["oracle"] == {"acc": 71.0, "mean_class_acc": 71.0, "step": 200,
                                          "selection": protocols(plain)["oracle"]["selection"]}


@pytest.mark.parametrize(("name", "alternative", "heads"), [
    ("mcd", "ensemble", ["F1", "F2"]),
    ("dwl", "main", ["C", "C1", "C2", "C1+C2", "C+C1+C2"])])
def test_oracle_switch(name, alternative, heads):
    import torch

    from ghuda import models

    def build(**params):
        backbone = models.build_backbone("digit_cnn", feature_dim=16)
        return methods.build(name, backbone, 16, 10, head_hidden=8, **params) if name == "mcd" \
            else methods.build(name, backbone, 16, 10, hidden=8, **params)

    x = torch.rand(6, 3, 32, 32)
    released = build().eval()
    assert released_params(methods.get(name))["oracle"] == "released"
    with torch.no_grad():
        out = released.oracle_heads(x)
    assert list(out) == heads
    assert all(v.shape == (6, 10) for v in out.values())
    assert build(oracle=alternative).eval().oracle_heads(x) is None
    with pytest.raises(ValueError, match="oracle"):
        build(oracle="best")


def test_evaluation_records_per_head_accuracy_in_the_same_pass():
    import types

    import torch

    from ghuda import models
    from ghuda.engine.evaluate import evaluate_splits

    ds = torch.utils.data.TensorDataset(torch.rand(10, 3, 32, 32), torch.arange(10) % 3)
    splits = types.SimpleNamespace(target_eval=ds, source_val=ds, num_classes=3)
    runtime = types.SimpleNamespace(device=torch.device("cpu"), channels_last=False,
                                    autocast=torch.autocast("cpu", enabled=False))
    runtime.autocast = lambda: torch.autocast("cpu", enabled=False)
    train = {"eval_batch_size": 4, "num_workers": 0}
    for oracle, expect in (("released", {"F1", "F2"}), ("ensemble", set())):
        mcd = methods.build("mcd", models.build_backbone("digit_cnn", feature_dim=8), 8, 3,
                            head_hidden=8, oracle=oracle)
        out = evaluate_splits(mcd, splits, runtime, train)
        assert {k.split("@")[1] for k in out if "@" in k} == expect
        assert {"target_acc", "source_val_acc"} <= set(out)


def test_cgdm_keeps_ghudas_oracle_and_crop():
    cgdm = methods.get("cgdm")
    assert cgdm.dataset_crop({}, "visda2017", "real") == "random_resized_crop"
    assert methods.get("mcd").dataset_crop({}, "visda2017", "real") == "center_crop"
    assert methods.get("mcd").dataset_crop({}, "domainnet", "real") == "random_resized_crop"
    assert methods.get("mcd").dataset_crop({"augment": "random_crop"}, "visda2017",
                                           "real") == "random_crop"


def test_released_evaluation_intervals_in_the_paper_config():
    for run in _runs("paper.yaml"):
        every = run.run_config["train"]["eval_every"]
        if run.method == "dwl" and run.dataset != "domainnet":
            assert every == 100, run.key
        if run.dataset == "visda2017" and run.method in ("source_only", "dann", "cdan", "gvb"):
            assert every == 1000, run.key


def test_retrieval_pairing_switch():
    import numpy as np

    from ghuda.extensions.retrieval import defaults as rtask
    from ghuda.extensions.retrieval.sets import train_batches

    assert rtask.PAPER_DEFAULTS["task"]["pairing"] == "released"
    assert rtask.EMBEDDED_DEFAULTS["task"]["pairing"] == "independent"
    mod = types_mod = __import__("types")
    mods = [types_mod.SimpleNamespace(sources=[0, 1], targets=[2, 3], text="a"),
            types_mod.SimpleNamespace(sources=[0, 4], targets=[5, 6], text="b"),
            types_mod.SimpleNamespace(sources=[1, 4], targets=[7, 8], text="c")]
    images = mod.SimpleNamespace(get=lambda ids: np.array(ids))
    split = mod.SimpleNamespace(images=images)
    batch = next(train_batches(split, mods, 8, 0, "released"))
    src = batch["source"]
    # every second sample queries the previous sample's source image under another mod
    assert all(src[i] == src[i + 1] and batch["texts"][i] != batch["texts"][i + 1]
               for i in range(0, 8, 2))
    with pytest.raises(ValueError, match="pairing"):
        next(train_batches(split, mods, 8, 0, "sometimes"))


def test_extension_paper_schedules_are_the_released_ones():
    from ghuda.extensions.detection import defaults as dtask
    from ghuda.extensions.retrieval import defaults as rtask

    r = rtask.PAPER_DEFAULTS["train"]
    assert r["steps"] == 601 * (rtask.CSS3D_TRAIN_IMAGES_ASSUMED // 128) < 100000  # one decay
    d = dtask.PAPER_DEFAULTS
    assert d["model"]["image_size"] == 320
    assert d["train"]["steps"] == 271 * 517
    assert d["train"]["lr_milestones"] == [150 * 517, 200 * 517, 250 * 517]
    assert 235 * 517 % d["train"]["eval_every"] == 0  # the released tested epoch is evaluated


def test_fidelity_rows_of_the_second_audit():
    from ghuda.report.fidelity import extension_fidelity_table, fidelity_table

    table = fidelity_table(load_config(REPO / "configs" / "paper.yaml"),
                           load_config(REPO / "configs" / "digits_full.yaml"))
    rows = {(r[0], r[1]): r for r in table.rows}
    assert rows[("MCD", "Digits network (MNIST<->USPS)")][3] == "lenet"
    assert rows[("MCD", "Digits network (SVHN->MNIST)")][3] == "dtn"
    assert rows[("MCD", "Digits network (SVHN->MNIST)")][4] == "digit_cnn"
    for key in (("DANN", "DANN discriminator input (--random)"), ("DANN", "DANN + GH / GH++"),
                ("DWL", "imports of the released solver"), ("MCD", "VisDA-2017 command")):
        assert rows[key][5] == "release does not run as shipped", key
    assert rows[("DWL", "evaluation interval")][5] == "match"
    assert rows[("MCD", "training augmentation (VisDA-2017)")][5] == "match"
    ext = {r[1]: r for r in extension_fidelity_table().rows}
    assert "160000 steps" not in " ".join(map(str, ext))
    assert ext["input size"][2].startswith("320")
