"""`gh`: Gradient Harmonization (REFERENCE 1.2).

Under conflict (d < 0) each gradient is projected onto the normal plane of the other:
``h1 = g1 - d/|g2|^2 g2``, ``h2 = g2 - d/|g1|^2 g1``; the update is ``h1 + h2``, i.e. the
weighted loss ``w1 = 1 - d/|g1|^2``, ``w2 = 1 - d/|g2|^2``. Without conflict: the plain sum.
The weights are unbounded when the norms differ a lot; like the released code, never clipped.

Degenerate cases: a zero gradient has no angle (plain sum, fallback "zero_gradient"). Exactly
antiparallel gradients give ``h1 = h2 = 0`` (each is its own projection) — a zero update,
which is the exact limit, not a fallback.
"""

from ghuda.harmonize.numerics import PairStats
from ghuda.harmonize.registry import register
from ghuda.harmonize.vector import Coefficients, ConflictHarmonizer


@register("gh")
class GH(ConflictHarmonizer):
    def on_conflict(self, stats: PairStats) -> Coefficients:
        # d / |g|^2 = cos * |g_other| / |g|: no overflow of d or |g|^2 for any norms.
        r12 = stats.cos * stats.norm1 / stats.norm2  # d / |g2|^2
        r21 = stats.cos * stats.norm2 / stats.norm1  # d / |g1|^2
        return Coefficients.of(1.0, -r12, -r21, 1.0, like=stats.dot)
