"""One harmonized optimisation step: a method's `Stage` -> gradients -> optimizer step.

`run_stage` checks the stage's losses are finite, zeroes the gradients, backpropagates every
harmonized `Pair` through the harmonizer (params = the stage's stepped groups, measure = the
pair's groups, or the stepped groups under ``harmonizer.measure: stepped``; L1 and L2 swapped
under ``harmonizer.order: swapped``), backpropagates the remaining losses as one plain sum, and
steps the stage's groups; at logged steps the record carries the stage's `monitor` scalars.
Every harmonizer receives the step's `StepContext` (names and
learning rates of the stepped parameters, the stage's re-evaluation under the run's autocast);
those that own their step (MetaAlign) use it. Statistics are requested only when `log` is set,
so the ``sum`` baseline costs one backward pass on the other steps. It needs no run folder.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ghuda.engine.amp import LossScaler
from ghuda.engine.optim import GroupOptimizers
from ghuda.harmonize import Harmonizer, NonFiniteGradientError, StepContext
from ghuda.methods.base import Pair, Stage


class NonFiniteLoss(RuntimeError):
    """A loss (or a harmonized gradient) became NaN or Inf; the message names the iteration,
    stage and loss, the attributes hold them for ``failure.json``."""

    def __init__(self, message: str, iteration: int, stage: str, what: str) -> None:
        super().__init__(message)
        self.iteration, self.stage, self.what = iteration, stage, what


@dataclass
class StepParts:
    """What a stage is backpropagated with: the method's parameters and names, its optimizers,
    the harmonizer and its ``order`` / ``measure`` options, the loss scaler, the autocast
    context of `reevaluate`, and the method's and harmonizer's names for error messages."""

    method: nn.Module
    optim: GroupOptimizers
    harmonizer: Harmonizer
    scaler: LossScaler
    autocast: Callable[[], AbstractContextManager[Any]]
    order: str = "released"
    measure: str = "released"
    method_name: str = ""
    harmonizer_name: str = ""
    _names: dict[int, str] = dataclasses.field(default_factory=dict)
    _checked: set[str] = dataclasses.field(default_factory=set)

    def __post_init__(self) -> None:
        self._names = {id(p): n for n, p in self.method.named_parameters()}


def check_stage(parts: StepParts, stage: Stage) -> None:
    """Validate a stage's structure once per stage name (clear errors for method authors)."""
    if stage.name in parts._checked:
        return
    where = f"method {parts.method_name!r}, stage {stage.name!r}"
    groups = set(parts.optim.params)
    for g in stage.step:
        if g not in groups:
            raise ValueError(f"{where}: steps unknown group {g!r}; groups: {sorted(groups)}")
    used: set[str] = set()
    for pair in stage.pairs:
        for name in (pair.first, pair.second):
            if name not in stage.losses:
                raise ValueError(f"{where}: pair names loss {name!r}, losses are "
                                 f"{sorted(stage.losses)}")
            if name in used:
                raise ValueError(f"{where}: loss {name!r} is in two pairs")
            used.add(name)
        for g in pair.measure:
            if g not in groups:
                raise ValueError(f"{where}: pair measures unknown group {g!r}")
    parts._checked.add(stage.name)


def configured_pairs(stage: Stage, order: str, measure: str) -> list[Pair]:
    """The stage's pairs under ``harmonizer.order`` (swapped: L1 and L2 exchange, with their
    scales) and ``harmonizer.measure`` (stepped: every stepped group)."""
    out = []
    for pair in stage.pairs:
        if order == "swapped":
            pair = Pair(pair.second, pair.first, pair.measure,
                        scales=(pair.scales[1], pair.scales[0]))
        if measure == "stepped":
            pair = dataclasses.replace(pair, measure=tuple(stage.step))
        out.append(pair)
    return out


def step_context(parts: StepParts, stage: Stage, pair: Pair, params: list[nn.Parameter]
                 ) -> StepContext:
    """The harmonizer's view of this step: names and learning rates of `params`, the stage's
    re-evaluation under the run's autocast, the loss names and the loss scale."""
    fn, autocast = stage.reevaluate, parts.autocast

    def reevaluate(substituted: Any) -> dict[str, Any]:
        with autocast():
            return fn(substituted)  # type: ignore[misc]

    return StepContext(
        first=pair.first, second=pair.second, names=[parts._names[id(p)] for p in params],
        lrs=parts.optim.learning_rates(stage.step),
        reevaluate=None if fn is None else reevaluate,
        loss_scale=parts.scaler.scale if parts.scaler.enabled else 1.0,
        where=f"method {parts.method_name!r}, stage {stage.name!r}")


def non_finite(parts: StepParts, iteration: int, stage: Stage, what: str) -> NonFiniteLoss:
    """The error of a non-finite loss or gradient at 0-based `iteration`."""
    message = (f"non-finite {what} at iteration {iteration + 1} (stage {stage.name!r}, method "
               f"{parts.method_name!r}, harmonizer {parts.harmonizer_name!r}); stopping. Lower "
               "train.lr or check the method's hyper-parameters.")
    return NonFiniteLoss(message, iteration + 1, stage.name, what)


def run_stage(parts: StepParts, stage: Stage, iteration: int, log: bool
              ) -> dict[str, Any] | None:
    """Backpropagate one stage and step its groups; returns its history record when `log`.

    Pairs go through the harmonizer (``scales`` applied after harmonization), remaining losses
    are one plain sum; every backward but the last keeps the graph.
    """
    check_stage(parts, stage)
    names = list(stage.losses)
    values = torch.stack([stage.losses[n].detach().float().reshape(()) for n in names])
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        k = int((~finite).nonzero()[0])
        raise non_finite(parts, iteration, stage, f"loss {names[k]!r} = {float(values[k])}")
    for p in parts.method.parameters():
        p.grad = None
    params = parts.optim.parameters(stage.step)
    pairs = configured_pairs(stage, parts.order, parts.measure)
    paired = {n for pair in pairs for n in (pair.first, pair.second)}
    rest = [stage.losses[n] for n in names if n not in paired and stage.losses[n].requires_grad]
    passes = len(pairs) + (1 if rest else 0)
    stats = []
    scale = parts.scaler.scale_loss
    try:
        for k, pair in enumerate(pairs):
            s = parts.harmonizer.backward(
                scale(stage.losses[pair.first]), scale(stage.losses[pair.second]), params,
                parts.optim.parameters(pair.measure), retain_graph=k < passes - 1,
                with_stats=log, scales=pair.scales,
                context=step_context(parts, stage, pair, params))
            if log:
                stats.append({"first": pair.first, "second": pair.second,
                              **parts.scaler.unscale_stats(s)})
    except NonFiniteGradientError as err:
        if not parts.scaler.enabled:
            raise non_finite(parts, iteration, stage, f"gradient: {err}") from None
        # float16 overflow: skip this step (the scaler halves its scale below)
        for p in params:
            if p.grad is not None:
                p.grad.fill_(math.inf)
        rest, stats = [], []
    if rest:
        total = rest[0] if len(rest) == 1 else torch.stack(
            [r.float().reshape(()) for r in rest]).sum()
        scale(total).backward(inputs=params)
    if parts.scaler.unscale_and_check(params):
        parts.optim.step(stage.step)
    if not log:
        return None
    record = {"stage": stage.name, "losses": dict(zip(names, values.tolist(), strict=True)),
              "pairs": stats}
    if stage.monitor:
        record["monitor"] = {k: float(v) for k, v in stage.monitor.items()}
    return record
