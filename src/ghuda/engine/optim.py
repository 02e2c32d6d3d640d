"""One SGD optimizer per method parameter group, with the released learning-rate schedule.

Each group ``g`` of `Method.param_groups` gets its own optimizer so that a `Stage`
can step any subset of groups (MCD's steps A/B/C). Its learning rate at iteration ``i`` is
``lr0 * s(i) * lr_multipliers()[g] * d(i)`` with ``s(i) = (1 + 0.001 i)^-0.75`` (the released
"inv" schedule, REFERENCE 1.5) or ``s(i) = 1`` ("constant"), and ``d(i)`` the step decay of the
``train`` keys ``lr_decay``, ``lr_decay_every``, ``lr_milestones`` (`step_decay`; the extension
tasks set them, the UDA configs do not: ``d = 1``, which changes no bit). The schedule is a pure
function of the iteration, so resuming needs only the iteration number.

Momentum, Nesterov and weight decay come from ``train``; a method changes them per group
through `Method.optimizer_overrides` (``momentum``, ``nesterov``, ``decay_mult``): the released
CDAN/GVB code multiplies the weight decay by ``decay_mult = 2`` (effective 1e-3 for the nominal
5e-4), MCD's generator has no momentum, MCD / DWL use no Nesterov (REFERENCE 1.5b).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn

from ghuda.engine.sgd import SGD

INV_GAMMA, INV_POWER = 0.001, 0.75


def schedule(name: str, step: int) -> float:
    """Multiplier of the base learning rate at 0-based iteration `step`."""
    if name == "inv":
        return (1.0 + INV_GAMMA * step) ** (-INV_POWER)
    if name == "constant":
        return 1.0
    raise ValueError(f"train.lr_schedule: unknown schedule {name!r}; allowed: inv, constant")


def step_decay(decay: float, every: int | None, milestones: Sequence[int], step: int) -> float:
    """Step decay at 0-based iteration `step`: ``decay ** k`` with k = ``step // every`` (every
    n steps, the released retrieval script) or the number of `milestones` reached (SSD's
    schedule); 1 without either."""
    k = step // every if every is not None else sum(step >= m for m in milestones)
    return float(decay) ** k


class GroupOptimizers:
    """Named SGD optimizers, one per parameter group."""

    def __init__(self, groups: dict[str, list[nn.Parameter]], multipliers: dict[str, float],
                 train: dict[str, Any],
                 overrides: dict[str, dict[str, Any]] | None = None) -> None:
        check_groups(groups)
        overrides = overrides or {}
        unknown = sorted(set(overrides) - set(groups))
        if unknown:
            raise ValueError(f"optimizer_overrides() names unknown groups {unknown}")
        missing = sorted(set(groups) - set(multipliers))
        if missing:
            raise ValueError(f"lr_multipliers() lacks groups {missing}")
        self.lr0 = train["lr"]
        self.schedule_name = train["lr_schedule"]
        self.decay = (train.get("lr_decay", 1.0), train.get("lr_decay_every"),
                      tuple(train.get("lr_milestones", ())))
        self.multipliers = {g: float(multipliers[g]) for g in groups}
        self.params = {g: [p for p in ps if p.requires_grad] for g, ps in groups.items()}
        self.optimizers = {
            g: _sgd(ps, self.lr0 * self.multipliers[g], train, overrides.get(g, {}))
            for g, ps in self.params.items() if ps}

    def set_step(self, step: int) -> float:
        """Set every group's learning rate for iteration `step` (module docstring); returns
        the base rate ``lr0 * s(step)`` (without multiplier and step decay)."""
        base = self.lr0 * schedule(self.schedule_name, step)
        factor = step_decay(*self.decay, step)
        for g, opt in self.optimizers.items():
            for pg in opt.param_groups:
                pg["lr"] = base * self.multipliers[g] * factor
        return base

    def parameters(self, names: Iterable[str]) -> list[nn.Parameter]:
        """Trainable parameters of the named groups, in group order."""
        out: list[nn.Parameter] = []
        for name in names:
            if name not in self.params:
                raise ValueError(f"unknown parameter group {name!r}; the method declares "
                                 f"{list(self.params)}")
            out += self.params[name]
        return out

    def learning_rates(self, names: Iterable[str]) -> list[float]:
        """Current learning rate of every parameter of `parameters(names)`, in that order."""
        out: list[float] = []
        for name in names:
            if self.params.get(name):
                out += [self.optimizers[name].param_groups[0]["lr"]] * len(self.params[name])
        return out

    def step(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.optimizers:
                self.optimizers[name].step()

    def state_dict(self) -> dict[str, Any]:
        return {g: opt.state_dict() for g, opt in self.optimizers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != set(self.optimizers):
            raise ValueError(f"checkpoint optimizers {sorted(state)} do not match the "
                             f"method's groups {sorted(self.optimizers)}")
        for g, opt in self.optimizers.items():
            opt.load_state_dict(state[g])


def _sgd(params: list[nn.Parameter], lr: float, train: dict[str, Any],
         override: dict[str, Any]) -> SGD:
    """One group's SGD: the ``train`` settings changed by the method's `override`."""
    momentum = float(override.get("momentum", train["momentum"]))
    nesterov = bool(override.get("nesterov", train["nesterov"])) and momentum > 0
    decay = train["weight_decay"] * float(override.get("decay_mult", 1.0))
    return SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=decay)


def check_groups(groups: dict[str, list[nn.Parameter]]) -> None:
    """Groups must be disjoint (a parameter stepped twice would be a silent bug)."""
    seen: dict[int, str] = {}
    for g, ps in groups.items():
        for p in ps:
            if id(p) in seen:
                raise ValueError(f"parameter groups {seen[id(p)]!r} and {g!r} share a "
                                 "parameter; groups must be disjoint")
            seen[id(p)] = g


def check_coverage(method: nn.Module, groups: dict[str, list[nn.Parameter]]) -> None:
    """Every trainable parameter of `method` belongs to a group (disjointness: `check_groups`)."""
    grouped = {id(p) for ps in groups.values() for p in ps}
    missing = [n for n, p in method.named_parameters() if p.requires_grad and id(p) not in grouped]
    if missing:
        raise ValueError(f"method {getattr(method, 'name', '')!r}: parameters outside every "
                         f"group: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
