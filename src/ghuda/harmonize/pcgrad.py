"""`pcgrad`: Projecting Conflicting Gradients (Yu et al., NeurIPS 2020), as published.

For each task i, start from ``g_i^PC = g_i`` and, for every other task j (PCGrad visits them in
a random order), if ``<g_i^PC, g_j> < 0`` project g_i^PC onto the normal plane of the ORIGINAL
g_j: ``g_i^PC -= <g_i^PC, g_j> / |g_j|^2 g_j``. The update is the sum of the g_i^PC.

The algorithm runs on the Gram matrix of the task gradients (every g_i^PC is a linear
combination of the originals, so each inner product it needs is a combination of Gram
entries); nothing but the final combination touches the gradients. With two tasks each has
exactly one other task, so the visiting order cannot matter and the natural order is used.
REFERENCE 1.2: for two tasks this equals GH, which the tests check against `gh`'s closed form.
A zero gradient never conflicts (its inner products are 0): the plain sum.
"""

from __future__ import annotations

from collections.abc import Sequence

from ghuda.harmonize.base import Coefficients, VectorHarmonizer
from ghuda.harmonize.numerics import PairStats
from ghuda.harmonize.registry import register


def pcgrad_coefficients(gram: Sequence[Sequence[float]]) -> list[list[float]]:
    """Rows A with ``g_i^PC = sum_l A[i][l] g_l``, from the Gram matrix ``<g_l, g_j>``."""
    k = len(gram)
    coef = [[1.0 if i == l else 0.0 for l in range(k)] for i in range(k)]
    for i in range(k):
        for j in range(k):
            if j == i:
                continue
            inner = sum(coef[i][l] * gram[l][j] for l in range(k))  # <g_i^PC, g_j>
            if inner < 0.0:
                coef[i][j] -= inner / gram[j][j]
    return coef


@register("pcgrad")
class PCGrad(VectorHarmonizer):
    def coefficients(self, stats: PairStats) -> Coefficients:
        (a11, a12), (a21, a22) = pcgrad_coefficients([[stats.sq1, stats.dot],
                                                      [stats.dot, stats.sq2]])
        return Coefficients(a11=a11, a12=a12, a21=a21, a22=a22,
                            fallback="zero_gradient" if stats.has_zero else None)
