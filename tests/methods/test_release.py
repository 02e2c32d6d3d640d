"""The paper and digits-mini configs agree with each method's `Release` record."""

from __future__ import annotations

from pathlib import Path

import pytest

from ghuda import methods
from ghuda.methods.release import released_params
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
        if run.dataset in cls.RELEASE.not_released:
            continue
        for diff in _differences(run.run_config, cls.RELEASE.expected(run.dataset, run.task)):
            problems.append(f"{run.dataset} {run.task} {run.method}: {diff}")
    assert not sorted(set(problems))


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
