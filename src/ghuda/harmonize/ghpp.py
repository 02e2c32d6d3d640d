"""`ghpp`: GH++ exactly as released (``--GH_new`` in the authors' code; REFERENCE 1.3a).

Under conflict, with ``theta = acos(cos)`` (cosine clamped to [-1, 1]; the released code does
not clamp), ``beta_max = theta - 90deg`` and ``beta = t * beta_max``:
``w1 = 1 + 2 sin(beta / 2)``, ``w2 = 1 - 2 sin((beta_max - beta) / 2)``.
The weights depend on the angle only, never on the norms, and are asymmetric: the FIRST loss is
always up-weighted, the second down-weighted (``w2 < 0`` is possible for t = 0, theta > 150deg).
``2 sin(x/2)`` is the chord of a rotation by x: each unit gradient is nudged toward the other.
As a loss re-weighting, ``h1 = w1 g1`` and ``h2 = w2 g2``. Without conflict: the plain sum.

The angle-only weights are finite for every input; exactly antiparallel gradients
(theta = 180deg) need no fallback. A zero gradient gives the plain sum ("zero_gradient").
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import Tensor

from ghuda.harmonize.base import Coefficients, ConflictHarmonizer
from ghuda.harmonize.numerics import PairStats
from ghuda.harmonize.registry import register


class TradeOffHarmonizer(ConflictHarmonizer):
    """GH++ variants: option `t` in [0, 1] splits the rotation ``beta_max = theta - 90deg``."""

    def __init__(self, t: float = 0.5, mode: str = "direct", outside: str = "weighted") -> None:
        super().__init__(mode=mode, outside=outside)
        if isinstance(t, bool) or not isinstance(t, Real) or not 0.0 <= float(t) <= 1.0:
            raise ValueError(f"harmonizer {self.name!r}: trade-off t must be a number in "
                             f"[0, 1], got {t!r}")
        self.t = float(t)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, t={self.t}, mode={self.mode!r}, "
                f"outside={self.outside!r})")

    def rotations(self, stats: PairStats) -> tuple[Tensor, Tensor]:
        """(beta, beta_max - beta) in radians: how far g1 and g2 turn toward each other."""
        beta_max = stats.theta - math.pi / 2
        beta = self.t * beta_max
        return beta, beta_max - beta


@register("ghpp")
class GHPlusPlus(TradeOffHarmonizer):
    def on_conflict(self, stats: PairStats) -> Coefficients:
        b1, b2 = self.rotations(stats)
        return Coefficients.of(1.0 + 2.0 * torch.sin(b1 / 2), 0.0,
                               0.0, 1.0 - 2.0 * torch.sin(b2 / 2), like=stats.dot)
