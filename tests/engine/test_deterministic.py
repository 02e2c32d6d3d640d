"""``train.deterministic`` (issue 13): the same seed twice gives identical metrics, and on
CUDA the setting configures cuBLAS, cuDNN and torch's deterministic algorithms."""

from __future__ import annotations

import json
import os

import pytest
import torch

from ghuda import config
from ghuda.engine import runtime
from ghuda.engine.trainer import Trainer

RUN = ["method.name=dann", "harmonizer.name=gh", "train.deterministic=true",
       "method.params.disc_hidden=32", "method.params.bottleneck_dim=16"]


def _metrics(make_cfg, out) -> dict:
    Trainer(make_cfg(*RUN), out, bar=False).run()
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in {"cost", "provenance"}}


def test_same_seed_twice_gives_identical_metrics(make_cfg, tmp_path):
    first = _metrics(make_cfg, tmp_path / "a")
    second = _metrics(make_cfg, tmp_path / "b")
    assert first == second
    assert (tmp_path / "a" / "history.jsonl").read_bytes() == (
        tmp_path / "b" / "history.jsonl").read_bytes()


def test_deterministic_defaults_to_false():
    assert config.defaults()["train"]["deterministic"] is False


def test_deterministic_cuda_settings(monkeypatch):
    """What `train.deterministic: true` sets on CUDA (checked without a GPU)."""
    calls = []
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(runtime, "_deterministic_algorithms", calls.append)
    runtime.deterministic_cuda()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cudnn.benchmark is False
    assert torch.backends.cudnn.deterministic is True
    assert calls == [True]


def test_deterministic_algorithms_switch_both_ways():
    """A later non-deterministic CUDA run of the same process (gpu_check, several runs per
    process) switches torch's flag off again."""
    before = torch.are_deterministic_algorithms_enabled()
    try:
        runtime._deterministic_algorithms(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        runtime._deterministic_algorithms(False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        runtime._deterministic_algorithms(before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_seed_twice_on_cuda(make_cfg, tmp_path):
    runs = [make_cfg(*RUN, "train.device=cuda") for _ in range(2)]
    results = []
    for k, cfg in enumerate(runs):
        Trainer(cfg, tmp_path / str(k), bar=False).run()
        metrics = json.loads((tmp_path / str(k) / "metrics.json").read_text())
        results.append({k: v for k, v in metrics.items() if k not in {"cost", "provenance"}})
    assert results[0] == results[1]
