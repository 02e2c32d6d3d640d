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

import torch

from ghuda.harmonize.numerics import PairStats
from ghuda.harmonize.registry import register
from ghuda.harmonize.tradeoff import TradeOffHarmonizer
from ghuda.harmonize.vector import Coefficients


@register("ghpp")
class GHPlusPlus(TradeOffHarmonizer):
    def on_conflict(self, stats: PairStats) -> Coefficients:
        b1, b2 = self.rotations(stats)
        return Coefficients.of(1.0 + 2.0 * torch.sin(b1 / 2), 0.0,
                               0.0, 1.0 - 2.0 * torch.sin(b2 / 2), like=stats.dot)
