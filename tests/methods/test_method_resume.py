"""Stateful methods (DWL's window statistics, SSRT's safe-training bookkeeping, CDAN's random
map) resume exactly through the engine's checkpoints: a run interrupted after a checkpoint and
started again ends with the same metrics as an uninterrupted run (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ghuda import config
from ghuda.engine.trainer import Trainer

TINY = ["train.steps=20", "train.batch_size=16", "train.eval_every=10", "train.log_every=5",
        "train.checkpoint_every=6", "train.threads=1", "train.eval_batch_size=1024",
        "train.device=cpu", "model.options={widths: [8, 16, 16], feature_dim: 32}"]
RUNS = {
    "dwl": ["method.name=dwl", "harmonizer.name=gh", "method.params.hidden=32",
            "method.params.window=3"],
    "ssrt": ["method.name=ssrt", "harmonizer.name=ghpp", "model.backbone=tiny_vit",
             "model.options={dim: 32, depth: 4, heads: 2}", "method.params.bottleneck_dim=32",
             "method.params.safe_period=16"],
    "cdan": ["method.name=cdan", "harmonizer.name=gh", "method.params.disc_hidden=32",
             "method.params.random_dim=64", "method.params.bottleneck_dim=16"],
}
VOLATILE = {"cost", "provenance"}


class Crash(Exception):
    """Stands in for a kill."""


def _cfg(root: Path, name: str) -> dict:
    return config.load(None, [f"dataset.root={root}", *TINY, *RUNS[name]])


def _stable(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in VOLATILE}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_interrupted_run_resumes_to_identical_metrics(name, digits_mini_root, tmp_path,
                                                      monkeypatch):
    cfg = _cfg(digits_mini_root, name)
    Trainer(cfg, tmp_path / "straight", bar=False).run()

    original = Trainer._iteration
    calls = {"n": 0}

    def crash_at_17(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 17:  # after the checkpoint of step 12 and SSRT's check at step 15
            raise Crash
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_iteration", crash_at_17)
    with pytest.raises(Crash):
        Trainer(cfg, tmp_path / "resumed", bar=False).run()
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    monkeypatch.setattr(Trainer, "_iteration", original)
    Trainer(cfg, tmp_path / "resumed", bar=False).run()

    assert _stable(tmp_path / "resumed") == _stable(tmp_path / "straight")
    assert ((tmp_path / "resumed" / "history.jsonl").read_bytes()
            == (tmp_path / "straight" / "history.jsonl").read_bytes())
