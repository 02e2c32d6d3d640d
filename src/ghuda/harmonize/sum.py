"""`sum`: the plain sum g1 + g2, the baseline every method uses without harmonization."""

from collections.abc import Iterable, Sequence

from torch import Tensor

from ghuda.harmonize.base import (
    Coefficients,
    Stats,
    StepContext,
    VectorHarmonizer,
    check_scales,
)
from ghuda.harmonize.grads import check_loss, scope
from ghuda.harmonize.numerics import PairStats
from ghuda.harmonize.registry import register


@register("sum")
class Sum(VectorHarmonizer):
    """w1 = w2 = 1 always.

    ``backward(..., with_stats=False)`` in direct mode is a single backward pass of
    ``s1*loss1 + s2*loss2`` (what a loop without harmonization does) and returns ``{}``;
    with statistics it costs two passes, like every other harmonizer.
    """

    extra_backward = 0  # the engine calls it with with_stats=False

    def coefficients(self, stats: PairStats) -> Coefficients:
        return Coefficients.plain_sum(stats.dot)

    def backward(self, loss1: Tensor, loss2: Tensor, params: Iterable[Tensor],
                 measure: Iterable[Tensor] | None = None, *, retain_graph: bool = False,
                 with_stats: bool = True, scales: Sequence[float] = (1.0, 1.0),
                 context: StepContext | None = None) -> Stats:
        if with_stats or self.mode != "direct":
            return super().backward(loss1, loss2, params, measure, retain_graph=retain_graph,
                                    with_stats=with_stats, scales=scales)
        s1, s2 = check_scales(scales)
        check_loss(loss1, "loss1")
        check_loss(loss2, "loss2")
        param_list, _ = scope(params, measure)
        total = s1 * loss1.reshape(()) + s2 * loss2.reshape(())
        if total.requires_grad:
            total.backward(inputs=param_list, retain_graph=retain_graph)
        return {}
