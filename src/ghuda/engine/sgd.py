"""SGD with (Nesterov) momentum and weight decay, the update of ``torch.optim.SGD``.

Why not ``torch.optim.SGD``: its first ``step()`` imports ``torch._dynamo`` (about one CPU
second), a large share of a few-second digits-mini run repeated hundreds of times by the
pipeline. The update below is the same, operation for operation (dampening 0)::

    d = g + wd * p
    b = d                      on the first step, else  b = momentum * b + d
    d = d + momentum * b       (Nesterov)  or  d = b
    p = p - lr * d

Parameters whose ``.grad`` is None are skipped (their momentum is not advanced), as in torch.
A test checks bit-identical parameters against ``torch.optim.SGD(foreach=False)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


class SGD:
    """Minimal optimizer over one parameter list; ``param_groups[0]["lr"]`` is its rate."""

    def __init__(self, params: Sequence[Tensor], lr: float, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum requires momentum > 0")
        self.params = list(params)
        self.param_groups = [{"lr": lr}]
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.buffers: list[Tensor | None] = [None] * len(self.params)

    @torch.no_grad()
    def step(self) -> None:
        lr = self.param_groups[0]["lr"]
        idx = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not idx:
            return
        params = [self.params[i] for i in idx]
        d = [p.grad for p in params]
        if self.weight_decay:
            d = torch._foreach_add(d, params, alpha=self.weight_decay)
        if self.momentum:
            bufs = []
            for i, di in zip(idx, d, strict=True):
                buf = self.buffers[i]
                if buf is None:
                    buf = self.buffers[i] = di.detach().clone()
                else:
                    buf.mul_(self.momentum).add_(di)
                bufs.append(buf)
            d = torch._foreach_add(d, bufs, alpha=self.momentum) if self.nesterov else bufs
        torch._foreach_add_(params, d, alpha=-lr)

    def state_dict(self) -> dict[str, Any]:
        return {"momentum_buffer": list(self.buffers), "lr": self.param_groups[0]["lr"]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        buffers = state["momentum_buffer"]
        if len(buffers) != len(self.params):
            raise ValueError(f"optimizer state holds {len(buffers)} buffers for "
                             f"{len(self.params)} parameters")
        self.buffers = [None if b is None else b.to(p.device)
                        for b, p in zip(buffers, self.params, strict=True)]
        self.param_groups[0]["lr"] = state["lr"]
