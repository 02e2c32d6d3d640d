"""The selection table (issue 27): what each model-selection protocol picks, with and without
target labels, and whether GH / GH++'s paired effect survives it.

Protocols: ``last``, ``source_val``, ``oracle`` (selects on TARGET labels) and one per
unsupervised validator (`ghuda.engine.validators`: no target label). Per dataset, method and
row variant, for each protocol: the Avg target accuracy it selects over the runs that
completed, its gap to ``oracle`` on the same runs, the validator's Spearman rank correlation
with target accuracy over each run's evaluations (``history_eval``), and the paired Δ to the
baseline under that protocol (`ghuda.report.frames.paired_to_baseline`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ghuda.pipeline.config import settings
from ghuda.report.aggregate import PROTOCOLS, SCORE_PREFIX
from ghuda.report.frames import complete_pairs, paired_to_baseline, row_frames, task_avg
from ghuda.report.lookup import (
    dataset_table_stems,
    method_label,
    metric_column,
)
from ghuda.report.notes import PAIRING_NOTE, PROTOCOL_TEXT
from ghuda.report.outputs import register_table
from ghuda.report.render import DASH, Table, fmt
from ghuda.report.tables import delta_cells

MIN_EVALS = 3  # no rank correlation over fewer evaluations of a run
NO_DELTA = [DASH, DASH, DASH, DASH]


def validator_directions() -> dict[str, bool]:
    """Registered validators -> whether higher is better (imports torch: only when the table
    is built)."""
    from ghuda.engine.validators import VALIDATORS

    return {name: VALIDATORS.get(name).higher_is_better for name in VALIDATORS.names()}


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman's ρ of two aligned series (NaN pairs dropped); NaN below `MIN_EVALS` pairs or
    with a constant series."""
    both = pd.concat([x, y], axis=1).dropna()
    if len(both) < MIN_EVALS:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input: NaN, counted as no correlation
        return float(stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic)


def rank_correlations(evals: pd.DataFrame, score: str, target: str, sign: float
                      ) -> pd.Series:
    """Per run, indexed by (task, seed): Spearman's ρ between ``sign * score`` and `target`
    over its evaluations (sign -1 for a lower-is-better validator, so ρ > 0 means the score
    tracks target accuracy); runs without a ρ left out."""
    rho = {key: spearman(sign * g[score], g[target])
           for key, g in evals.groupby(["task", "seed"], sort=True)}
    out = pd.Series(rho, dtype=float)
    out.index = out.index.set_names(["task", "seed"])
    return out.dropna()


def protocol_rows(config: Mapping[str, Any], vdata: pd.DataFrame, base: pd.DataFrame | None,
                  vevals: pd.DataFrame, dataset: str, directions: Mapping[str, bool]
                  ) -> list[list[str]]:
    """The cells after (dataset, method, variant) of one row per protocol."""
    confidence = settings(config).tables.confidence
    metric = config["datasets"][dataset].get("metric", "acc")
    oracle = metric_column(config, dataset, "oracle")
    scores = {"source_val": (f"source_val_{metric}", 1.0),
              **{n: (f"{SCORE_PREFIX}{n}", 1.0 if up else -1.0)
                 for n, up in directions.items()}}
    rows = []
    for proto in [*PROTOCOLS, *directions]:
        col = metric_column(config, dataset, proto)
        values, _ = complete_pairs(vdata, None, col)
        chosen, best = complete_pairs(vdata, vdata.assign(**{col: vdata[oracle]}), col)
        gap = task_avg(chosen - best) if len(chosen) else float("nan")
        if proto in scores:
            score, sign = scores[proto]
            rho = rank_correlations(vevals, score, f"target_{metric}", sign)
            rho_cells = [fmt(task_avg(rho), 2) if len(rho) else DASH, str(len(rho))]
        else:
            rho_cells = [DASH, DASH]
        delta = (NO_DELTA if base is None
                 else delta_cells(paired_to_baseline(vdata, base, col, confidence)))
        label = "oracle (target labels)" if proto == "oracle" else proto
        rows.append([label, fmt(task_avg(values)) if len(values) else DASH, str(len(values)),
                     fmt(gap, signed=True), *rho_cells, *delta])
    return rows


