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
with the reversal coefficient, the source loss and target accuracy, harmonized vs baseline:
where w1 blows up, and when the source loss leaves the baseline's (the collapse).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ghuda.pipeline.config import schema_defaults, settings
from ghuda.report.figures import PAGE_IN, grid, line_styles, no_data
from ghuda.report.frames import collapsed_count, paired_to_baseline, row_frames
from ghuda.report.lookup import (
    dataset_table_stems,
    has_ladder,
    method_label,
    method_order,
    metric_column,
    row_variants,
    task_label,
)
from ghuda.report.notes import DIVERGED_NOTE, PROTOCOL_TEXT
from ghuda.report.outputs import register_figure, register_table
from ghuda.report.render import DASH, Table, fmt
from ghuda.report.tables import count_cell, delta_cells, summary_cell

PROTOCOLS = ("last", "source_val", "oracle")
W1_BLOWUP = 10.0  # GH's w1 above this: the transfer loss's weight (and the discriminator's lr
# under the released weighted loss) is multiplied tenfold


def ladder_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """``tables.ladder`` with its defaults: ``mechanism_steps`` (first steps summarised) and
    ``compare_step`` (an evaluation step every rung has, shown beside `last`; None: none)."""
    return {**schema_defaults("tables", "ladder"), **(settings(config).tables.ladder or {})}


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
    peak = train.groupby("seed")["w1"].max()
    above = train[train["w1"] > W1_BLOWUP].groupby("seed")["step"].min()
    onset = float(above.median()) if len(above) * 2 >= len(peak) else float("nan")
    return float(peak.median()), onset, len(above)


@register_table("ladder", "Regime ladder: the finding from today's setting to the paper's "
                "regime", when=has_ladder)
def ladder_table(config: Mapping[str, Any], summary: Mapping[str, pd.DataFrame]) -> Table:
    """Per rung x method x harmonizer: accuracy (at the end and, with ``compare_step``, at
    that evaluation), Δ under each protocol, counts, w1."""
    runs, train, evals = summary["runs"], summary["train"], summary["eval"]
    tcfg = settings(config).tables
    baseline, confidence = tcfg.baseline, tcfg.confidence
    ladder = ladder_settings(config)
    steps, at = ladder["mechanism_steps"], ladder["compare_step"]
    at_column = [] if at is None else [f"acc. at step {at}"]
    table = Table(
        caption=("Regime ladder: target accuracy (%) and the paired Δ to the baseline under "
                 "each protocol, per rung (one factor changed at a time)"),
        columns=["Rung", "Method", "Variant", *at_column, "last", "Δ last [CI]",
                 "Δ source_val [CI]", "Δ oracle [CI] (target labels)", "n", "div.", "coll.",
                 f"max w1 (≤ {steps} steps)", f"w1 > {W1_BLOWUP:g} from step"],
        align="lll" + "r" * (9 + len(at_column)), label="tab:ladder")
    early = first_steps(train, steps)
    untrained = []
    for rung in config["datasets"]:
        data = runs[runs["dataset"] == rung]
        if data.empty:
            untrained.append(rung_label(config, rung))
            continue
        for method, base, rows in row_frames(config, data):
            for variant, vdata in rows:
                col = {p: metric_column(config, rung, p) for p in PROTOCOLS}
                cells = [rung_label(config, rung), method_label(method),
                         config["variants"][variant]["label"]]
                if at is not None:
                    ev = evals[(evals["dataset"] == rung) & (evals["method"] == method)
                               & (evals["variant"] == variant) & (evals["step"] == at)]
                    cells.append(summary_cell(ev["target_acc"], None) if len(ev) else DASH)
                cells.append(summary_cell(vdata[col["last"]], None))
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
        *([f"Not trained yet (no grid block lists them): {'; '.join(untrained)}."]
          if untrained else []),
        *([f"acc. at step {at}: target accuracy at the evaluation after step {at} (every rung "
           "evaluates there; a diverged run has none), mean ± std over the runs."]
          if at is not None else []),
        f"max w1: the largest weight of the first loss (the transfer loss) over the first "
        f"{steps} steps, median over the row's runs (1 for the plain sum; GH: 1 − <g1, "
        "g2>/|g1|², REFERENCE 1.2); 'w1 > 10 from step': the median first step at which w1 "
        "exceeded 10, over the runs where it did (k of n runs; a dash when fewer than half).",
    ]
    return table


SMOOTH_STEPS = 5  # rolling median over this many logged steps in the mechanism figure
VARIANT_DASHES = ("-", "--", "-.")  # the harmonized variants in row order; baseline dotted


