"""One registry mechanism for methods and harmonizers (timm-style registration decorator).

A registry maps names to classes. Classes register themselves with ``@registry.register(name)``
when their module is imported; `discover` imports every module of the registry's package (so
adding a method or a harmonizer is one file, no list to edit) and then the modules named in
the environment variable ``GHUDA_PLUGINS`` (comma-separated importable module names: methods
or harmonizers kept outside the package).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T", bound=type)
PLUGINS_ENV = "GHUDA_PLUGINS"


class Registry(Generic[T]):
    """Name -> class; `kind` ("method", "harmonizer") words the errors."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind, self.package = kind, package
        self._classes: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: make the class available as `name` (sets ``cls.name``)."""

        def decorate(cls: T) -> T:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            return cls

        return decorate

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._classes)

    def get(self, name: str) -> T:
        """The class registered as `name`; a ValueError listing the choices otherwise."""
        try:
            return self._classes[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; choose from {self.names()}"
                             ) from None

    def discover(self) -> None:
        """Import every module of the package, then the ``GHUDA_PLUGINS`` modules."""
        package = importlib.import_module(self.package)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        for module in filter(None, os.environ.get(PLUGINS_ENV, "").split(",")):
            try:
                importlib.import_module(module.strip())
            except ImportError as err:
                raise ImportError(f"{PLUGINS_ENV}: cannot import {module.strip()!r} ({err}); "
                                  "put its folder on PYTHONPATH") from None
