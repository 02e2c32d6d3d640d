"""`ghpp_exact`: exact geometric GH++, a norm-preserving rotation to 90 degrees (REFERENCE 1.3b).

Under conflict, g1 turns by ``b1 = t (theta - 90deg)`` and g2 by ``b2 = (1 - t)(theta - 90deg)``
toward each other inside span(g1, g2), keeping their norms, so the rotated pair is exactly
orthogonal (the angle between them becomes ``theta - b1 - b2 = 90deg``). A unit vector u1 turned
toward u2 by b is ``(sin(theta - b) u1 + sin(b) u2) / sin(theta)``, hence

    h1 = sin(theta - b1)/sin(theta) g1 + sin(b1)/sin(theta) |g1|/|g2| g2
    h2 = sin(b2)/sin(theta) |g2|/|g1| g1 + sin(theta - b2)/sin(theta) g2

and ``update = h1 + h2``. With t = 0.5 each deviates by (theta - 90deg)/2, half of GH's
deviation. Without conflict: the plain sum.

Antiparallel fallback ("antiparallel"): when ``sin(theta) < ANTIPARALLEL_SIN`` the plane of
rotation is undefined (exactly antiparallel) or set by rounding noise (the coefficients grow
like 1/sin(theta) and cancel; with float32 arithmetic the relative error is about
eps32 / sin(theta)). The rotated vectors are then ``cos(b) g`` plus a component of norm
``sin(b)|g|`` along an arbitrary direction orthogonal to g1; the fallback keeps only the defined
part, ``h1 = cos(b1) g1``, ``h2 = cos(b2) g2`` — the average over all admissible planes.
"""

from __future__ import annotations

import math

import torch

from ghuda.harmonize.numerics import PairStats
from ghuda.harmonize.registry import register
from ghuda.harmonize.tradeoff import TradeOffHarmonizer
from ghuda.harmonize.vector import Coefficients

# sqrt(float32 eps) ~ 3.5e-4, i.e. within ~0.02 degrees of 180: below it the rotation plane is
# known to fewer than ~4 significant digits in float32.
ANTIPARALLEL_SIN = math.sqrt(torch.finfo(torch.float32).eps)


@register("ghpp_exact")
class GHPlusPlusExact(TradeOffHarmonizer):
    def on_conflict(self, stats: PairStats) -> Coefficients:
        b1, b2 = self.rotations(stats)
        theta = stats.theta
        sin_theta = torch.sin(theta)
        ratio = stats.norm1 / stats.norm2
        rotated = Coefficients.of(torch.sin(theta - b1) / sin_theta,
                                  torch.sin(b1) / sin_theta * ratio,
                                  torch.sin(b2) / sin_theta / ratio,
                                  torch.sin(theta - b2) / sin_theta, like=stats.dot)
        antiparallel = Coefficients.of(torch.cos(b1), 0.0, 0.0, torch.cos(b2), like=stats.dot,
                                       fallback="antiparallel")
        return antiparallel.where(sin_theta < ANTIPARALLEL_SIN, rotated)
