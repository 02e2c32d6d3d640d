"""Gradient harmonizers: turn the gradients of two losses into one update (REFERENCE 1-2).

Public API::

    names() -> list[str]
    harmonize(name, g1, g2, **options) -> Harmonized      # on flat 1-D tensors
    make(name, **options) -> Harmonizer                   # .backward(loss1, loss2, params, measure)

Options: ``mode`` ("direct": two backward passes, or "weighted_loss": the released three-pass
procedure; vector harmonizers only), ``outside`` for vector harmonizers ("weighted", as
released, or "sum": parameters outside `measure` get the plain sum; `VectorHarmonizer`),
``t`` for ghpp/ghpp_exact (default 0.5, in [0, 1]), ``seed`` for agr_rand.
`ghuda.harmonize.base` documents the backward semantics (measure scope, accumulation into
``.grad``) and the fallback of every degenerate case.

Modules by concern: `types` (what `backward` receives and returns, the device read-back),
`base` (the `Harmonizer` interface), `vector` and `elementwise` (the two families' steps),
`tradeoff` (the GH++ family's option `t`), `grads`, `flat` and `numerics` (shared gradient
machinery), then one module per registered harmonizer.

Adding a harmonizer: one module in this package with a class decorated by
``@register("name")`` (found on import, no list to edit), or a module outside named in
``$GHUDA_PLUGINS`` (`ghuda.registry`). A harmonizer that owns its own step subclasses
`Harmonizer` and implements `accumulate`.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ghuda.harmonize.base import Harmonizer
from ghuda.harmonize.elementwise import ElementwiseHarmonizer
from ghuda.harmonize.numerics import NonFiniteGradientError, PairStats
from ghuda.harmonize.registry import REGISTRY, make, names, register
from ghuda.harmonize.tradeoff import TradeOffHarmonizer
from ghuda.harmonize.types import BackwardCall, Harmonized, StepContext
from ghuda.harmonize.vector import Coefficients, ConflictHarmonizer, VectorHarmonizer

REGISTRY.discover()


def harmonize(name: str, g1: Tensor, g2: Tensor, **options: Any) -> Harmonized:
    """Harmonize two flat gradients with the harmonizer `name` (a fresh instance)."""
    return make(name, **options).harmonize(g1, g2)


__all__ = [
    "BackwardCall",
    "Coefficients",
    "ConflictHarmonizer",
    "ElementwiseHarmonizer",
    "Harmonized",
    "Harmonizer",
    "NonFiniteGradientError",
    "PairStats",
    "StepContext",
    "TradeOffHarmonizer",
    "VectorHarmonizer",
    "harmonize",
    "make",
    "names",
    "register",
]
