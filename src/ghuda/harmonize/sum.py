"""`sum`: the plain sum g1 + g2, the baseline every method uses without harmonization."""

from ghuda.harmonize.base import PLAIN_SUM, Coefficients, PairStats, VectorHarmonizer
from ghuda.harmonize.registry import register


@register("sum")
class Sum(VectorHarmonizer):
    """w1 = w2 = 1 always. Without statistics, `backward` is a single backward pass."""

    extra_backward = 0

    def coefficients(self, stats: PairStats) -> Coefficients:
        return PLAIN_SUM
