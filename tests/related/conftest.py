"""Tiny digits-mini runs for the related methods (configs built in code, seconds each)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ghuda import config

TINY = ["train.steps=20", "train.batch_size=16", "train.eval_every=10", "train.log_every=5",
        "train.checkpoint_every=0", "train.threads=1", "train.eval_batch_size=1024",
        "model.options={widths: [8, 16, 16], feature_dim: 32}"]
# digits-mini trains with lr 0.01, ten times the released 1e-3; meta_lr 10 keeps the released
# look-ahead step meta_lr * lr = 0.1 (the released meta_lr 100 diverges here).
META_LR = 10.0


@pytest.fixture(scope="session")
def tiny_cfg(digits_mini_root: Path) -> Callable[..., dict[str, Any]]:
    """``tiny_cfg("method.name=dann", ...)``: a resolved, validated 20-iteration config."""

    def make(*overrides: str) -> dict[str, Any]:
        return config.load(None, [f"dataset.root={digits_mini_root}", *TINY, *overrides])

    return make
