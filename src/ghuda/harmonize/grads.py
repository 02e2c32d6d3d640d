"""The two task gradients over the parameters and the measure scope, and writing ``.grad``.

`task_gradients` is the shared first half of every harmonizer's `backward`: two
``torch.autograd.grad`` calls (two backward passes) over the union of `params` and `measure`.
A tensor that a loss does not reach gets ``None``, which every reduction treats as zeros at
that tensor's fixed position (never a shifted vector, unlike the released code's flattening).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Grads = list[Tensor | None]


def unique(tensors: Iterable[Tensor]) -> list[Tensor]:
    """Tensors in first-seen order, each once (by identity)."""
    seen: set[int] = set()
    out: list[Tensor] = []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


@dataclass
class GradientPair:
    """g1 and g2 for `tensors` = params, then measure tensors that are not params."""

    tensors: list[Tensor]
    params: list[Tensor]
    measure: list[Tensor]
    g1: Grads
    g2: Grads

    def __post_init__(self) -> None:
        self._index = {id(t): i for i, t in enumerate(self.tensors)}
        self._measured = {id(t) for t in self.measure}
        self._params = {id(t) for t in self.params}

    def of(self, t: Tensor) -> tuple[Tensor | None, Tensor | None]:
        i = self._index[id(t)]
        return self.g1[i], self.g2[i]

    def in_measure(self, t: Tensor) -> bool:
        return id(t) in self._measured

    def is_param(self, t: Tensor) -> bool:
        return id(t) in self._params

    def on_measure(self) -> tuple[Grads, Grads]:
        """(g1, g2) restricted to the measure scope, in measure order."""
        pairs = [self.of(t) for t in self.measure]
        return [a for a, _ in pairs], [b for _, b in pairs]

    def release(self, t: Tensor) -> None:
        """Drop both gradients of `t` once written, to keep peak memory low."""
        i = self._index[id(t)]
        self.g1[i] = self.g2[i] = None


def scope(params: Iterable[Tensor], measure: Iterable[Tensor] | None
          ) -> tuple[list[Tensor], list[Tensor]]:
    """Validated (params, measure): non-empty; params are leaves that require grad."""
    param_list = unique(params)
    if not param_list:
        raise ValueError("harmonizer backward: `params` is empty")
    for i, p in enumerate(param_list):
        if not (p.is_leaf and p.requires_grad):
            raise ValueError(f"harmonizer backward: params[{i}] (shape {tuple(p.shape)}) must "
                             "be a leaf tensor with requires_grad=True")
    measure_list = param_list if measure is None else unique(measure)
    if not measure_list:
        raise ValueError("harmonizer backward: `measure` is empty (pass None to measure on "
                         "params)")
    for i, t in enumerate(measure_list):
        if not t.requires_grad:
            raise ValueError(f"harmonizer backward: measure[{i}] (shape {tuple(t.shape)}) "
                             "does not require grad")
    return param_list, measure_list


def check_loss(loss: Tensor, which: str) -> None:
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"harmonizer backward: {which} must be a scalar tensor, got {shape}")


def loss_gradients(loss: Tensor, tensors: Sequence[Tensor], retain_graph: bool) -> Grads:
    """grad `loss` for each of `tensors` in one backward pass (None where `loss` does not
    reach a tensor, all None when it requires no grad)."""
    if not loss.requires_grad:
        return [None] * len(tensors)
    return list(torch.autograd.grad(loss.reshape(()), tensors, retain_graph=retain_graph,
                                    allow_unused=True))


def task_gradients(loss1: Tensor, loss2: Tensor, params: Iterable[Tensor],
                   measure: Iterable[Tensor] | None, *, keep_graph: bool) -> GradientPair:
    """Both task gradients in two backward passes; `keep_graph` retains the graph after them."""
    check_loss(loss1, "loss1")
    check_loss(loss2, "loss2")
    param_list, measure_list = scope(params, measure)
    tensors = unique([*param_list, *measure_list])
    g1 = loss_gradients(loss1, tensors, retain_graph=True)
    g2 = loss_gradients(loss2, tensors, retain_graph=keep_graph)
    return GradientPair(tensors, param_list, measure_list, g1, g2)


def accumulate_grad(param: Tensor, grad: Tensor) -> None:
    """Add `grad` into ``param.grad`` like ``loss.backward()`` does (set when None)."""
    if param.grad is None:
        param.grad = grad
    else:
        param.grad.add_(grad)
