"""The seed rule (issue 26): when a paired Δ is resolved, and how many seeds per task a row
needs. Stated before the runs, applied to every Δ of every config's dataset tables alike.

A Δ (`ghuda.report.stats.paired`, tasks as strata) with 95 % interval half-width ``h`` is

* resolved **to ±2** (clause ``half-width ≤ 2``): ``h <= TOLERANCE`` (2 points): the effect is
  measured to ±2 points, whatever its sign (the effects of 1-3 points the paper reports). This
  is not the claims table's "no effect beyond ±2 points" (`ghuda.report.verdicts`), which
  needs the whole interval inside [-2, +2]: Δ = -1.8 [-3.5, +0.0] is measured to ±2 points,
  and a loss of 3.5 points is not excluded;
* resolved **by margin**: ``|Δ| >= MARGIN * h`` (3 half-widths): far from zero, its sign and
  rough size settled (a bimodal collapse of 35 points needs no ±2 interval);
* **unresolved** otherwise (or with no interval: fewer than 3 pairs, a task of one pair).

Seeds: with ``n`` seeds on each of the row's ``K`` tasks, the measured per-task standard
deviation ``s_k`` of the paired differences and the share ``c_k`` of pairs where both runs
completed, the projected interval is ``se^2 = sum_k s_k^2 / (n c_k) / K^2`` with Welch-
Satterthwaite degrees of freedom (`ghuda.report.stats.projected_half_width`). A row needs
the smallest ``n >= MIN_SEEDS`` whose projection at its measured ``|Δ|`` is resolved, at
most ``CAP``; a baseline needs the largest ``n`` of its comparisons. Seeds are added on the
projected width only, never on the sign of the mean.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ghuda.pipeline.config import settings
from ghuda.report.frames import complete_pairs, paired_by_task
from ghuda.report.lookup import (
    dataset_table_stems,
    method_label,
    method_order,
    metric_column,
    row_variants,
)
from ghuda.report.notes import PROTOCOL_TEXT
from ghuda.report.outputs import register_table
from ghuda.report.render import DASH, Table, fmt
from ghuda.report.stats import Paired, projected_half_width
from ghuda.report.tables import MIN_PAIRS, delta_cells

TOLERANCE = 2.0  # points: an interval this narrow resolves any Δ
MARGIN = 3.0  # half-widths: a Δ this far from zero is resolved
MIN_SEEDS = 5  # per task: fewer gives no usable per-task spread
CAP = 40  # per task: the most seeds the rule asks for one row

WITHIN = f"half-width ≤ {TOLERANCE:g}"
BY_MARGIN = f"|Δ| ≥ {MARGIN:g} half-widths"
UNRESOLVED = "unresolved"


def half_width(p: Paired) -> float:
    """Half the width of the interval; NaN without one, or from fewer than `MIN_PAIRS` pairs
    (the tables show none there)."""
    return (p.ci_high - p.ci_low) / 2.0 if p.n >= MIN_PAIRS else math.nan


def resolves(delta: float, width: float) -> str | None:
    """Which clause of the rule a Δ with interval half-width `width` meets (None: neither)."""
    if math.isnan(width):
        return None
    if width <= TOLERANCE:
        return WITHIN
    if abs(delta) >= MARGIN * width:
        return BY_MARGIN
    return None


def resolution(p: Paired) -> str:
    """`WITHIN`, `BY_MARGIN` or `UNRESOLVED` for a paired comparison."""
    return resolves(p.mean, half_width(p)) or UNRESOLVED


@dataclass(frozen=True)
class Spread:
    """Per task: sd of the paired differences, and the share of pairs that completed."""

    sds: tuple[float, ...]
    completion: tuple[float, ...]


def spread(values: pd.Series, base_values: pd.Series, attempted: Mapping[str, int]
           ) -> Spread | None:
    """The measured `Spread` of aligned complete (task, seed) pairs; `attempted`: pairs run
    per task (completed or not). None when a task has fewer than two complete pairs."""
    diff = (values - base_values).groupby(level="task")
    sds, shares = [], []
    for task, n_attempted in attempted.items():
        d = diff.get_group(task).to_numpy(dtype=float) if task in diff.groups else np.array([])
        if d.size < 2:
            return None
        sds.append(float(d.std(ddof=1)))
        shares.append(d.size / n_attempted)
    return Spread(tuple(sds), tuple(shares))


def seeds_needed(measured: Spread, delta: float, confidence: float = 0.95) -> int | None:
    """Seeds per task the rule asks for (module docstring); None when even `CAP` seeds leave
    the projection unresolved."""
    for n in range(MIN_SEEDS, CAP + 1):
        width = projected_half_width(measured.sds, measured.completion, n, confidence)
        if resolves(delta, width):
            return n
    return None


def _needed_text(n: int | None) -> str:
    return f"> {CAP}" if n is None else str(n)


def _seed_count(frame: pd.DataFrame) -> str:
    """Seeds per task of a row: '20', or '5–8' when its tasks differ."""
    per_task = frame.groupby("task")["seed"].nunique()
    low, high = int(per_task.min()), int(per_task.max())
    return str(low) if low == high else f"{low}–{high}"


def _attempted(vdata: pd.DataFrame, base: pd.DataFrame) -> dict[str, int]:
    """Pairs run per task: (task, seed) that both the variant and the baseline ran."""
    keys = vdata.set_index(["task", "seed"]).index.intersection(
        base.set_index(["task", "seed"]).index)
    return {task: int((keys.get_level_values("task") == task).sum())
            for task in dict.fromkeys(keys.get_level_values("task"))}


@register_table("seed_rule", "The seed rule: which clause resolved each Δ, and the seeds "
                "each row needs")
def seed_rule_table(config: Mapping[str, Any], summary: Mapping[str, pd.DataFrame]) -> Table:
    """Per Δ of the dataset tables: seeds and pairs behind it, its interval's half-width, the
    clause of the seed rule that resolved it, and the seeds per task the rule asks for given
    the spread these runs measured; per baseline, the most its comparisons ask for."""
    tcfg = settings(config).tables
    protocol, confidence, baseline = tcfg.protocol, tcfg.confidence, tcfg.baseline
    runs = summary["runs"]
    table = Table(
        caption=(f"Seed rule: resolution of each Δ (protocol `{protocol}`) and the seeds per "
                 "task it asks for"),
        columns=["Dataset", "Method", "Variant", "seeds / task", "pairs", "Δ [CI]",
                 "half-width", "resolved", "seeds / task needed"],
        align="llllrrrlr", label="tab:seed_rule")
    for dataset in dataset_table_stems(config):
        data = runs[runs["dataset"] == dataset]
        col = metric_column(config, dataset, protocol)
        label = config["datasets"][dataset].get("label", dataset)
        for method in method_order(config):
            mdata = data[data["method"] == method]
            base = mdata[mdata["variant"] == baseline]
            rows, needs = [], []
            for variant in row_variants(config)[1:]:
                vdata = mdata[mdata["variant"] == variant]
                if vdata.empty or base.empty:
                    continue
                values, base_values = complete_pairs(vdata, base, col)
                p = paired_by_task(values, base_values, confidence)
                measured = spread(values, base_values, _attempted(vdata, base))
                need = None if measured is None else seeds_needed(measured, p.mean, confidence)
                needs.append(need)
                rows.append([label, method_label(method), config["variants"][variant]["label"],
                             _seed_count(vdata), str(p.n), delta_cells(p)[0],
                             fmt(half_width(p)), resolution(p),
                             DASH if measured is None else _needed_text(need)])
            if not rows:
                continue
            base_need = (None if None in needs else max(needs))
            table.add([label, method_label(method), "baseline", _seed_count(base), DASH, DASH,
                       DASH, DASH, _needed_text(base_need) + " (most of its rows)"])
            for row in rows:
                table.add(row)
            table.end_group()
    table.notes += [
        f"Protocol {PROTOCOL_TEXT[protocol]}. Δ and its {confidence:.0%} interval as in the "
        "dataset tables (tasks as strata).",
        f"Rule, stated before the runs (ghuda.report.seedrule): a Δ is resolved '{WITHIN}' "
        f"when its interval's half-width is at most {TOLERANCE:g} points (measured to "
        f"±{TOLERANCE:g} points), or '{BY_MARGIN}' "
        f"when |Δ| is at least {MARGIN:g} half-widths; otherwise unresolved (also with no "
        "interval).",
        "seeds / task needed: the smallest number of seeds per task, from "
        f"{MIN_SEEDS} to {CAP}, whose projected interval (these runs' per-task spread of the "
        "paired differences and share of completed pairs, Welch-Satterthwaite degrees of "
        f"freedom) is resolved at the measured |Δ|; '> {CAP}': none up to {CAP}; a dash: a "
        "task with fewer than two completed pairs (no spread). A baseline needs the most of "
        "its rows.",
    ]
    return table

