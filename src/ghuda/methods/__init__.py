"""UDA methods (REFERENCE 1.4, 2). Adding one: a module in this package with a `Method`
subclass decorated by ``@register("name")`` (found on import, no list to edit), or a module
outside named in ``$GHUDA_PLUGINS`` (`ghuda.registry`)."""

from ghuda.methods.base import Batch, Method, Pair, Stage, StepInfo
from ghuda.methods.registry import REGISTRY, build, get, names, register

REGISTRY.discover()

__all__ = ["Batch", "Method", "Pair", "Stage", "StepInfo", "build", "get", "names", "register"]
