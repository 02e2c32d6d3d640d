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

import torch
from torch import Tensor

from ghuda.harmonize.numerics import PairStats
from ghuda.harmonize.registry import register
from ghuda.harmonize.types import FALLBACKS
from ghuda.harmonize.vector import Coefficients, VectorHarmonizer


def pcgrad_coefficients(gram: Tensor) -> Tensor:
    """Rows A with ``g_i^PC = sum_l A[i, l] g_l``, from the Gram matrix ``<g_l, g_j>`` (k x k
    tensor); tensor operations only (a projection is applied with ``torch.where``)."""
    k = gram.shape[0]
    coef = torch.eye(k, dtype=gram.dtype, device=gram.device)
    for i in range(k):
        for j in range(k):
            if j == i:
                continue
            inner = coef[i] @ gram[:, j]  # <g_i^PC, g_j>
            coef[i, j] -= torch.where(inner < 0.0, inner / gram[j, j], 0.0)
    return coef


@register("pcgrad")
class PCGrad(VectorHarmonizer):
    def coefficients(self, stats: PairStats) -> Coefficients:
        gram = torch.stack((stats.sq1, stats.dot, stats.dot, stats.sq2)).view(2, 2)
        fallback = torch.where(stats.has_zero, FALLBACKS.index("zero_gradient"), 0)
        return Coefficients(pcgrad_coefficients(gram), fallback.to(stats.dot.dtype))
