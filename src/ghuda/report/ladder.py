"""The regime ladder (issue 22): does GH's collapse survive the paper's regime?

A ladder config (``configs/ladder.yaml``) holds one ``datasets`` entry per rung, each moving
one factor from today's digits-mini setting toward the paper's (pretrained backbone with the
released learning rates, the released reversal schedule, a real -> real task); its
``tables.ladder`` section names the steps over which the mechanism is summarised.

`ladder_table`: per rung, method and harmonizer, the target accuracy under ``last`` and the
paired Δ to the baseline under each protocol (``last``, ``source_val``, ``oracle``), the
diverged and collapsed counts, and the mechanism in numbers: the largest GH weight w1 within
the first steps (median over runs) and the step at which it first exceeds `W1_BLOWUP`.
`ladder_mechanism`: one row of panels per rung, every step of the first steps: w1 of the
harmonized runs, cos(g1, g2) and |g1| / |g2| of the baseline, the discriminator's accuracy
with the reversal coefficient, and target accuracy at the evaluations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ghuda.report.render import DASH, Table, fmt
from ghuda.report.tables import (
    DIVERGED_NOTE,
    PROTOCOL_TEXT,
    collapsed_count,
    count_cell,
    delta_cells,
    method_label,
    method_order,
    metric_column,
    paired_to_baseline,
    row_variants,
    summary_cell,
    task_label,
)

PROTOCOLS = ("last", "source_val", "oracle")
W1_BLOWUP = 10.0  # GH's w1 above this: the transfer loss's weight (and the discriminator's lr
# under the released weighted loss) is multiplied tenfold


def ladder_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``tables.ladder`` with its defaults: ``mechanism_steps`` (first steps summarised)."""
    return {"mechanism_steps": 200, **config.get("tables", {}).get("ladder", {})}


def rung_label(config: Mapping[str, Any], rung: str) -> str:
    """'<label> (<task>)' of a rung: its dataset entry's label and its tasks."""
    ds = config["datasets"][rung]
    return f"{ds.get('label', rung)} ({', '.join(task_label(t) for t in ds['tasks'])})"


def first_steps(train: pd.DataFrame, steps: int) -> pd.DataFrame:
    """Rows of the main (first) harmonized pair within the first `steps` steps."""
    return train[(train["pair"] == 0) & (train["step"] <= steps)]


def w1_summary(train: pd.DataFrame) -> tuple[float, float, int]:
    """(median over runs of the largest w1, median over runs of the first step with w1 >
    `W1_BLOWUP` (NaN when fewer than half the runs get there), runs with such a step)."""
    if train.empty:
        return float("nan"), float("nan"), 0
    per_run = train.groupby("seed")
    peak = per_run["w1"].max()
    above = train[train["w1"] > W1_BLOWUP].groupby("seed")["step"].min()
    onset = float(above.reindex(peak.index).median()) if len(above) * 2 >= len(peak) else np.nan
    return float(peak.median()), onset, len(above)


def ladder_table(config: Mapping[str, Any], runs: pd.DataFrame, train: pd.DataFrame) -> Table:
    """Per rung x method x harmonizer: accuracy, Δ under each protocol, counts, w1."""
    tcfg = config.get("tables", {})
    baseline, confidence = tcfg.get("baseline", "sum"), tcfg.get("confidence", 0.95)
    steps = ladder_settings(config)["mechanism_steps"]
    table = Table(
        caption=("Regime ladder: target accuracy (%) and the paired Δ to the baseline under "
                 "each protocol, per rung (one factor changed at a time)"),
        columns=["Rung", "Method", "Variant", "last", "Δ last [CI]", "Δ source_val [CI]",
                 "Δ oracle [CI] (target labels)", "n", "div.", "coll.",
                 f"max w1 (≤ {steps} steps)", f"w1 > {W1_BLOWUP:g} from step"],
        align="lllrrrrrrrrr", label="tab:ladder")
    early = first_steps(train, steps)
    for rung in config["datasets"]:
        data = runs[runs["dataset"] == rung]
        for method in method_order(config):
            mdata = data[data["method"] == method]
            base = mdata[mdata["variant"] == baseline]
            for variant in row_variants(config):
                vdata = mdata[mdata["variant"] == variant]
                if vdata.empty:
                    continue
                col = {p: metric_column(config, rung, p) for p in PROTOCOLS}
                cells = [rung_label(config, rung), method_label(method),
                         config["variants"][variant]["label"],
                         summary_cell(vdata[col["last"]], None)]
                if variant == baseline or base.empty:
                    cells += [DASH] * 3 + [str(int(vdata[col["last"]].notna().sum()))]
                else:
                    deltas = {p: delta_cells(paired_to_baseline(vdata, base, col[p],
                                                                confidence))
                              for p in PROTOCOLS}
                    cells += [deltas[p][0] for p in PROTOCOLS] + [deltas["last"][3]]
                cells += [count_cell(int(vdata[col["last"]].isna().sum()), len(vdata)),
                          count_cell(collapsed_count(vdata), len(vdata))]
                run_train = early[(early["dataset"] == rung) & (early["method"] == method)
                                  & (early["variant"] == variant)]
                peak, onset, hits = w1_summary(run_train)
                n_runs = run_train["seed"].nunique()
                cells += [fmt(peak, 1),
                          DASH if np.isnan(onset) else f"{onset:.0f} ({hits}/{n_runs})"]
                table.add(cells)
            table.end_group()
    table.notes += [
        "Rungs: " + "; ".join(f"{rung_label(config, r)}: "
                              f"{config['datasets'][r].get('description', '').strip()}"
                              for r in config["datasets"]) + ".",
        "Protocols: " + "; ".join(PROTOCOL_TEXT[p] for p in PROTOCOLS) + ".",
        "Δ: mean paired difference to the baseline over seeds (pairs share the seed and the "
        f"task) with its {confidence:.0%} t interval (paired t-test; no interval from fewer "
        "than 3 pairs); n: pairs under `last` (a diverged run leaves its pair out).",
        DIVERGED_NOTE,
        "coll.: runs that completed at chance level or below (kept in the means and in Δ).",
        f"max w1: the largest weight of the first loss (the transfer loss) over the first "
        f"{steps} steps, median over the row's runs (1 for the plain sum; GH: 1 − <g1, "
        "g2>/|g1|², REFERENCE 1.2); 'w1 > 10 from step': the median first step at which w1 "
        "exceeded 10, over the runs where it did (k of n runs; a dash when fewer than half).",
    ]
    return table


