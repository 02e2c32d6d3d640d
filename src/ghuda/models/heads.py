"""Layers shared by the UDA methods: gradient reversal, its schedule, MLP heads.

Facts from REFERENCE 1.5: the released CDAN/GVB code reverses gradients with the coefficient
``2 (high - low) / (1 + exp(-alpha i / max_iter)) - (high - low) + low`` (alpha 10, max_iter
10000, low 0, high 1); its new layers are initialised Kaiming-normal with zero bias
(``init="kaiming"``; cdan/network.py ~21-23); ``init="xavier"`` is the alternative.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, coeff: float) -> Tensor:  # type: ignore[override]
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return -ctx.coeff * grad, None


def reverse_gradient(x: Tensor, coeff: float = 1.0) -> Tensor:
    """Identity forward; multiplies the gradient by ``-coeff`` backward (DANN's GRL)."""
    return _ReverseGrad.apply(x, coeff)


def grl_coefficient(step: int, *, high: float = 1.0, low: float = 0.0, alpha: float = 10.0,
                    max_iter: float = 10000.0) -> float:
    """The released warm-up schedule of the reversal coefficient (REFERENCE 1.5)."""
    return 2.0 * (high - low) / (1.0 + math.exp(-alpha * step / max_iter)) - (high - low) + low


INITS = ("kaiming", "xavier")


def init_linear(module: nn.Module, init: str = "xavier") -> None:
    """Kaiming- or Xavier-normal weights and zero biases for every Linear layer in `module`."""
    if init not in INITS:
        raise ValueError(f"unknown initialisation {init!r}; allowed: {', '.join(INITS)}")
    fill = nn.init.kaiming_normal_ if init == "kaiming" else nn.init.xavier_normal_
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            fill(layer.weight)
            nn.init.zeros_(layer.bias)


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, *, dropout: float = 0.0,
        init: str = "xavier") -> nn.Sequential:
    """Linear-ReLU(-Dropout) blocks ending in a Linear layer, initialised by `init_linear`."""
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in itertools.pairwise(dims):
        layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(dims[-1], out_dim))
    net = nn.Sequential(*layers)
    init_linear(net, init)
    return net


def discriminator(in_dim: int, hidden: int = 1024, *, dropout: float = 0.5,
                  init: str = "xavier") -> nn.Sequential:
    """Domain discriminator returning one logit (source = 1): two hidden layers (CDAN's)."""
    return mlp(in_dim, [hidden, hidden], 1, dropout=dropout, init=init)
