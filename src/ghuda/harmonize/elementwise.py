"""Element-wise harmonizers (REFERENCE 2): sign-agreement gradient surgery, coordinate by
coordinate, in two backward passes (`ElementwiseHarmonizer.accumulate`).
`ghuda.harmonize.base` documents the contract."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from ghuda.harmonize.base import Harmonizer
from ghuda.harmonize.grads import GradientPair, accumulate_grad, task_gradients
from ghuda.harmonize.numerics import (
    PairStats,
    add_to,
    linear_combination,
    pair_stats,
    saturate,
)
from ghuda.harmonize.types import BackwardCall, Harmonized, Scales, Stats, check_flat, read_stats


class ElementwiseHarmonizer(Harmonizer):
    """Sign-agreement gradient surgery, coordinate by coordinate (REFERENCE 2).

    A coordinate CONFLICTS when g1 and g2 have strictly opposite signs there. Agreeing
    coordinates (including those where one gradient is exactly zero) receive the plain sum;
    conflicting ones receive `fill` (zero for Agr-Sum, scaled noise for Agr-Rand), split equally
    between h1 and h2 so that ``update == h1 + h2``. `reduce` gives per-tensor statistics whose
    sums over the measure scope `fill` may use (accumulated tensor by tensor, one sync).

    Mansilla et al.'s code keeps a coordinate only when all signs are equal AND nonzero; here a
    zero is not a conflict, because in UDA some parameters (heads) are reached by one loss only
    and would otherwise never be updated.
    """

    elementwise = True
    extra_backward = 1

    def reduce(self, agree_sum: Tensor, conflict: Tensor) -> Tensor:
        """Per-tensor statistics (1-D float64) summed over the measure scope; none by default."""
        return torch.zeros(0, dtype=torch.float64, device=agree_sum.device)

    @abstractmethod
    def fill(self, conflict: Tensor, dtype: torch.dtype, totals: Sequence[float]
             ) -> Tensor | None:
        """Values at conflicting coordinates (shape of `conflict`, `dtype`), or None for 0."""

    def fallback(self, totals: Sequence[float]) -> str | None:
        """Name of a degenerate case given the measure-scope totals (None: regular)."""
        return None

    # ---- per-tensor machinery shared by `harmonize` and `backward` ----
    @staticmethod
    def _split(a: Tensor | None, b: Tensor | None, like: Tensor
               ) -> tuple[Tensor, Tensor, Tensor]:
        """(a, b, conflict mask) in the working dtype; None counts as zeros."""
        work = torch.promote_types(like.dtype, torch.float32)
        zero = torch.zeros(like.shape, dtype=work, device=like.device)
        a = zero if a is None else a.detach().to(work)
        b = zero if b is None else b.detach().to(work)
        conflict = (torch.sign(a) * torch.sign(b)) < 0
        return a, b, conflict

    def _totals(self, pair_grads: Iterable[tuple[Tensor | None, Tensor | None, Tensor]]
                ) -> list[float]:
        total: Tensor | None = None
        for a, b, like in pair_grads:
            a, b, conflict = self._split(a, b, like)
            total = add_to(total, self.reduce(torch.where(conflict, 0.0, a + b), conflict))
        return [] if total is None else total.tolist()

    def _surgery(self, a: Tensor | None, b: Tensor | None, like: Tensor,
                 totals: Sequence[float]) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """(a, b, conflict, fill) for one tensor, in the working dtype."""
        a, b, conflict = self._split(a, b, like)
        return a, b, conflict, self.fill(conflict, a.dtype, totals)

    @staticmethod
    def _update(a: Tensor, b: Tensor, conflict: Tensor, filled: Tensor | None,
                dtype: torch.dtype, scales: Scales = (1.0, 1.0)) -> Tensor:
        """``s1*h1 + s2*h2``: scaled sum where the signs agree, scaled fill where they don't."""
        s1, s2 = scales
        kept = a + b if scales == (1.0, 1.0) else torch.add(a * s1, b, alpha=s2)
        if filled is not None and s1 + s2 != 2.0:
            filled = filled * ((s1 + s2) / 2)
        return saturate(torch.where(conflict, 0.0 if filled is None else filled, kept), dtype)

    def harmonize(self, g1: Tensor, g2: Tensor) -> Harmonized:
        check_flat(g1, g2)
        stats = pair_stats([g1], [g2])
        totals = self._totals([(g1, g2, g1)])
        a, b, conflict, filled = self._surgery(g1, g2, g1, totals)
        half = 0.0 if filled is None else filled / 2
        return Harmonized(
            update=self._update(a, b, conflict, filled, g1.dtype),
            h1=saturate(torch.where(conflict, half, a), g1.dtype),
            h2=saturate(torch.where(conflict, half, b), g1.dtype),
            w1=None, w2=None, cos=float(stats.cos), conflict=bool(stats.conflict),
            fallback=self._fallback(stats, totals))

    def _fallback(self, stats: PairStats, totals: Sequence[float]) -> str | None:
        return "zero_gradient" if bool(stats.has_zero) else self.fallback(totals)

    def accumulate(self, call: BackwardCall) -> Stats:
        """Two backward passes; measure tensors are processed (and noise drawn) in order."""
        s1, s2 = call.scales
        pair: GradientPair = task_gradients(call.loss1, call.loss2, call.params, call.measure,
                                            keep_graph=call.retain_graph)
        stats = pair_stats(*pair.on_measure())
        totals = self._totals((*pair.of(t), t) for t in pair.measure)
        update_sq: Tensor | None = None
        for t in pair.measure:
            a, b = pair.of(t)
            update = self._update(*self._surgery(a, b, t, totals), t.dtype, (s1, s2))
            flat = update.reshape(-1).double()
            update_sq = add_to(update_sq, torch.dot(flat, flat))
            if pair.is_param(t) and (a is not None or b is not None):
                accumulate_grad(t, update)
            pair.release(t)
        for p in pair.params:
            a, b = pair.of(p)
            if not pair.in_measure(p) and (a is not None or b is not None):
                accumulate_grad(p, linear_combination(a, s1, b, s2, like=p))
            pair.release(p)
        if update_sq is None:
            update_sq = torch.zeros((), dtype=torch.float64, device=stats.dot.device)
        return read_stats(stats, None, update_sq, self._fallback(stats, totals))
