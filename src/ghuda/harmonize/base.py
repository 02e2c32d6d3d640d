"""Harmonizer base classes: the result type, the coefficient form, and the two-pass backward.

A harmonizer turns the gradients g1 = grad L1 and g2 = grad L2 (REFERENCE 1.1) into one update.
Two families exist:

* vector harmonizers (sum, gh, ghpp, ghpp_exact, pcgrad) are linear in (g1, g2) with scalar
  coefficients that depend only on d = <g1, g2>, |g1|^2 and |g2|^2:
  ``h1 = a11 g1 + a12 g2``, ``h2 = a21 g1 + a22 g2``, ``update = h1 + h2 = w1 g1 + w2 g2``.
  The coefficients are float64 tensors computed on the device (fallbacks selected with
  ``torch.where``), and `backward` works on two flat rows (`ghuda.harmonize.flat`): its
  number of kernels does not grow with the number of parameter tensors, and without
  statistics it reads nothing back to the host. They also offer ``mode="weighted_loss"``,
  the released three-pass procedure (REFERENCE 1.4);
* element-wise harmonizers (agr_sum, agr_rand; REFERENCE 2) decide coordinate by coordinate
  from the signs of g1 and g2; they have no weighted-loss form and report ``w1 = w2 = None``.

`backward` semantics shared by both families:

* it ACCUMULATES into ``.grad`` like ``loss.backward()`` (zero the gradients first), so several
  pairs can be harmonized into the same parameters; a parameter reached by neither loss keeps
  its ``.grad`` untouched (as ``loss.backward()`` would), so optimizers skip it;
* `measure` (default `params`) is the scope on which the angle, weights and element-wise
  statistics are computed. Measure tensors that are not in `params` serve the statistics only
  (their ``.grad`` is not written). Parameters outside `measure` receive ``w1*g1 + w2*g2`` of
  their own gradients (vector harmonizers with ``outside="sum"``, and element-wise ones: the
  plain sum ``g1 + g2``);
* `scales` = (s1, s2) are constant loss weights applied AFTER harmonization (how the released
  code applies CDAN/GVB's trade-off, REFERENCE 1.4): vector harmonizers write
  ``s1*w1*g1 + s2*w2*g2`` with (w1, w2) computed on the unscaled gradients; element-wise ones
  write ``s1*h1 + s2*h2``. Statistics report the unscaled w1, w2 and the norm of the update
  actually written;
* cost: exactly two backward passes in "direct" mode, three in "weighted_loss" mode.

Degenerate cases (documented fallbacks, reported in the ``fallback`` statistic):

* ``"zero_gradient"``: a gradient is exactly zero on the measure scope; the angle is undefined
  and every harmonizer returns the plain sum (which is then the other gradient);
* ``"antiparallel"``: `ghpp_exact` only (see there); GH and PCGrad have an exact, finite limit;
* ``"weighted_loss_overflow"``: in weighted-loss mode, a weighted loss would overflow its dtype
  (weights beyond ~1e38 when the two norms differ by ~1e20); the already computed gradients are
  then written directly, which gives the same update;
* ``"no_agreeing_coordinate"``: `agr_rand` only (see there);
* non-finite gradients (inf/NaN) raise `NonFiniteGradientError` naming the loss, whenever
  statistics are computed (``with_stats=True``, the default, and every element-wise or
  weighted-loss step). A vector harmonizer's direct step without statistics reads nothing
  back to check: the non-finite values reach ``.grad`` (a float16 loss scaler then skips the
  step; otherwise the next loss is non-finite and the engine stops there).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ghuda.harmonize import flat
from ghuda.harmonize.grads import GradientPair, accumulate_grad, task_gradients
from ghuda.harmonize.numerics import (
    NonFiniteGradientError,
    PairStats,
    add_to,
    check_finite,
    linear_combination,
    pair_stats,
    saturate,
)

MODES = ("direct", "weighted_loss")
Stats = dict[str, float | bool | str | None]

__all__ = [
    "FALLBACKS",
    "MODES",
    "Coefficients",
    "ConflictHarmonizer",
    "ElementwiseHarmonizer",
    "Harmonized",
    "Harmonizer",
    "NonFiniteGradientError",
    "PairStats",
    "VectorHarmonizer",
]


@dataclass(frozen=True)
class Harmonized:
    """Result of harmonizing two flat gradients (`ghuda.harmonize.harmonize`).

    ``update == h1 + h2`` for every harmonizer; `fallback` names a degenerate case or is None.
    """

    update: Tensor
    h1: Tensor
    h2: Tensor
    w1: float | None
    w2: float | None
    cos: float
    conflict: bool
    fallback: str | None = None


# Fallback names a vector harmonizer's coefficients can carry, by code (index).
FALLBACKS: tuple[str | None, ...] = (None, "zero_gradient", "antiparallel")


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


Scales = tuple[float, float]


def check_scales(scales: Sequence[float]) -> Scales:
    """Validated post-harmonization loss weights (two finite numbers)."""
    values = tuple(float(x) for x in scales)
    if len(values) != 2 or not all(math.isfinite(x) for x in values):
        raise ValueError(f"harmonizer backward: scales must be two finite numbers, got "
                         f"{tuple(scales)!r}")
    return values[0], values[1]


def _combination_sq(stats: PairStats, e: Tensor) -> Tensor:
    """|e1 g1 + e2 g2|^2 from the pair's reductions (float64 tensor)."""
    sq = e[0] * e[0] * stats.sq1 + 2.0 * e[0] * e[1] * stats.dot + e[1] * e[1] * stats.sq2
    return sq.clamp(min=0.0)


