"""Vector harmonizers (REFERENCE 1.2-1.4): the update is ``w1 g1 + w2 g2`` with pair-level
scalar coefficients (`Coefficients`) computed on the device from the pair's reductions;
`VectorHarmonizer.accumulate` is the two-pass step on flat rows (`ghuda.harmonize.flat`) and
the released three-pass weighted-loss step. `ghuda.harmonize.base` documents the contract."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ghuda.harmonize import flat
from ghuda.harmonize.base import Harmonizer
from ghuda.harmonize.grads import task_gradients
from ghuda.harmonize.numerics import PairStats, saturate
from ghuda.harmonize.types import (
    FALLBACKS,
    BackwardCall,
    Harmonized,
    Stats,
    check_flat,
    read_stats,
)


@dataclass(frozen=True)
class Coefficients:
    """``matrix`` = [[a11, a12], [a21, a22]] with h1 = a11 g1 + a12 g2, h2 = a21 g1 + a22 g2,
    float64 on the gradients' device; `fallback` a 0-d tensor indexing `FALLBACKS`."""

    matrix: Tensor
    fallback: Tensor

    @classmethod
    def of(cls, a11: Tensor | float, a12: Tensor | float, a21: Tensor | float,
           a22: Tensor | float, like: Tensor, fallback: str | None = None) -> Coefficients:
        """Coefficients from four scalars (tensors or numbers) on `like`'s device."""
        values = [x if isinstance(x, Tensor) else torch.full_like(like, x)
                  for x in (a11, a12, a21, a22)]
        code = torch.full_like(like, FALLBACKS.index(fallback))
        return cls(torch.stack(values).view(2, 2), code)

    @classmethod
    def plain_sum(cls, like: Tensor) -> Coefficients:
        """w1 = w2 = 1: h1 = g1, h2 = g2."""
        return cls(torch.eye(2, dtype=torch.float64, device=like.device),
                   torch.zeros_like(like))

    @property
    def weights(self) -> Tensor:
        """(w1, w2): the update is ``w1 g1 + w2 g2``."""
        return self.matrix.sum(0)

    def where(self, condition: Tensor, other: Coefficients) -> Coefficients:
        """These coefficients where `condition` holds, `other` elsewhere (no host read)."""
        return Coefficients(torch.where(condition, self.matrix, other.matrix),
                            torch.where(condition, self.fallback, other.fallback))


def _combination_sq(stats: PairStats, e: Tensor) -> Tensor:
    """|e1 g1 + e2 g2|^2 from the pair's reductions (float64 tensor)."""
    sq = e[0] * e[0] * stats.sq1 + 2.0 * e[0] * e[1] * stats.dot + e[1] * e[1] * stats.sq2
    return sq.clamp(min=0.0)


