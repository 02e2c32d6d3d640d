"""Checkpoints: one file per run folder, replaced atomically, refused under another config."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ghuda.runs import atomic_write_bytes

FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (corrupt, other config, other format)."""


def save(path: Path, state: dict[str, Any]) -> None:
    """Serialise `state` and move it into place in one rename."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load(path: Path, config_sha256: str) -> dict[str, Any]:
    """Read a checkpoint written for the config with hash `config_sha256`."""
    try:
        # Our own file in the run folder; it holds numpy/python RNG states, hence not
        # weights_only.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or unreadable ({type(err).__name__}: {err}). "
            "Delete it to restart this run from scratch (or pass --fresh).") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has an unknown format; delete it or pass "
                              "--fresh")
    if state.get("config_sha256") != config_sha256:
        raise CheckpointError(
            f"checkpoint {path} was written by a run with a different configuration "
            f"(sha256 {str(state.get('config_sha256'))[:12]}..., now {config_sha256[:12]}...); "
            "refusing to resume. Use the original config, another --out, or --fresh.")
    return state