def _median_curve(frame: pd.DataFrame, value: str, peaks: bool = False) -> pd.DataFrame:
    """Median over runs per step of `value` (finite values only), then a rolling median over
    `SMOOTH_STEPS` steps (`peaks`: a rolling maximum, so that single-step spikes stay)."""
    finite = frame[np.isfinite(frame[value].astype(float))]
    rolling = finite.groupby("step")[value].median().rolling(SMOOTH_STEPS, min_periods=1,
                                                             center=True)
    return (rolling.max() if peaks else rolling.median()).reset_index()


@register_figure("ladder_mechanism", when=has_ladder)
def ladder_mechanism(config: Mapping[str, Any], summary: Mapping[str, pd.DataFrame]):
    """Per rung (rows), every step of the first steps, median over seeds: w1 of the
    harmonized runs; cos(g1, g2) and |g1| / |g2| of the baseline; the discriminator's
    accuracy (with the reversal coefficient), the source loss L2 and the target accuracy at
    the evaluations, harmonized vs baseline."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import NullFormatter

    baseline = settings(config).tables.baseline
    steps = ladder_settings(config)["mechanism_steps"]
    harmonized = [v for v in row_variants(config) if v != baseline]
    dashes = {**dict(zip(harmonized, VARIANT_DASHES, strict=False)), baseline: ":"}
    first = harmonized[0]
    train = first_steps(summary["train"], steps).copy()
    train["ratio"] = train["norm1"] / train["norm2"]
    evals = summary["eval"]
    rungs, methods = dataset_table_stems(config), method_order(config)  # the trained rungs
    colours = {m: s["color"] for m, s in zip(methods, line_styles(len(methods)), strict=True)}
    label = {v: config["variants"][v]["label"] for v in [baseline, *harmonized]}
    panels = (("w1", harmonized, f"w1 ({', '.join(label[v] for v in harmonized)})"),
              ("cos", [baseline], "cos(g1, g2), baseline"),
              ("ratio", [baseline], "|g1| / |g2|, baseline"),
              ("disc_acc", [first, baseline], "disc. accuracy; grey: GRL coeff."),
              ("loss_second", [first, baseline], "source loss L2"),
              ("target_acc", [first, baseline], "target acc. (%), whole run"))
    fig, axes = grid(len(rungs) * len(panels), len(panels), PAGE_IN * 1.45, 1.5)
    for r, rung in enumerate(rungs):
        row = axes[r * len(panels):(r + 1) * len(panels)]
        rtrain, revals = train[train["dataset"] == rung], evals[evals["dataset"] == rung]
        if rtrain.empty:
            for ax in row:
                no_data(ax, "no runs")
            continue
        for ax, (value, variants, title) in zip(row, panels, strict=True):
            for method in methods:
                for variant in variants:
                    style = {"color": colours[method], "linestyle": dashes[variant]}
                    if value == "target_acc":
                        ev = revals[(revals["method"] == method)
                                    & (revals["variant"] == variant)]
                        acc = ev.groupby("step")["target_acc"].median()
                        ax.plot(acc.index, acc.to_numpy(), marker="o", markersize=2.5,
                                **style)
                        continue
                    sel = rtrain[(rtrain["method"] == method) & (rtrain["variant"] == variant)]
                    curve = _median_curve(sel, value, peaks=value == "w1")
                    ax.plot(curve["step"], curve[value], linewidth=0.9, **style)
            ax.set_title(title if r == 0 else "", fontsize=7)
            ax.set_xlabel("step" if r == len(rungs) - 1 else "")
        coeff = rtrain.groupby("step")["grl_coeff"].median()
        row[3].plot(coeff.index, coeff.to_numpy(), color="0.55", linewidth=1.4)
        row[3].set_ylim(0.0, 1.02)
        for ax in (row[0], row[2], row[4]):
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
        row[0].axhline(1.0, color="0.6", linewidth=0.6, linestyle=":")
        row[1].axhline(0.0, color="0.6", linewidth=0.6, linestyle=":")
        row[0].set_ylabel(rung_label(config, rung).replace(" (", "\n("), fontsize=7)
    handles = [Line2D([], [], color=colours[m], label=method_label(m)) for m in methods]
    handles += [Line2D([], [], color="0.3", linestyle=dashes[v], label=label[v])
                for v in [baseline, *harmonized]]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
    fig.suptitle(f"The mechanism per rung, every step of the first {steps}: median over seeds, "
                 f"then a {SMOOTH_STEPS}-step rolling median (w1: rolling maximum)",
                 fontsize=8)
    return fig


@dataclass(frozen=True)
class RegimeItem:
    """A setting of the paper's regime (REFERENCE 1.5) that a rung may move: the release's
    value, where it is, the run-config key that holds ghuda's value, and why a rung differs."""

    item: str
    released: str
    source: str
    key: str  # dotted run-config key; method.params.* fall back to the released defaults
    released_value: Any
    why: str
    absent: str = DASH  # shown when the run config has no value (e.g. native input size)
    absent_value: Any = None  # what no value means (frozen stages: none frozen)