def _median_curve(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """Median over runs per step of `value` (finite values only)."""
    finite = frame[np.isfinite(frame[value].astype(float))]
    return finite.groupby("step")[value].median().reset_index()


def ladder_mechanism(config: Mapping[str, Any], summary: Mapping[str, pd.DataFrame]):
    """Per rung (rows): GH's w1, the baseline's cos and |g1|/|g2|, the discriminator's
    accuracy with the reversal coefficient, and target accuracy, every step of the first
    steps (median over seeds)."""
    from ghuda.report.figures import PAGE_IN, grid, line_styles, no_data

    baseline = config.get("tables", {}).get("baseline", "sum")
    steps = ladder_settings(config)["mechanism_steps"]
    harmonized = [v for v in row_variants(config) if v != baseline]
    train = first_steps(summary["train"], steps).copy()
    train["ratio"] = train["norm1"] / train["norm2"]
    evals = summary["eval"]
    rungs = list(config["datasets"])
    methods = method_order(config)
    panels = ("w1", "cos", "ratio", "disc_acc", "target_acc")
    fig, axes = grid(len(rungs) * len(panels), len(panels), PAGE_IN * 1.35, 1.55)
    styles = dict(zip(methods, line_styles(len(methods)), strict=True))
    for r, rung in enumerate(rungs):
        row = axes[r * len(panels):(r + 1) * len(panels)]
        rtrain = train[train["dataset"] == rung]
        revals = evals[evals["dataset"] == rung]
        if rtrain.empty:
            for ax in row:
                no_data(ax, "no runs")
            continue
        for method in methods:
            style = {**styles[method], "marker": None}
            mtrain = rtrain[rtrain["method"] == method]
            for variant, dash in zip(harmonized, ("-", "--", ":"), strict=False):
                curve = _median_curve(mtrain[mtrain["variant"] == variant], "w1")
                row[0].plot(curve["step"], curve["w1"], **{**style, "linestyle": dash},
                            label=f"{method_label(method)} {config['variants'][variant]['label']}")
            base = mtrain[mtrain["variant"] == baseline]
            for ax, value in ((row[1], "cos"), (row[2], "ratio")):
                curve = _median_curve(base, value)
                ax.plot(curve["step"], curve[value], **style)
            for variant, dash in ((baseline, "--"), (harmonized[0], "-")):
                curve = _median_curve(mtrain[mtrain["variant"] == variant], "disc_acc")
                row[3].plot(curve["step"], curve["disc_acc"], **{**style, "linestyle": dash})
                ev = revals[(revals["method"] == method) & (revals["variant"] == variant)]
                acc = ev.groupby("step")["target_acc"].median().reset_index()
                row[4].plot(acc["step"], acc["target_acc"],
                            **{**styles[method], "linestyle": dash, "markersize": 3})
        coeff = rtrain.groupby("step")["grl_coeff"].median()
        twin = row[3].twinx()
        twin.plot(coeff.index, coeff.to_numpy(), color="0.6", linewidth=0.8)
        twin.set_ylim(0, 1.05)
        twin.set_ylabel("GRL coeff. (grey)", color="0.4")
        row[0].set_yscale("log")
        row[0].axhline(1.0, color="0.6", linewidth=0.6, linestyle=":")
        row[1].axhline(0.0, color="0.6", linewidth=0.6, linestyle=":")
        row[2].set_yscale("log")
        row[3].set_ylim(0.3, 1.02)
        titles = (f"w1 ({', '.join(config['variants'][v]['label'] for v in harmonized)})",
                  "cos(g1, g2), baseline", "|g1| / |g2|, baseline",
                  f"disc. accuracy (solid {config['variants'][harmonized[0]]['label']}, "
                  "dashed baseline)",
                  f"target acc. % (solid {config['variants'][harmonized[0]]['label']})")
        for ax, title in zip(row, titles, strict=True):
            ax.set_title(title if r == 0 else "", fontsize=7)
            ax.set_xlabel("step" if r == len(rungs) - 1 else "")
        row[0].set_ylabel(rung_label(config, rung).replace(" (", "\n("), fontsize=7)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6),
               frameon=False)
    fig.suptitle(f"The mechanism per rung, every step of the first {steps} (median over seeds)",
                 fontsize=8)
    return fig
