"""Gradient harmonizers: turn the gradients of two losses into one update (REFERENCE 1-2).

Public API::

    names() -> list[str]
    harmonize(name, g1, g2, **options) -> Harmonized      # on flat 1-D tensors
    make(name, **options) -> Harmonizer                   # .backward(loss1, loss2, params, measure)

Adding a harmonizer: one module with a class decorated by ``@register("name")``, plus its
name in `MODULES` below.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import Tensor

from ghuda.harmonize.base import (
    Coefficients,
    ElementwiseHarmonizer,
    Harmonized,
    Harmonizer,
    PairStats,
    VectorHarmonizer,
)
from ghuda.harmonize.registry import make, names, register

# Modules that register harmonizers on import, in the order tables show them.
MODULES = ("sum", "gh")
for _module in MODULES:
    importlib.import_module(f"ghuda.harmonize.{_module}")


def harmonize(name: str, g1: Tensor, g2: Tensor, **options: Any) -> Harmonized:
    """Harmonize two flat gradients with the harmonizer `name`."""
    return make(name, **options).harmonize(g1, g2)


__all__ = [
    "Coefficients",
    "ElementwiseHarmonizer",
    "Harmonized",
    "Harmonizer",
    "PairStats",
    "VectorHarmonizer",
    "harmonize",
    "make",
    "names",
    "register",
]