def _check_flat(g1: Tensor, g2: Tensor) -> None:
    if g1.dim() != 1 or g2.dim() != 1 or g1.shape != g2.shape:
        raise ValueError(f"harmonize expects two 1-D tensors of equal length, got shapes "
                         f"{tuple(g1.shape)} and {tuple(g2.shape)}")
    if g1.dtype != g2.dtype or not g1.is_floating_point():
        raise ValueError(f"harmonize expects two floating-point tensors of one dtype, got "
                         f"{g1.dtype} and {g2.dtype}")
    if g1.device != g2.device:
        raise ValueError(f"harmonize expects tensors on one device, got {g1.device} and "
                         f"{g2.device}")


def read_stats(stats: PairStats, weights: Tensor | None, update_sq: Tensor,
               fallback: Tensor | str | None) -> Stats:
    """The statistics dict, read from the device in ONE transfer; raises
    `NonFiniteGradientError` when a gradient is not finite."""
    parts = [stats.sq1, stats.sq2, stats.cos, stats.norm1, stats.norm2, update_sq,
             stats.conflict.double()]
    if weights is not None:
        parts.append(weights)
    if isinstance(fallback, Tensor):
        parts.append(fallback.reshape(1).double())
    values = torch.cat([x.reshape(-1).double() for x in parts]).tolist()
    sq1, sq2, cos, norm1, norm2, update, conflict = values[:7]
    check_finite(sq1, sq2)
    w1, w2 = values[7:9] if weights is not None else (None, None)
    if isinstance(fallback, Tensor):
        fallback = FALLBACKS[int(values[-1])]
    return {
        "cos": cos,
        "angle_deg": math.degrees(math.acos(cos)),
        "conflict": bool(conflict),
        "w1": w1,
        "w2": w2,
        "norm1": norm1,
        "norm2": norm2,
        "norm_update": math.sqrt(update),
        "fallback": fallback,
    }


@dataclass(frozen=True)
class StepContext:
    """What the engine knows about the step a harmonized pair belongs to.

    `first` and `second` are the pair's loss names; `names[i]` and `lrs[i]` belong to
    ``params[i]`` of `backward` (names of ``Method.named_parameters()``, current learning
    rates); `reevaluate` maps substituted parameters (by name) to the stage's losses under the
    run's autocast (None when the stage has none); `loss_scale` is the factor the engine
    applied to loss1 and loss2 (mixed precision); `where` names the method and stage for
    error messages. Most harmonizers ignore it.
    """

    first: str
    second: str
    names: Sequence[str] = ()
    lrs: Sequence[float] = ()
    reevaluate: Callable[[Mapping[str, Tensor]], Mapping[str, Tensor]] | None = None
    loss_scale: float = 1.0
    where: str = ""


