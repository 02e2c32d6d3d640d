"""Numerically safe reductions and combinations shared by all harmonizers (REFERENCE 1.1).

* `pair_stats` accumulates ``d = <g1, g2>``, ``|g1|^2`` and ``|g2|^2`` tensor by tensor in
  float64 (never a flat copy of the model), so norms from 1e-20 to 1e20 and float16/bfloat16
  gradients neither overflow nor underflow. A non-finite reduction raises
  `NonFiniteGradientError`.
* `linear_combination` forms ``wa*a + wb*b`` in float32 or wider, switches to float64 when a
  weight would lose precision or overflow in float32 (weights up to ~1e40 arise when the two
  norms differ by 1e20), and saturates half-precision results to the dtype's finite range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# Weights whose magnitude lies outside [2^-60, 2^60] are applied in float64: products of such a
# weight with float32 gradients of norm up to 1e20 may leave float32's normal range.
_FLOAT32_SAFE_WEIGHT = (2.0**-60, 2.0**60)


class NonFiniteGradientError(ValueError):
    """A task gradient holds inf/NaN (or its squared norm overflows float64)."""


@dataclass(frozen=True)
class PairStats:
    """Reductions of a gradient pair over the measure scope, in float64 (REFERENCE 1.1)."""

    dot: float
    sq1: float
    sq2: float

    @property
    def norm1(self) -> float:
        return math.sqrt(self.sq1)

    @property
    def norm2(self) -> float:
        return math.sqrt(self.sq2)

    @property
    def has_zero(self) -> bool:
        """Either gradient is exactly zero on the measure scope: the angle is undefined."""
        return self.sq1 == 0.0 or self.sq2 == 0.0

    @property
    def cos(self) -> float:
        """Cosine of the angle, clamped to [-1, 1]; 0 when either gradient is zero."""
        if self.has_zero:
            return 0.0
        cos = (self.dot / self.norm1) / self.norm2  # two divisions: |g1||g2| may overflow
        return max(-1.0, min(1.0, cos))

    @property
    def theta(self) -> float:
        """Angle between g1 and g2 in radians, in [0, pi]."""
        return math.acos(self.cos)

    @property
    def conflict(self) -> bool:
        """Conflict means an obtuse angle, d < 0 (REFERENCE 1.1)."""
        return self.cos < 0.0


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
    dot, sq1, sq2 = (0.0, 0.0, 0.0) if total is None else total.tolist()
    for which, value in (("first", sq1), ("second", sq2)):
        if not math.isfinite(value):
            raise NonFiniteGradientError(
                f"the gradient of the {which} loss is not finite on the measure scope "
                f"(inf/NaN, or a squared norm beyond float64's range): got |g|^2 = {value}")
    return PairStats(dot=dot, sq1=sq1, sq2=sq2)


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
