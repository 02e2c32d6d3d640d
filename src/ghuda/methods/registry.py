"""Name -> UDA method class registry (timm-style registration decorator)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from ghuda.methods.base import Method

_REGISTRY: dict[str, type[Method]] = {}
M = TypeVar("M", bound=type[Method])


def register(name: str) -> Callable[[M], M]:
    """Class decorator: make the method available as `name`."""

    def decorate(cls: M) -> M:
        if name in _REGISTRY:
            raise ValueError(f"method {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def names() -> list[str]:
    """Registered method names, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> type[Method]:
    """The method class registered as `name`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose from {names()}") from None


def build(name: str, backbone: nn.Module, feature_dim: int, num_classes: int,
          **hparams: Any) -> Method:
    """Instantiate method `name` on a backbone; unknown hyper-parameters are errors."""
    cls = get(name)
    try:
        return cls(backbone, feature_dim, num_classes, **hparams)
    except TypeError as err:
        raise ValueError(f"method {name!r}: bad hyper-parameters {sorted(hparams)}: {err}"
                         ) from None
