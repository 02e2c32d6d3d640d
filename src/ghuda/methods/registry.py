"""The method registry (`ghuda.registry.Registry`) and `build`."""

from __future__ import annotations

from typing import Any

from torch import nn

from ghuda.methods.base import Method
from ghuda.registry import Registry

REGISTRY: Registry[type[Method]] = Registry("method", "ghuda.methods")
register, names, get = REGISTRY.register, REGISTRY.names, REGISTRY.get


def build(name: str, backbone: nn.Module, feature_dim: int, num_classes: int,
          **hparams: Any) -> Method:
    """Instantiate method `name` on a backbone; unknown hyper-parameters are errors."""
    cls = get(name)
    try:
        return cls(backbone, feature_dim, num_classes, **hparams)
    except TypeError as err:
        raise ValueError(f"method {name!r}: bad hyper-parameters {sorted(hparams)}: {err}"
                         ) from None
