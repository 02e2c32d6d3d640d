"""The harmonizer registry (`ghuda.registry.Registry`) and `make`."""

from __future__ import annotations

from typing import Any

from ghuda.harmonize.base import Harmonizer
from ghuda.registry import Registry

REGISTRY: Registry[type[Harmonizer]] = Registry("harmonizer", "ghuda.harmonize")
register, names = REGISTRY.register, REGISTRY.names


def make(name: str, **options: Any) -> Harmonizer:
    """Instantiate the harmonizer `name` with its options (unknown names/options are errors)."""
    cls = REGISTRY.get(name)
    try:
        return cls(**options)
    except TypeError as err:
        raise ValueError(f"harmonizer {name!r}: bad options {sorted(options)}: {err}") from None