REGIME_ITEMS = (
    RegimeItem("backbone", "ResNet-50", "REFERENCE 1.5; cdan/network.py ResNetFc",
               "model.backbone", "resnet50",
               "ResNet-50's ImageNet weights cannot be downloaded here; EfficientNet-Lite0's "
               "ship in a registry package (REFERENCE 6); digit_cnn is digits-mini's network"),
    RegimeItem("ImageNet-pretrained", "yes", "cdan/network.py ResNetFc (pretrained=True)",
               "model.pretrained", True, "rung 0 is today's digits-mini setting (from scratch)"),
    RegimeItem("input side (px)", "224 (random crop of the 256-px image)",
               "gvb/pre_process.py ~148-157", "model.options.input_size", 224,
               "digits-mini images are 32 px, upsampled inside the backbone; 64 chosen on "
               "source validation and cost (configs/ladder.yaml)", absent="32 (native)"),
    RegimeItem("frozen backbone stages", "0 (everything fine-tuned)",
               "cdan/train_image.py (every backbone parameter in the optimizer)",
               "model.options.frozen_stages", 0,
               "cost and source validation: the first 3 of 7 stages hold 1.5 % of the "
               "parameters and most of the CPU time at 64 px (configs/ladder.yaml)",
               absent="0 (all trained)", absent_value=0),
    RegimeItem("base learning rate", "1e-3 (backbone; new layers 10x)",
               "REFERENCE 1.5; cdan/train_image.py ~366-374", "train.lr", 0.001,
               "rung 0 keeps digits-mini's 0.01, chosen on source validation for the digit CNN"),
    RegimeItem("bottleneck (DANN, CDAN+E)", "256", "cdan/network.py ResNetFc",
               "method.params.bottleneck_dim", 256,
               "rung 0: none, chosen on source validation for the digit CNN"),
    RegimeItem("discriminator hidden units", "1024", "cdan/network.py AdversarialNetwork",
               "method.params.disc_hidden", 1024,
               "rung 0: 256, digits-mini's cost setting (RELEASE.digits_mini)"),
    RegimeItem("reversal schedule horizon (iterations)", "10000",
               "cdan/network.py ~404-409", "method.params.grl_max_iter", 10000.0,
               "rungs 0, 0b and 1: the run's own length (Ganin's i / steps), digits-mini's "
               "setting; rung 2 moves exactly this factor", absent="the run's steps"),
    RegimeItem("iterations", "8004 (VisDA 15002)", "REFERENCE 1.5", "train.steps", 8004,
               "CPU budget: the pretrained rungs run the opening 100 iterations of the "
               "released schedules (configs/ladder.yaml)"),
    RegimeItem("batch (source + target)", "36 + 36", "REFERENCE 1.5", "train.batch_size", 36,
               "digits-mini's 32 + 32 in every rung (one factor at a time)"),
)


def _setting(item: RegimeItem, run_config: Mapping[str, Any]) -> Any:
    """ghuda's value of `item` in one resolved run config (method params: released default
    unless the config sets one)."""
    from ghuda.report.fidelity import method_param

    if item.key.startswith("method.params."):
        return method_param(run_config, item.key.removeprefix("method.params."))
    value: Any = run_config
    for part in item.key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def regime_fidelity_table(config: Mapping[str, Any]) -> Table:
    """The paper's regime item by item: released value and each rung's (from the run config
    of the rung's CDAN+E baseline on its first task, whether or not it has been trained);
    deviations in bold."""
    from ghuda.pipeline.grid import run_config_for

    rungs = list(config["datasets"])
    table = Table(caption="Regime ladder: the paper's regime (released code) and each rung's "
                          "setting; bold: differs from the release",
                  columns=["Item", "Released (source)", *[rung_label(config, r) for r in rungs],
                           "Why the rungs differ"],
                  align="l" * (len(rungs) + 3))
    baseline = settings(config).tables.baseline
    run_configs = {r: run_config_for(config, r, config["datasets"][r]["tasks"][0], "cdan",
                                     baseline, 0) for r in rungs}
    for item in REGIME_ITEMS:
        cells = [item.item, f"{item.released} ({item.source})"]
        for rung in rungs:
            value = _setting(item, run_configs[rung])
            text = item.absent if value is None else str(value).lower() if isinstance(
                value, bool) else f"{value:g}" if isinstance(value, float) else str(value)
            value = item.absent_value if value is None else value
            cells.append(text if value == item.released_value else f"**{text}**")
        table.add([*cells, item.why])
    table.notes.append("Every other released behaviour (domain loss form, initialisation, "
                       "weight decay x2, reversal counter, separate forwards) is at its "
                       "released value in every rung: the fidelity table above.")
    return table
