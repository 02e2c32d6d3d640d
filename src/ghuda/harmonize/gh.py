"""`gh`: Gradient Harmonization (REFERENCE 1.2).

Under conflict (d < 0) each gradient is projected onto the normal plane of the other:
``h1 = g1 - d/|g2|^2 g2``, ``h2 = g2 - d/|g1|^2 g1``; the update is ``h1 + h2``, i.e. the
weighted loss ``w1 = 1 - d/|g1|^2``, ``w2 = 1 - d/|g2|^2``. Without conflict: the plain sum.

Degenerate cases: a zero gradient has no angle (cos = 0, no conflict, plain sum). Exactly
antiparallel gradients give ``h1 = h2 = 0`` (each is its own projection) — a zero update,
which is the exact limit, not a fallback.
"""

from ghuda.harmonize.base import PLAIN_SUM, Coefficients, PairStats, VectorHarmonizer
from ghuda.harmonize.registry import register


@register("gh")
class GH(VectorHarmonizer):
    def coefficients(self, stats: PairStats) -> Coefficients:
        if not stats.conflict:
            return PLAIN_SUM
        # d / |g|^2 = cos * |g_other| / |g|: bounded by the norm ratio, never 0/0.
        r12 = stats.cos * stats.norm1 / stats.norm2  # d / |g2|^2
        r21 = stats.cos * stats.norm2 / stats.norm1  # d / |g1|^2
        return Coefficients(a11=1.0, a12=-r12, a21=-r21, a22=1.0)
