"""Dynamic loss scaling for float16 autocast, exact under two-loss harmonization.

Why not ``torch.amp.GradScaler``: a stage may step several optimizers, the same optimizer
more than once per iteration (MCD), and the harmonizer must see both task gradients on one
common scale. This scaler multiplies EVERY loss of a stage by the same factor ``S = 2^k``
before any backward pass (harmonized pairs and plain losses alike), then divides the
accumulated gradients by ``S`` before the optimizers step, skipping the step (and halving
``S``) when any stepped gradient is not finite.

Exactness. Backpropagation is linear in the upstream gradient, and multiplying a binary
floating-point number by a power of two is exact (barring overflow or underflow, which is what
the dynamic range search handles), so the scaled task gradients are exactly ``S g1`` and
``S g2``. The harmonizers' coefficients depend on the pair only through scale-free quantities
(cosine, angle, ratios ``d / |g|^2`` of quantities that all scale by ``S^2``), so the weights
``w1, w2``, the angle and the conflict flag computed on scaled gradients are bit-identical to
those on unscaled gradients, the accumulated update is exactly ``S`` times the unscaled one,
and unscaling by ``1/S`` (again a power of two) recovers it exactly. Only the norms in the
statistics scale with ``S``; the engine divides them back (`unscale_stats`). A CPU test runs
training with a forced scale of 2^10 and checks bit-identical parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

_NORM_KEYS = ("norm1", "norm2", "norm_update")


class LossScaler:
    """Power-of-two loss scale with growth after `growth_interval` finite steps."""

    def __init__(self, enabled: bool, init_scale: float = 2.0**16,
                 growth_interval: int = 2000) -> None:
        if enabled and math.frexp(init_scale)[0] != 0.5:
            raise ValueError(f"loss scale must be a power of two, got {init_scale}")
        self.enabled = enabled
        self.scale = float(init_scale) if enabled else 1.0
        self.growth_interval = growth_interval
        self._good_steps = 0

    def scale_loss(self, loss: Tensor) -> Tensor:
        return loss * self.scale if self.enabled else loss

    def unscale_stats(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Harmonizer statistics with the norms brought back to the unscaled gradients."""
        if not self.enabled:
            return stats
        return {k: (v / self.scale if k in _NORM_KEYS and v is not None else v)
                for k, v in stats.items()}

    def unscale_and_check(self, params: Sequence[Tensor]) -> bool:
        """Divide gradients by the scale; True when all are finite (the step may proceed)."""
        if not self.enabled:
            return True
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return True
        torch._foreach_mul_(grads, 1.0 / self.scale)
        finite = bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
        if finite:
            self._good_steps += 1
            if self._good_steps >= self.growth_interval:
                self.scale *= 2.0
                self._good_steps = 0
        else:
            self.scale /= 2.0
            self._good_steps = 0
        return finite

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "good_steps": self._good_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = float(state["scale"])
        self._good_steps = int(state["good_steps"])
