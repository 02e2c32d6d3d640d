"""`Stage.reevaluate` for look-ahead harmonizers (MetaAlign; REFERENCE 2): a stage's losses
recomputed with parameters substituted by name through ``torch.func.functional_call``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

LossFn = Callable[[], dict[str, Tensor]]


class _Call(nn.Module):
    """Holds a method as submodule `m` so `torch.func.functional_call` can swap its tensors."""

    def __init__(self, method: nn.Module, fn: LossFn) -> None:
        super().__init__()
        self.m = method
        self.fn = fn

    def forward(self) -> dict[str, Tensor]:
        return self.fn()


def reevaluator(method: nn.Module, fn: LossFn
                ) -> Callable[[Mapping[str, Tensor]], dict[str, Tensor]]:
    """`Stage.reevaluate` for a stage whose losses `fn()` computes from `method`'s tensors.

    The returned callable recomputes the losses with the named parameters (names of
    ``method.named_parameters()``) replaced; others keep their current values.
    """

    def reevaluate(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        renamed = {f"m.{name}": value for name, value in params.items()}
        return torch.func.functional_call(_Call(method, fn), renamed, ())

    return reevaluate
