"""Name -> harmonizer class registry (timm-style registration decorator)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ghuda.harmonize.base import Harmonizer

_REGISTRY: dict[str, type[Harmonizer]] = {}
H = TypeVar("H", bound=type[Harmonizer])


def register(name: str) -> Callable[[H], H]:
    """Class decorator: make the harmonizer available as `name`."""

    def decorate(cls: H) -> H:
        if name in _REGISTRY:
            raise ValueError(f"harmonizer {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def names() -> list[str]:
    """Registered harmonizer names, in registration order."""
    return list(_REGISTRY)


def make(name: str, **options: Any) -> Harmonizer:
    """Instantiate the harmonizer `name` with its options (unknown names/options are errors)."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown harmonizer {name!r}; choose from {names()}") from None
    try:
        return cls(**options)
    except TypeError as err:
        raise ValueError(f"harmonizer {name!r}: bad options {sorted(options)}: {err}") from None
