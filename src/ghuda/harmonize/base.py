"""Harmonizer base classes: pair statistics, coefficient form, and the two-pass backward.

A harmonizer turns the gradients g1 = grad L1 and g2 = grad L2 (REFERENCE 1.1) into one update.
Two families exist:

* vector harmonizers (sum, gh, ghpp, ghpp_exact, pcgrad) are linear in (g1, g2) with scalar
  coefficients that depend only on d = <g1, g2>, |g1|^2 and |g2|^2:
  ``h1 = a11 g1 + a12 g2``, ``h2 = a21 g1 + a22 g2``, ``update = h1 + h2 = w1 g1 + w2 g2``.
  Because the coefficients are scalars, `backward` accumulates the three reductions tensor by
  tensor and never builds a flat copy of the model;
* element-wise harmonizers (agr_sum, agr_rand) decide per coordinate; they cannot be written
  as a weighted loss and report ``w1 = w2 = None``.

Reductions are accumulated in float64 whatever the gradient dtype, so norms from 1e-20 to 1e20
and float16/bfloat16 gradients neither overflow nor underflow.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

MODES = ("direct", "weighted_loss")


@dataclass(frozen=True)
class Harmonized:
    """Result of harmonizing two flat gradients (`ghuda.harmonize.harmonize`)."""

    update: Tensor
    h1: Tensor
    h2: Tensor
    w1: float | None
    w2: float | None
    cos: float
    conflict: bool


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
    def cos(self) -> float:
        """Cosine of the angle, clamped to [-1, 1]; 0 when either gradient is zero."""
        if not (self.sq1 > 0.0 and self.sq2 > 0.0):
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


@dataclass(frozen=True)
class Coefficients:
    """h1 = a11 g1 + a12 g2 and h2 = a21 g1 + a22 g2; `fallback` names a degenerate case."""

    a11: float
    a12: float
    a21: float
    a22: float
    fallback: str | None = None

    @property
    def w1(self) -> float:
        return self.a11 + self.a21

    @property
    def w2(self) -> float:
        return self.a12 + self.a22


PLAIN_SUM = Coefficients(1.0, 0.0, 0.0, 1.0)


def pair_stats(g1: Sequence[Tensor | None], g2: Sequence[Tensor | None]) -> PairStats:
    """Accumulate <g1, g2>, |g1|^2 and |g2|^2 tensor by tensor in float64 (None counts as 0)."""
    dot = sq1 = sq2 = 0.0
    for a, b in zip(g1, g2, strict=True):
        a64 = None if a is None else a.detach().reshape(-1).double()
        b64 = None if b is None else b.detach().reshape(-1).double()
        if a64 is not None:
            sq1 += float(torch.dot(a64, a64))
        if b64 is not None:
            sq2 += float(torch.dot(b64, b64))
        if a64 is not None and b64 is not None:
            dot += float(torch.dot(a64, b64))
    return PairStats(dot=dot, sq1=sq1, sq2=sq2)


def linear_combination(a: Tensor | None, wa: float, b: Tensor | None, wb: float,
                       like: Tensor) -> Tensor:
    """wa*a + wb*b in the dtype of `like`, computed in float32 or wider and saturated.

    Half-precision gradients are combined in float32 and clamped to the dtype's finite range,
    so large harmonization weights cannot create an Inf.
    """
    work = torch.promote_types(like.dtype, torch.float32)
    out = torch.zeros(like.shape, dtype=work, device=like.device)
    if a is not None and wa != 0.0:
        out.add_(a.detach().to(work), alpha=wa)
    if b is not None and wb != 0.0:
        out.add_(b.detach().to(work), alpha=wb)
    if like.dtype != work:
        info = torch.finfo(like.dtype)
        out.clamp_(info.min, info.max)
    return out.to(like.dtype)


def _unique(tensors: Iterable[Tensor]) -> list[Tensor]:
    seen: set[int] = set()
    out: list[Tensor] = []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _task_grads(loss: Tensor, tensors: Sequence[Tensor], retain_graph: bool
                ) -> list[Tensor | None]:
    """Gradient of one loss w.r.t. `tensors`; None where the loss does not reach a tensor."""
    if not loss.requires_grad:
        return [None] * len(tensors)
    return list(torch.autograd.grad(loss, tensors, retain_graph=retain_graph,
                                    allow_unused=True))


def _accumulate_grad(param: Tensor, grad: Tensor) -> None:
    if param.grad is None:
        param.grad = grad
    else:
        param.grad.add_(grad)


class Harmonizer(ABC):
    """Common interface; subclasses implement `VectorHarmonizer` or `ElementwiseHarmonizer`.

    Options are keyword arguments validated by `__init__`; `mode` is "direct" (two backward
    passes, gradients written to ``.grad``) or "weighted_loss" (the released three-pass
    procedure: both gradients, then ``(w1*L1 + w2*L2).backward()``, REFERENCE 1.4).
    """

    name: ClassVar[str] = ""
    elementwise: ClassVar[bool] = False
    # Extra passes per harmonized step beyond one forward and one backward (cost accounting).
    extra_forward: ClassVar[int] = 0
    extra_backward: ClassVar[int] = 1

    def __init__(self, mode: str = "direct") -> None:
        if mode not in MODES:
            raise ValueError(f"harmonizer {self.name!r}: mode must be one of {MODES}, "
                             f"got {mode!r}")
        if mode == "weighted_loss" and self.elementwise:
            raise ValueError(f"harmonizer {self.name!r} is element-wise and has no "
                             "weighted-loss form; use mode='direct'")
        self.mode = mode

    # ---- state, for checkpoints (harmonizers with random generators override) ----
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"harmonizer {self.name!r} has no state, got keys {sorted(state)}")

    @abstractmethod
    def harmonize(self, g1: Tensor, g2: Tensor) -> Harmonized:
        """Harmonize two flat gradients."""

    @abstractmethod
    def backward(self, loss1: Tensor, loss2: Tensor, params: Iterable[Tensor],
                 measure: Iterable[Tensor] | None = None, *, retain_graph: bool = False,
                 with_stats: bool = True) -> dict[str, float | bool | None]:
        """Accumulate the harmonized gradient of (loss1, loss2) into ``.grad`` of `params`."""


class VectorHarmonizer(Harmonizer):
    """Harmonizers whose update is ``w1 g1 + w2 g2`` with pair-level scalar coefficients."""

    @abstractmethod
    def coefficients(self, stats: PairStats) -> Coefficients:
        """The 2x2 coefficients for this pair; must be finite for every input."""

    def harmonize(self, g1: Tensor, g2: Tensor) -> Harmonized:
        _check_flat(g1, g2)
        stats = pair_stats([g1], [g2])
        c = self.coefficients(stats)
        h1 = linear_combination(g1, c.a11, g2, c.a12, like=g1)
        h2 = linear_combination(g1, c.a21, g2, c.a22, like=g1)
        update = linear_combination(g1, c.w1, g2, c.w2, like=g1)
        return Harmonized(update=update, h1=h1, h2=h2, w1=c.w1, w2=c.w2,
                          cos=stats.cos, conflict=stats.conflict)

    def backward(self, loss1: Tensor, loss2: Tensor, params: Iterable[Tensor],
                 measure: Iterable[Tensor] | None = None, *, retain_graph: bool = False,
                 with_stats: bool = True) -> dict[str, float | bool | None]:
        params = _unique(params)
        measure_list = params if measure is None else _unique(measure)
        if not with_stats and self.name == "sum" and self.mode == "direct":
            # Plain sum without statistics: one backward pass suffices.
            (loss1 + loss2).backward(inputs=params, retain_graph=retain_graph)
            return {}
        tensors = _unique([*params, *measure_list])
        index = {id(t): i for i, t in enumerate(tensors)}
        third_pass = self.mode == "weighted_loss"
        g1 = _task_grads(loss1, tensors, retain_graph=True)
        g2 = _task_grads(loss2, tensors, retain_graph=retain_graph or third_pass)
        m = [index[id(t)] for t in measure_list]
        stats = pair_stats([g1[i] for i in m], [g2[i] for i in m])
        c = self.coefficients(stats)
        if third_pass:
            (c.w1 * loss1 + c.w2 * loss2).backward(inputs=params, retain_graph=retain_graph)
        else:
            for p in params:
                i = index[id(p)]
                _accumulate_grad(p, linear_combination(g1[i], c.w1, g2[i], c.w2, like=p))
        update_sq = c.w1**2 * stats.sq1 + 2 * c.w1 * c.w2 * stats.dot + c.w2**2 * stats.sq2
        return {
            "cos": stats.cos,
            "angle_deg": math.degrees(stats.theta),
            "conflict": stats.conflict,
            "w1": c.w1,
            "w2": c.w2,
            "norm1": stats.norm1,
            "norm2": stats.norm2,
            "norm_update": math.sqrt(max(update_sq, 0.0)),
            "fallback": c.fallback,
        }


def _check_flat(g1: Tensor, g2: Tensor) -> None:
    if g1.dim() != 1 or g2.dim() != 1 or g1.shape != g2.shape:
        raise ValueError(f"harmonize expects two 1-D tensors of equal length, got shapes "
                         f"{tuple(g1.shape)} and {tuple(g2.shape)}")


class ElementwiseHarmonizer(Harmonizer):
    """Harmonizers that decide coordinate by coordinate (gradient surgery, REFERENCE 2).

    Subclasses implement `reduce` (statistics summed over the measure scope, tensor by tensor)
    and `combine` (the harmonized update and parts of one tensor given those totals).
    Parameters outside the measure scope receive the plain sum g1 + g2.
    """

    elementwise = True

    @abstractmethod
    def reduce(self, g1: Tensor, g2: Tensor) -> dict[str, float]:
        """Per-tensor statistics whose sums over the measure scope `combine` needs."""

    @abstractmethod
    def combine(self, g1: Tensor, g2: Tensor, totals: dict[str, float]
                ) -> tuple[Tensor, Tensor, Tensor]:
        """(update, h1, h2) for one tensor."""
