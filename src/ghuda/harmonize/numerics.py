"""Numerically safe reductions and combinations shared by all harmonizers (REFERENCE 1.1).

* `PairStats` holds ``d = <g1, g2>``, ``|g1|^2`` and ``|g2|^2`` as float64 tensors, so norms
  from 1e-20 to 1e20 and float16/bfloat16 gradients neither overflow nor underflow; vector
  harmonizers get it from `ghuda.harmonize.flat.gram` without a host read, the per-tensor
  paths (element-wise harmonizers, MetaAlign) from `pair_stats`, which accumulates tensor by
  tensor and raises `NonFiniteGradientError` on a non-finite reduction (one sync).
* `linear_combination` forms ``wa*a + wb*b`` in float32 or wider, switches to float64 when a
  weight would lose precision or overflow in float32 (weights up to ~1e40 arise when the two
  norms differ by 1e20), and saturates half-precision results to the dtype's finite range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

# Weights whose magnitude lies outside [2^-60, 2^60] are applied in float64: products of such a
# weight with float32 gradients of norm up to 1e20 may leave float32's normal range.
_FLOAT32_SAFE_WEIGHT = (2.0**-60, 2.0**60)


class NonFiniteGradientError(ValueError):
    """A task gradient holds inf/NaN (or its squared norm overflows float64)."""


@dataclass(frozen=True)
class PairStats:
    """Reductions of a gradient pair over the measure scope: float64 0-d tensors on the
    gradients' device (REFERENCE 1.1). Every derived quantity is a tensor too, so that a
    harmonizer's coefficients never need a value on the host."""

    dot: Tensor
    sq1: Tensor
    sq2: Tensor

    @cached_property
    def norm1(self) -> Tensor:
        return self.sq1.sqrt()

    @cached_property
    def norm2(self) -> Tensor:
        return self.sq2.sqrt()

    @cached_property
    def has_zero(self) -> Tensor:
        """Either gradient is exactly zero on the measure scope: the angle is undefined."""
        return (self.sq1 == 0.0) | (self.sq2 == 0.0)

    @cached_property
    def cos(self) -> Tensor:
        """Cosine of the angle, clamped to [-1, 1]; 0 when either gradient is zero."""
        cos = (self.dot / self.norm1) / self.norm2  # two divisions: |g1||g2| may overflow
        return torch.where(self.has_zero, 0.0, cos.clamp(-1.0, 1.0))

    @cached_property
    def theta(self) -> Tensor:
        """Angle between g1 and g2 in radians, in [0, pi]."""
        return self.cos.acos()

    @cached_property
    def conflict(self) -> Tensor:
        """Conflict means an obtuse angle, d < 0 (REFERENCE 1.1)."""
        return self.cos < 0.0


def check_finite(sq1: float, sq2: float) -> None:
    """Raise `NonFiniteGradientError` when a squared norm (read on the host) is not finite."""
    for which, value in (("first", sq1), ("second", sq2)):
        if not math.isfinite(value):
            raise NonFiniteGradientError(
                f"the gradient of the {which} loss is not finite on the measure scope "
                f"(inf/NaN, or a squared norm beyond float64's range): got |g|^2 = {value}")


def _sq_dot(a: Tensor | None, b: Tensor | None, like: Tensor) -> Tensor:
    """[<a, b>, |a|^2, |b|^2] in float64 on `like`'s device; None counts as zero."""
    a64 = None if a is None else a.detach().reshape(-1).double()
    b64 = None if b is None else b.detach().reshape(-1).double()
    zero = torch.zeros((), dtype=torch.float64, device=like.device)
    return torch.stack([
        zero if a64 is None or b64 is None else torch.dot(a64, b64),
        zero if a64 is None else torch.dot(a64, a64),
        zero if b64 is None else torch.dot(b64, b64),
    ])


def add_to(total: Tensor | None, part: Tensor) -> Tensor:
    """Running sum of per-tensor reductions, kept on the device of the first part."""
    return part if total is None else total + part.to(total.device)


def pair_stats(g1: Sequence[Tensor | None], g2: Sequence[Tensor | None]) -> PairStats:
    """Accumulate <g1, g2>, |g1|^2 and |g2|^2 tensor by tensor in float64 (None counts as 0).

    One device synchronisation in total. Raises `NonFiniteGradientError` when a gradient
    holds inf/NaN: no harmonizer can give it a meaning, and a silent NaN step would corrupt
    every parameter.
    """
    total: Tensor | None = None
    for a, b in zip(g1, g2, strict=True):
        like = a if a is not None else b
        if like is None:
            continue
        total = add_to(total, _sq_dot(a, b, like))
    if total is None:
        total = torch.zeros(3, dtype=torch.float64)
    _, sq1, sq2 = total.tolist()
    check_finite(sq1, sq2)
    return PairStats(dot=total[0], sq1=total[1], sq2=total[2])


def work_dtype(dtype: torch.dtype, *weights: float) -> torch.dtype:
    """Dtype in which to combine gradients of `dtype` with these scalar `weights`."""
    work = torch.promote_types(dtype, torch.float32)
    lo, hi = _FLOAT32_SAFE_WEIGHT
    if any(w != 0.0 and not lo <= abs(w) <= hi for w in weights):
        return torch.promote_types(work, torch.float64)
    return work


def saturate(out: Tensor, dtype: torch.dtype) -> Tensor:
    """Cast `out` to `dtype`, clamping to its finite range when that range is narrower.

    Half-precision gradients are combined in float32; harmonization weights > 1 can push a
    float16 result past 65504, which saturates instead of becoming Inf.
    """
    if out.dtype == dtype:
        return out
    if torch.finfo(dtype).max < torch.finfo(out.dtype).max:
        info = torch.finfo(dtype)
        out = out.clamp(info.min, info.max)
    return out.to(dtype)


def linear_combination(a: Tensor | None, wa: float, b: Tensor | None, wb: float,
                       like: Tensor) -> Tensor:
    """``wa*a + wb*b`` with the shape and dtype of `like` (None counts as zero)."""
    work = work_dtype(like.dtype, wa, wb)
    terms = [(t.detach().to(work), w) for t, w in ((a, wa), (b, wb))
             if t is not None and w != 0.0]
    if not terms:
        return torch.zeros_like(like, memory_format=torch.contiguous_format)
    (first, w_first), *rest = terms
    out = first * w_first
    for t, w in rest:
        out.add_(t, alpha=w)
    return saturate(out.reshape(like.shape), like.dtype)