def with_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`frame` with the missing `columns` added as NaN (runs recorded before a validator)."""
    return frame.assign(**{c: np.nan for c in columns if c not in frame})


@register_table("selection", "Model selection: protocols and unsupervised validators vs oracle")
def selection_table(config: Mapping[str, Any], summary: Mapping[str, pd.DataFrame]) -> Table:
    """Per dataset, method and variant: each protocol's selected accuracy, gap to oracle,
    rank correlation with target accuracy, and paired Δ to the baseline."""
    directions = validator_directions()
    baseline = settings(config).tables.baseline
    stems = dataset_table_stems(config)
    runs = with_columns(summary["runs"], [metric_column(config, d, p) for d in stems
                                          for p in directions])
    evals = with_columns(summary["eval"], [f"{SCORE_PREFIX}{n}" for n in directions])
    missing = [n for n in directions
               if not any(runs[metric_column(config, d, n)].notna().any() for d in stems)]
    directions = {n: up for n, up in directions.items() if n not in missing}
    table = Table(
        caption=("Model selection: target accuracy (%) each protocol selects, its gap to "
                 "oracle, rank correlation with target accuracy, and Δ to the baseline"),
        columns=["Dataset", "Method", "Variant", "Protocol", "Avg", "n", "− oracle",
                 "ρ (Spearman)", "runs (ρ)", "Δ Avg [CI]", "p (t)", "p (Wilcoxon)",
                 "pairs"],
        align="llll" + "r" * 9, label="tab:selection")
    for dataset in stems:
        data = runs[runs["dataset"] == dataset]
        devals = evals[evals["dataset"] == dataset]
        label = config["datasets"][dataset].get("label", dataset)
        for method, base, rows in row_frames(config, data):
            for variant, vdata in rows:
                vevals = devals[(devals["method"] == method) & (devals["variant"] == variant)]
                cmp = None if variant == baseline or base.empty else base
                for cells in protocol_rows(config, vdata, cmp, vevals, dataset, directions):
                    table.add([label, method_label(method),
                               config["variants"][variant]["label"], *cells])
                table.end_group()
    table.notes += selection_notes(directions, settings(config).tables.confidence)
    if missing:
        table.notes.append(f"Not recorded by any run of this config: {', '.join(missing)} "
                           "(runs trained before the validators, issue 27; retraining the "
                           "runs records them).")
    return table


def selection_notes(directions: Mapping[str, bool], confidence: float) -> list[str]:
    """What the protocols and columns of the selection table mean."""
    validators = ", ".join(f"{n} ({'higher' if up else 'lower'} is better)"
                           for n, up in directions.items())
    return [
        "Protocols: " + "; ".join(PROTOCOL_TEXT[p] for p in PROTOCOLS) + "; unsupervised "
        f"validators (ghuda.engine.validators): {validators}: each selects the evaluation "
        "with its best score (ties: the earliest), from the target evaluation images WITHOUT "
        "labels (DEV also: source-validation images with their source labels); no target "
        "labels.",
        "Avg: mean over tasks of each task's mean over the runs that completed; n: those "
        "runs (a diverged run has no accuracy under any protocol and is left out; a "
        "collapsed one is kept). − oracle: the same mean of (this protocol − oracle) per run "
        "(oracle selects on target labels, so it is ≤ 0).",
        f"ρ: Spearman rank correlation, over a run's evaluations (at least {MIN_EVALS}), "
        "between the score (negated for lower-is-better validators; source_val: its "
        "source-validation accuracy) and target accuracy, so ρ > 0 means the score tracks "
        "target accuracy; mean over tasks of the runs' ρ; runs (ρ): runs with a ρ (a "
        "constant score has none).",
        "Under each protocol, " + PAIRING_NOTE.format(conf=confidence),
    ]
