"""Fixtures for engine tests: tiny, fast digits-mini runs (configs built in code)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ghuda import config

# Small enough for seconds per run on one CPU thread, big enough to exercise every code path.
TINY = [
    "train.steps=20", "train.batch_size=16", "train.eval_every=20", "train.log_every=10",
    "train.checkpoint_every=0", "train.threads=1", "train.eval_batch_size=1024",
    "model.options={widths: [8, 16, 16], feature_dim: 32}",
]


@pytest.fixture(scope="session")
def make_cfg(digits_mini_root: Path) -> Callable[..., dict[str, Any]]:
    """``make_cfg("method.name=dann", ...)``: a resolved, validated tiny config."""

    def make(*overrides: str) -> dict[str, Any]:
        return config.load(None, [f"dataset.root={digits_mini_root}", *TINY, *overrides])

    return make


@pytest.fixture
def cli_args(digits_mini_root: Path) -> Callable[..., list[str]]:
    """Argument list for `ghuda train` with the tiny settings and extra ``--set`` overrides."""

    def args(out: Path, *overrides: str) -> list[str]:
        sets = [f"dataset.root={digits_mini_root}", *TINY, *overrides]
        return [arg for s in sets for arg in ("--set", s)] + ["--out", str(out)]

    return args