class Harmonizer(ABC):
    """Common interface of every harmonizer (`ghuda.harmonize.make` builds one).

    Options are keyword arguments validated by `__init__`; `mode` is "direct" (two backward
    passes, gradients written to ``.grad``) or "weighted_loss" (the released three-pass
    procedure: both gradients, then ``(w1*L1 + w2*L2).backward()``, REFERENCE 1.4).
    Harmonizers that own their step (look-ahead methods) subclass this directly.
    """

    name: ClassVar[str] = ""
    elementwise: ClassVar[bool] = False
    # Extra passes per harmonized step beyond one forward and one backward (cost accounting);
    # instances in weighted_loss mode report extra_backward = 2.
    extra_forward: ClassVar[int] = 0
    extra_backward: ClassVar[int] = 1
    # False for harmonizers without a form on two flat gradients (MetaAlign: its update
    # needs the losses at look-ahead weights, from `StepContext`); their `harmonize` raises.
    flat_form: ClassVar[bool] = True

    def __init__(self, mode: str = "direct") -> None:
        if mode not in MODES:
            raise ValueError(f"harmonizer {self.name!r}: mode must be one of {MODES}, "
                             f"got {mode!r}")
        if mode == "weighted_loss" and self.elementwise:
            raise ValueError(f"harmonizer {self.name!r} is element-wise and has no "
                             "weighted-loss form; use mode='direct'")
        self.mode = mode
        if mode == "weighted_loss":
            self.extra_backward = 2

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, mode={self.mode!r})"

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
                 with_stats: bool = True, scales: Sequence[float] = (1.0, 1.0),
                 context: StepContext | None = None) -> Stats:
        """Accumulate the harmonized gradient of (loss1, loss2) into ``.grad`` of `params`.

        `context` describes the step the pair belongs to (`StepContext`); harmonizers that
        own their step (MetaAlign) need it, the others ignore it. Returns the pair
        statistics: cos, angle_deg, conflict, w1, w2, norm1, norm2, norm_update (all on the
        measure scope) and fallback; a vector harmonizer's direct step with
        ``with_stats=False`` returns ``{}`` (it reads nothing back to the host).
        """


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
        _check_flat(g1, g2)
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

    def backward(self, loss1: Tensor, loss2: Tensor, params: Iterable[Tensor],
                 measure: Iterable[Tensor] | None = None, *, retain_graph: bool = False,
                 with_stats: bool = True, scales: Sequence[float] = (1.0, 1.0),
                 context: StepContext | None = None) -> Stats:
        s1, s2 = check_scales(scales)
        weighted = self.mode == "weighted_loss"
        pair = task_gradients(loss1, loss2, params, measure,
                              keep_graph=retain_graph or weighted)
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
                  if with_stats or weighted else {})
        if weighted:
            total = (e[0].to(loss1.dtype) * loss1.reshape(())
                     + e[1].to(loss2.dtype) * loss2.reshape(()))
            if bool(torch.isfinite(total)):
                if total.requires_grad:
                    total.backward(inputs=pair.params, retain_graph=retain_graph)
                return values
            values["fallback"] = "weighted_loss_overflow"
        inside = (e[0], e[1])
        outside = inside if self.outside == "weighted" else (
            torch.full_like(e[0], s1), torch.full_like(e[1], s2))
        for group in groups:
            group.write(inside, outside)
        return values if with_stats else {}


class ConflictHarmonizer(VectorHarmonizer):
    """Vector harmonizers that act only under conflict: the plain sum otherwise."""

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
        _check_flat(g1, g2)
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

    def backward(self, loss1: Tensor, loss2: Tensor, params: Iterable[Tensor],
                 measure: Iterable[Tensor] | None = None, *, retain_graph: bool = False,
                 with_stats: bool = True, scales: Sequence[float] = (1.0, 1.0),
                 context: StepContext | None = None) -> Stats:
        """Two backward passes; measure tensors are processed (and noise drawn) in order."""
        s1, s2 = check_scales(scales)
        pair: GradientPair = task_gradients(loss1, loss2, params, measure,
                                            keep_graph=retain_graph)
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
