"""Config look-ups of the report: labels, orders, the variants shown, metric columns, which
optional tables and figures a config has, and a harmonizer's stated cost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ghuda.pipeline.config import settings
from ghuda.pipeline.grid import run_config_for


def method_label(method: str) -> str:
    """The method's display label (`Method.label`); its name when unset or unregistered."""
    from ghuda import methods

    try:
        return methods.get(method).label or method
    except ValueError:
        return method


def task_label(task: str) -> str:
    return task.replace("->", "→")


def metric_column(config: Mapping[str, Any], dataset: str, protocol: str) -> str:
    metric = config["datasets"][dataset].get("metric", "acc")
    return f"{metric}_{protocol}"


def method_order(config: Mapping[str, Any]) -> list[str]:
    """Methods in the order the grid first names them."""
    out: list[str] = []
    for block in config["grid"]:
        out += [m for m in block["methods"] if m not in out]
    return out


def sweep_variants(config: Mapping[str, Any]) -> list[str]:
    sweep = settings(config).tables.t_sweep
    return list(sweep["variants"]) if sweep else []


def row_variants(config: Mapping[str, Any]) -> list[str]:
    """Variants shown under each method: tables.rows, else every non-sweep variant."""
    tables = settings(config).tables
    baseline = tables.baseline
    rows = tables.rows or [v for v in config["variants"]
                                   if v not in sweep_variants(config)]
    return [baseline, *[v for v in rows if v != baseline]]


def all_variants(config: Mapping[str, Any]) -> list[str]:
    """Row variants, then the t-sweep variants not already among them."""
    rows = row_variants(config)
    return rows + [v for v in sweep_variants(config) if v not in rows]


def dataset_table_stems(config: Mapping[str, Any]) -> list[str]:
    """One table per datasets entry that a grid block trains, in config order (a ladder rung
    that no block lists yet has no runs, hence no table)."""
    trained = {d for block in config["grid"] for d in block.get("datasets", config["datasets"])}
    return [d for d in config["datasets"] if d in trained]


def has_features(config: Mapping[str, Any]) -> bool:
    """Whether runs save features (``features``: the t-SNE figure)."""
    return bool(config.get("features"))


def has_t_sweep(config: Mapping[str, Any]) -> bool:
    """Whether the config sweeps GH++'s t (``tables.t_sweep``: its table and figure)."""
    return bool(settings(config).tables.t_sweep)


def has_ladder(config: Mapping[str, Any]) -> bool:
    """Whether the config is a regime ladder (``tables.ladder``: its table and figure)."""
    return bool(settings(config).tables.ladder)


def harmonizer_passes(config: Mapping[str, Any], dataset: str, method: str, variant: str
                      ) -> tuple[int, int]:
    """Extra forward / backward passes per harmonized step, as the harmonizer instance states
    them (`extra_forward`, `extra_backward`; the released weighted-loss mode costs one more)."""
    import ghuda.harmonize

    ds = config["datasets"][dataset]
    spec = run_config_for(config, dataset, ds["tasks"][0], method, variant, 0)["harmonizer"]
    kwargs = dict(spec.get("options", {}))
    if "mode" in spec:
        kwargs["mode"] = spec["mode"]
    harmonizer = ghuda.harmonize.make(spec["name"], **kwargs)
    return int(harmonizer.extra_forward), int(harmonizer.extra_backward)
