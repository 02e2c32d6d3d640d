"""The extension runs of a pipeline config (its ``extensions`` entries; issue 16).

Each entry names a task, its dataset, variants (the config's ``variants``: harmonizer,
options, order) and seeds; its run config is the task module's defaults for that dataset
(``EMBEDDED_DEFAULTS`` or ``PAPER_DEFAULTS``) with the entry's ``run`` merged over them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from ghuda.pipeline.grid import deep_merge

DEFAULT_SETS = ("EMBEDDED_DEFAULTS", "PAPER_DEFAULTS")


@dataclass(frozen=True)
class ExtensionRunSpec:
    """One extension run of the pipeline: its folder key and its run config."""

    extension: str
    data: str
    variant: str
    seed: int
    run_config: dict[str, Any]
    resources: dict[str, Any]

    @property
    def key(self) -> str:
        """Folder of the run below ``<results>/<name>/extensions``."""
        return f"{self.extension}/{self.data}/{self.variant}/seed{self.seed}"


def task_defaults(extension: str, data: str) -> dict[str, Any]:
    """The task module's default run config for dataset `data`; ValueError lists the known."""
    module = importlib.import_module(f"ghuda.extensions.{extension}")
    known = {}
    for attr in DEFAULT_SETS:
        defaults = getattr(module, attr)
        known[defaults["data"]["name"]] = defaults
    if data not in known:
        raise ValueError(f"extension {extension!r} has no dataset {data!r}; choose from "
                         f"{sorted(known)}")
    return deepcopy(known[data])


def expand_extension_runs(config: Mapping[str, Any]) -> list[ExtensionRunSpec]:
    """Every extension run of `config`, in entry, variant, seed order."""
    out = []
    for entry in config.get("extensions") or []:
        base = deep_merge(task_defaults(entry["extension"], entry["data"]), entry.get("run") or {})
        for variant in entry["variants"]:
            if variant not in config["variants"]:
                raise ValueError(f"extensions entry {entry['extension']}/{entry['data']}: "
                                 f"unknown variant {variant!r}; the config's variants are "
                                 f"{sorted(config['variants'])}")
            spec = config["variants"][variant]
            harmonizer = {"name": spec["harmonizer"], "options": dict(spec.get("options") or {}),
                          "order": spec.get("order", "released")}
            for seed in entry["seeds"]:
                run = deep_merge(base, {"extension": entry["extension"], "seed": seed,
                                   "harmonizer": harmonizer})
                out.append(ExtensionRunSpec(
                    entry["extension"], entry["data"], variant, seed, run,
                    dict(entry.get("resources") or config.get("resources") or {})))
    return out
