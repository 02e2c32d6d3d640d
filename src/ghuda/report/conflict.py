"""tables/conflict.md: how often the two task gradients conflict during training (REFERENCE 1:
"their gradients on the shared network often conflict"), per dataset, method and variant.

A run's conflict fraction is the share of its logged harmonized pairs with <g1, g2> < 0,
measured on the gradients before harmonization (metrics.json ``conflict``,
`ghuda.engine.metrics.conflict_summary`); so every variant measures the same quantity, and the
baseline rows (the plain sum) measure it on unharmonized training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ghuda.report.lookup import all_variants, dataset_table_stems, method_label, method_order
from ghuda.report.outputs import register_table
from ghuda.report.render import DASH, Table, fmt

COLUMNS = ["Dataset", "Method", "Variant", "runs", "conflicting steps (%) median",
           "min–max (%)", "mean cos median", "logged steps per run"]


def conflict_cells(frame: pd.DataFrame) -> list[str]:
    """Cells 'runs', median / range of the conflict fraction (%), median mean cos, median
    logged steps of the runs in `frame` (dashes where no run logged a pair)."""
    frac, cos, steps = (_column(frame, c) for c in ("conflict_fraction", "mean_cos",
                                                    "logged_steps"))
    frac = frac * 100.0
    if not frac.size:
        return [str(len(frame)), DASH, DASH, DASH, DASH]
    return [str(len(frame)), fmt(float(np.median(frac))),
            f"{fmt(float(frac.min()))}–{fmt(float(frac.max()))}",
            fmt(float(np.median(cos)), 2) if cos.size else DASH,
            fmt(float(np.median(steps)), 0) if steps.size else DASH]


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """The finite values of a runs.csv column (none when the column is absent)."""
    if name not in frame:
        return np.empty(0)
    values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]


@register_table("conflict", "Gradient conflict during training (how often <g1, g2> < 0)")
def conflict_table(config: Mapping[str, Any], summary: Mapping[str, pd.DataFrame]) -> Table:
    """Share of logged steps whose two task gradients conflict, per dataset, method and
    variant (median and range over runs; the harmonized methods only)."""
    runs = summary["runs"]
    table = Table(caption="Gradient conflict during training: share of logged steps with "
                          "<g1, g2> < 0 (gradients before harmonization)",
                  columns=COLUMNS, align="lllrrrrr", label="tab:conflict")
    for dataset in dataset_table_stems(config):
        data = runs[runs["dataset"] == dataset]
        for method in method_order(config):
            for variant in all_variants(config):
                frame = data[(data["method"] == method) & (data["variant"] == variant)]
                if not _column(frame, "conflict_fraction").size:
                    continue
                table.add([config["datasets"][dataset].get("label", dataset),
                           method_label(method), config["variants"][variant]["label"],
                           *conflict_cells(frame)])
            table.end_group()
    table.notes += [
        "A run's share: its logged harmonized pairs (every `train.log_every` steps, every pair "
        "of a method with several) with a negative inner product of the two gradients on the "
        "measured parameters, before harmonization (metrics.json conflict."
        "fraction_conflicting); median and range over the row's runs (a diverged run counts "
        "up to its last logged step).",
        "Methods without a harmonized pair (source-only) log none and have no row."]
    return table
