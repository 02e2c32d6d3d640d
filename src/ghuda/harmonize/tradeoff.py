"""`TradeOffHarmonizer`: the GH++ family's option `t` and the rotations it splits
(REFERENCE 1.3; `ghpp` and `ghpp_exact` subclass it)."""

from __future__ import annotations

import math
from numbers import Real

from torch import Tensor

from ghuda.harmonize.numerics import PairStats
from ghuda.harmonize.vector import ConflictHarmonizer


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
