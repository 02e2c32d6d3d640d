"""What a harmonizer receives and returns: the call of one `backward`, the engine's
`StepContext`, the flat-form result `Harmonized`, and the statistics read back from the device
(`read_stats`). `ghuda.harmonize.base` documents the semantics."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ghuda.harmonize.numerics import PairStats, check_finite

Stats = dict[str, float | bool | str | None]
Scales = tuple[float, float]

# Fallback names a vector harmonizer's coefficients can carry, by code (index).
FALLBACKS: tuple[str | None, ...] = (None, "zero_gradient", "antiparallel")


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


@dataclass(frozen=True)
class BackwardCall:
    """The arguments of one `Harmonizer.backward` call (documented there), `scales` checked."""

    loss1: Tensor
    loss2: Tensor
    params: Iterable[Tensor]
    measure: Iterable[Tensor] | None
    retain_graph: bool
    with_stats: bool
    scales: Scales
    context: StepContext | None


def check_scales(scales: Sequence[float]) -> Scales:
    """Validated post-harmonization loss weights (two finite numbers)."""
    values = tuple(float(x) for x in scales)
    if len(values) != 2 or not all(math.isfinite(x) for x in values):
        raise ValueError(f"harmonizer backward: scales must be two finite numbers, got "
                         f"{tuple(scales)!r}")
    return values[0], values[1]


def check_flat(g1: Tensor, g2: Tensor) -> None:
    """Raise a ValueError unless g1 and g2 are 1-D floating-point tensors of one length,
    dtype and device (the input of `Harmonizer.harmonize`)."""
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
