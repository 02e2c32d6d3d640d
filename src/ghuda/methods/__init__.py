"""UDA methods (REFERENCE 1.4, 2). Adding one: a module with a `Method` subclass decorated by
``@register("name")``, plus its name in `MODULES` below."""

import importlib

from ghuda.methods.base import Batch, Method, Pair, Stage, StepInfo
from ghuda.methods.registry import build, get, names, register

# Modules that register methods on import, in the order tables show them.
MODULES: tuple[str, ...] = ("source_only", "dann", "cdan", "gvb", "mcd", "dwl", "ssrt",
                            "cgdm")
for _module in MODULES:
    importlib.import_module(f"ghuda.methods.{_module}")

__all__ = ["Batch", "Method", "Pair", "Stage", "StepInfo", "build", "get", "names", "register"]
