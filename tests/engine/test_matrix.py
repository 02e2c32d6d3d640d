"""Every registered method x {sum, gh, ghpp} trains on digits-mini and writes complete outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from ghuda import methods, models
from ghuda.engine.evaluate import protocol_names
from ghuda.engine.trainer import Trainer

HARMONIZERS = ("sum", "gh", "ghpp")
PAIR_KEYS = {"first", "second", "cos", "angle_deg", "conflict", "w1", "w2", "norm1", "norm2",
             "norm_update", "fallback"}


def _backbone_overrides(method: str) -> list[str]:
    needed = methods.get(method).requires_backbone
    if needed is None:
        return []
    name = next(n for n in models.names() if models.kind(n) == needed
                and not models.has_imagenet_weights(n))
    return [f"model.backbone={name}", "model.options={}"]


@pytest.mark.parametrize("harmonizer", HARMONIZERS)
@pytest.mark.parametrize("method", methods.names())
def test_trains_and_writes_complete_outputs(method, harmonizer, make_cfg, tmp_path):
    cfg = make_cfg(f"method.name={method}", f"harmonizer.name={harmonizer}",
                   *_backbone_overrides(method))
    metrics = Trainer(cfg, tmp_path, bar=False).run()

    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == metrics
    assert set(on_disk) == {"schema", "run", "status", "protocols", "conflict", "cost",
                            "provenance"}
    assert on_disk["status"] == "completed"
    assert on_disk["run"]["method"] == method
    assert on_disk["run"]["harmonizer"] == harmonizer
    assert set(on_disk["protocols"]) == set(protocol_names())  # validators included
    for name, p in on_disk["protocols"].items():
        assert 0.0 <= p["acc"] <= 100.0, name
        assert 0.0 <= p["mean_class_acc"] <= 100.0, name
        assert p["step"] == 20
    assert "TARGET LABELS" in on_disk["protocols"]["oracle"]["selection"]
    cost = on_disk["cost"]
    assert cost["steps_per_s"] > 0
    assert cost["peak_mem_kind"] in {
        "cpu_rss_delta", "cpu_peak_rss_process", "cuda_max_allocated"}
    assert on_disk["provenance"]["config_sha256"]
    assert on_disk["provenance"]["seed"] == 0

    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    train = [r for r in history if r["kind"] == "train"]
    evals = [r for r in history if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [20]
    assert sorted({r["step"] for r in train}) == [10, 20]
    for record in train:
        assert all(np.isfinite(v) for v in record["losses"].values())
        for pair in record["pairs"]:
            assert set(pair) == PAIR_KEYS
            assert -1.0 <= pair["cos"] <= 1.0
    declared = any(r["pairs"] for r in train)
    conflict = on_disk["conflict"]
    if declared:
        assert conflict["logged_steps"] == 2
        assert conflict["pairs"]
        assert 0.0 <= conflict["fraction_conflicting"] <= 1.0
    else:
        assert conflict["logged_steps"] == 0
        assert conflict["fraction_conflicting"] is None

    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == cfg
    assert not (tmp_path / "checkpoint.pt").exists()
