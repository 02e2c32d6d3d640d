"""`metaalign`: MetaAlign (Wei et al., CVPR 2021, arXiv 2103.13575; REFERENCE 2).

MetaAlign treats the two losses of a pair as the meta-train and meta-test tasks of one
meta-learning step and minimises ``L_a(w) + L_b(w - a * grad L_a(w))``. As in the released code
the inner gradient is detached (first order), so the update written to ``.grad`` is

    g = grad L_a(w) + grad L_b(w'),    w' = w - a * grad L_a(w)  (grad L_a(w) constant),

where ``a = meta_lr * lr_p`` for each stepped parameter p, ``lr_p`` being the current learning
rate of p's group (schedule and 10x multipliers included, as the released
``meta_lr * current_lr * 10-for-new-layers``). To first order ``L_b(w') ~ L_b(w) - a <grad L_b,
grad L_a>``, which rewards agreeing gradients. The roles swap at every update of a pair: at the
pair's first update the meta-train loss L_a is the one named by option ``start`` ("second":
L2, "first": L1), then the other, and so on (released ``--step 1``: classification is the
meta-train task at iteration 0, alignment at iteration 1, ...; for dann, cdan and gvb L2 is the
classification loss, so the default ``start="second"`` reproduces that order). Each pair of a
stage alternates on its own counter, kept in `state_dict`, so a resumed run continues the
alternation exactly.

Released facts (``microsoft/UDA``, ``classification/train.py``): ``meta_lr`` 100 in the released
command line (argparse default 1.0), one look-ahead per iteration, the look-ahead perturbs every
parameter the meta-train loss reaches (discriminator included when alignment is meta-train), the
look-ahead forward runs in training mode (dropout redrawn, batch-norm running statistics updated
a second time); only GVB-GD was released.

How it fits the engine. Every harmonizer's `backward` receives the engine's `StepContext`;
MetaAlign is the one that uses it: the stage's `Stage.reevaluate` (which recomputes the stage's
losses with parameters substituted by name through ``torch.func.functional_call``), the names
and current learning rates of the stepped parameters, the loss names of the pair, and the loss
scale of mixed precision. `scales` are
constant loss weights here (``s1*L1``, ``s2*L2`` are the meta-train / meta-test objectives);
statistics are measured on the unscaled gradients at w, like every harmonizer's.

Methods that support it: every registered method whose harmonized stages provide
``Stage.reevaluate`` — dann, cdan, gvb (both pairs, each with its own look-ahead), mcd (step B),
dwl (the balance steps), ssrt and cgdm (step B, as mcd). source_only has no harmonized pair,
so the harmonizer is never called. A stage without ``reevaluate`` raises a ValueError naming
the method and stage.

Cost per harmonized update (non-logging steps): one extra forward (the stage's losses at w')
and one extra backward (grad L_a at w and grad L_b at w' replace the baseline's single
backward). On logging steps grad L_b(w) is computed as well, for the conflict statistics (one
more backward). MetaAlign has no flat-gradient form: `harmonize` raises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ghuda.harmonize.base import Harmonizer
from ghuda.harmonize.grads import (
    Grads,
    accumulate_grad,
    check_loss,
    loss_gradients,
    scope,
    unique,
)
from ghuda.harmonize.numerics import NonFiniteGradientError, add_to, linear_combination, pair_stats
from ghuda.harmonize.registry import register
from ghuda.harmonize.types import BackwardCall, Harmonized, Stats, StepContext, read_stats

STARTS = ("second", "first")


def _update_sq(ga: Grads, sa: float, gb: Grads, sb: float, like: Sequence[Tensor]) -> Tensor:
    """|sa*ga + sb*gb|^2 in float64 over `like` (0-d tensor)."""
    total: Tensor | None = None
    for a, b, t in zip(ga, gb, like, strict=True):
        if a is None and b is None:
            continue
        u = linear_combination(a, sa, b, sb, like=t).reshape(-1).double()
        total = add_to(total, torch.dot(u, u))
    return torch.zeros((), dtype=torch.float64) if total is None else total


@register("metaalign")
class MetaAlign(Harmonizer):
    """First-order MetaAlign look-ahead; options `meta_lr` (>= 0, default 100) and `start`."""

    flat_form = False
    extra_forward = 1
    extra_backward = 1

    def __init__(self, meta_lr: float = 100.0, start: str = "second",
                 mode: str = "direct") -> None:
        if mode != "direct":
            raise ValueError(f"harmonizer 'metaalign' owns its step and has no weighted-loss "
                             f"form; mode must be 'direct', got {mode!r}")
        super().__init__(mode=mode)
        if isinstance(meta_lr, bool) or not isinstance(meta_lr, int | float) or not (
                math.isfinite(meta_lr) and meta_lr >= 0):
            raise ValueError(f"harmonizer 'metaalign': meta_lr must be a finite number >= 0, "
                             f"got {meta_lr!r}")
        if start not in STARTS:
            raise ValueError(f"harmonizer 'metaalign': start must be one of {STARTS}, got "
                             f"{start!r}")
        self.meta_lr = float(meta_lr)
        self.start = start
        self._updates: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"MetaAlign(meta_lr={self.meta_lr}, start={self.start!r})"

    # ---- state: the per-pair update counters that decide the roles ----
    def state_dict(self) -> dict[str, Any]:
        return {"updates": dict(self._updates)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        updates = state.get("updates") if set(state) == {"updates"} else None
        if not isinstance(updates, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in updates.items()):
            raise ValueError(f"harmonizer 'metaalign': state must be {{'updates': {{pair: "
                             f"count}}}}, got {state!r}")
        self._updates = dict(updates)

    def meta_train_is_first(self, first: str, second: str) -> bool:
        """Whether loss1 is the meta-train loss at this pair's next update."""
        even = self._updates.get(f"{first}|{second}", 0) % 2 == 0
        return even == (self.start == "first")

    def harmonize(self, g1: Tensor, g2: Tensor) -> Harmonized:
        raise TypeError("harmonizer 'metaalign' owns its step: its update needs the losses at "
                        "look-ahead weights, so it has no form on two flat gradients; train "
                        "through the engine, which calls backward(..., context=StepContext(...))")

    def accumulate(self, call: BackwardCall) -> Stats:
        """Accumulate ``s_a grad L_a(w) + s_b grad L_b(w')`` into ``.grad`` of `params`.

        Statistics (when `with_stats`) compare grad L1 and grad L2 at w on the measure scope;
        ``w1 = w2 = None``; `norm_update` is the norm of the written update on that scope.
        """
        la = self._check(call.context)
        s = call.scales
        check_loss(call.loss1, "loss1")
        check_loss(call.loss2, "loss2")
        param_list, measure_list = scope(call.params, call.measure)
        if len(la.names) != len(param_list) or len(la.lrs) != len(param_list):
            raise ValueError(f"harmonizer 'metaalign' ({la.where}): the step context has "
                             f"{len(la.names)} names and {len(la.lrs)} learning rates for "
                             f"{len(param_list)} parameters")
        tensors = unique([*param_list, *measure_list])
        a_first = self.meta_train_is_first(la.first, la.second)
        ia, ib = (0, 1) if a_first else (1, 0)
        losses, names = (call.loss1, call.loss2), (la.first, la.second)

        # gradients at w: the meta-train loss always, the other one for the statistics only
        ga = loss_gradients(losses[ia], tensors, retain_graph=call.with_stats or call.retain_graph)
        gb_w = (loss_gradients(losses[ib], tensors, retain_graph=call.retain_graph)
                if call.with_stats else None)

        # look-ahead weights w' = w - meta_lr * lr * s_a * grad L_a(w)  (inner gradient constant)
        fast: dict[str, Tensor] = {}
        for p, name, lr, g in zip(param_list, la.names, la.lrs, ga, strict=False):
            step = self.meta_lr * float(lr) * s[ia] / la.loss_scale
            if g is not None and step != 0.0:
                fast[name] = p - step * g
        reevaluated = la.reevaluate(fast)  # type: ignore[misc]
        if names[ib] not in reevaluated:
            raise ValueError(f"harmonizer 'metaalign' ({la.where}): reevaluate returned "
                             f"{sorted(reevaluated)}, without the pair's loss {names[ib]!r}")
        gb = loss_gradients(reevaluated[names[ib]] * la.loss_scale, tensors, retain_graph=False)

        try:
            pair_stats(ga, gb)  # finiteness of both parts of the update (one sync)
        except NonFiniteGradientError as err:
            raise NonFiniteGradientError(
                f"metaalign ({la.where}): meta-train loss {names[ia]!r} at w, look-ahead loss "
                f"{names[ib]!r} at w - meta_lr*lr*grad (meta_lr={self.meta_lr}): {err}"
            ) from None
        self._updates[f"{la.first}|{la.second}"] = self._updates.get(
            f"{la.first}|{la.second}", 0) + 1
        for i, p in enumerate(param_list):
            if ga[i] is not None or gb[i] is not None:
                accumulate_grad(p, linear_combination(ga[i], s[ia], gb[i], s[ib], like=p))
        if gb_w is None:
            return {}
        index = {id(t): i for i, t in enumerate(tensors)}
        on_measure = [index[id(t)] for t in measure_list]
        g1, g2 = (ga, gb_w) if a_first else (gb_w, ga)
        stats = pair_stats([g1[i] for i in on_measure], [g2[i] for i in on_measure])
        update_sq = _update_sq([ga[i] for i in on_measure], s[ia], [gb[i] for i in on_measure],
                               s[ib], measure_list)
        return read_stats(stats, None, update_sq.to(stats.dot.device), None)

    def _check(self, context: StepContext | None) -> StepContext:
        if context is None:
            raise ValueError("harmonizer 'metaalign' needs the engine's step context: "
                             "backward(..., context=StepContext(...))")
        if context.reevaluate is None:
            raise ValueError(
                f"harmonizer 'metaalign' re-evaluates a stage's losses at look-ahead weights, "
                f"but {context.where or 'this stage'} has no Stage.reevaluate. Methods "
                "that support metaalign: dann, cdan, gvb, mcd, dwl, ssrt, cgdm "
                "(ghuda.harmonize.metaalign).")
        return context
