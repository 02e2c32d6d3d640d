"""`sum`: the plain sum g1 + g2, the baseline every method uses without harmonization."""

from ghuda.harmonize.grads import check_loss, scope
from ghuda.harmonize.numerics import PairStats
from ghuda.harmonize.registry import register
from ghuda.harmonize.types import BackwardCall, Stats
from ghuda.harmonize.vector import Coefficients, VectorHarmonizer


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

    def accumulate(self, call: BackwardCall) -> Stats:
        if call.with_stats or self.mode != "direct":
            return super().accumulate(call)
        s1, s2 = call.scales
        check_loss(call.loss1, "loss1")
        check_loss(call.loss2, "loss2")
        param_list, _ = scope(call.params, call.measure)
        total = s1 * call.loss1.reshape(()) + s2 * call.loss2.reshape(())
        if total.requires_grad:
            total.backward(inputs=param_list, retain_graph=call.retain_graph)
        return {}