class VectorHarmonizer(Harmonizer):
    """Harmonizers whose update is ``w1 g1 + w2 g2`` with pair-level scalar coefficients.

    Option `outside`: what parameters outside `measure` receive. ``"weighted"`` (default, as
    released: the weighted loss ``w1*L1 + w2*L2`` scales every parameter's gradient) gives
    ``w1*g1 + w2*g2`` of their own gradients; ``"sum"`` gives the plain ``g1 + g2`` there, so
    that only the measured parameters are harmonized (an ablation: with the released form a
    huge w1, e.g. while a gradient-reversal warm-up keeps g1 tiny on the backbone, also
    scales the discriminator's own gradient). ``"sum"`` has no weighted-loss form.
    """

    OUTSIDE: ClassVar[tuple[str, ...]] = ("weighted", "sum")

    def __init__(self, mode: str = "direct", outside: str = "weighted") -> None:
        super().__init__(mode=mode)
        if outside not in self.OUTSIDE:
            raise ValueError(f"harmonizer {self.name!r}: outside must be one of "
                             f"{self.OUTSIDE}, got {outside!r}")
        if outside != "weighted" and mode == "weighted_loss":
            raise ValueError(f"harmonizer {self.name!r}: outside={outside!r} has no "
                             "weighted-loss form (one weighted loss scales every parameter); "
                             "use mode='direct'")
        self.outside = outside

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, mode={self.mode!r}, "
                f"outside={self.outside!r})")

    @abstractmethod
    def coefficients(self, stats: PairStats) -> Coefficients:
        """The 2x2 coefficients for this pair; finite for every finite input, computed with
        tensor operations only (degenerate cases selected with ``torch.where``)."""

    def harmonize(self, g1: Tensor, g2: Tensor) -> Harmonized:
        check_flat(g1, g2)
        yes = [True]
        groups = flat.flatten([g1], [g1], [g2], is_param=yes, is_measured=yes)
        stats = flat.gram(groups, g1.device)
        c = self.coefficients(stats)
        (group,) = groups
        a, b = (row[:group.n_data] for row in group.rows)  # without the chunk padding
        m1, m2 = group.scales

        def combination(x: Tensor) -> Tensor:
            return saturate(flat.combine(a, b, x[0] * m1, x[1] * m2), g1.dtype)

        values = read_stats(stats, c.weights, _combination_sq(stats, c.weights), c.fallback)
        return Harmonized(update=combination(c.weights), h1=combination(c.matrix[0]),
                          h2=combination(c.matrix[1]), w1=values["w1"], w2=values["w2"],
                          cos=values["cos"], conflict=values["conflict"],
                          fallback=values["fallback"])

    def accumulate(self, call: BackwardCall) -> Stats:
        """Two backward passes and one write on flat rows; three passes in weighted-loss
        mode (the weighted loss replaces the write)."""
        s1, s2 = call.scales
        weighted = self.mode == "weighted_loss"
        pair = task_gradients(call.loss1, call.loss2, call.params, call.measure,
                              keep_graph=call.retain_graph or weighted)
        groups = flat.flatten(pair.tensors, pair.g1, pair.g2,
                              is_param=[pair.is_param(t) for t in pair.tensors],
                              is_measured=[pair.in_measure(t) for t in pair.tensors])
        device = pair.measure[0].device
        if groups:
            stats = flat.gram(groups, device)
        else:  # neither loss reaches any tensor
            zero = torch.zeros((), dtype=torch.float64, device=device)
            stats = PairStats(dot=zero, sq1=zero, sq2=zero)
        c = self.coefficients(stats)
        w = c.weights
        e = torch.stack((w[0] * s1, w[1] * s2))  # effective weights of the written update
        values = (read_stats(stats, c.weights, _combination_sq(stats, e), c.fallback)
                  if call.with_stats or weighted else {})
        if weighted:
            total = (e[0].to(call.loss1.dtype) * call.loss1.reshape(())
                     + e[1].to(call.loss2.dtype) * call.loss2.reshape(()))
            if bool(torch.isfinite(total)):
                if total.requires_grad:
                    total.backward(inputs=pair.params, retain_graph=call.retain_graph)
                return values
            values["fallback"] = "weighted_loss_overflow"
        inside = (e[0], e[1])
        outside = inside if self.outside == "weighted" else (
            torch.full_like(e[0], s1), torch.full_like(e[1], s2))
        for group in groups:
            group.write(inside, outside)
        return values if call.with_stats else {}


class ConflictHarmonizer(VectorHarmonizer):
    """Vector harmonizers that act only under conflict: the plain sum otherwise."""

    weight_curve = True

    @abstractmethod
    def on_conflict(self, stats: PairStats) -> Coefficients:
        """Coefficients for a conflicting pair of nonzero gradients (d < 0); evaluated for
        every pair (tensor operations only), used where the pair conflicts."""

    def coefficients(self, stats: PairStats) -> Coefficients:
        plain = Coefficients.plain_sum(stats.dot)
        out = self.on_conflict(stats).where(stats.conflict, plain)
        zero_gradient = torch.full_like(out.fallback, FALLBACKS.index("zero_gradient"))
        return Coefficients(out.matrix, torch.where(stats.has_zero, zero_gradient,
                                                    out.fallback))


