"""Shared by the extension resume tests: the stand-in for a kill, and what the
metrics.json of two identical runs share."""

from __future__ import annotations

from typing import Any


class Interrupted(Exception):
    """Stands for a kill in the middle of a run."""


def comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics.json without what differs between identical runs (cost, provenance)."""
    return {k: v for k, v in metrics.items() if k not in ("cost", "provenance")}
