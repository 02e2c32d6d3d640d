"""Table builders: per-dataset results in the paper's shape, protocols, cost, GH++ t sweep;
and the cells they share (mean ± std, paired Δ, counts).

`dataset_table` gives one table per trained datasets entry; the others are registered
(`ghuda.report.outputs.register_table`): each takes the resolved pipeline config and the
aggregated summary (`ghuda.report.aggregate`) and returns a `ghuda.report.render.Table`.
`build_tables` builds those of a config; `write_tables` renders each as Markdown and LaTeX
under the tables directory. Config look-ups: `ghuda.report.lookup`; statistics:
`ghuda.report.frames`; notes: `ghuda.report.notes`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ghuda.pipeline.config import settings
from ghuda.pipeline.grid import registered_dataset
from ghuda.report.aggregate import COLLAPSE_MARGIN_PP
from ghuda.report.frames import (
    collapsed_count,
    complete_pairs,
    cost_frame,
    paired_by_task,
    paired_to_baseline,
    seed_means,
    task_avg,
)
from ghuda.report.lookup import (
    all_variants,
    dataset_table_stems,
    has_t_sweep,
    method_label,
    method_order,
    metric_column,
    row_variants,
    task_label,
)
from ghuda.report.notes import (
    AVG_NOTE,
    COUNT_NOTE,
    ONE_TASK_PAIRING_NOTE,
    PAIRING_NOTE,
    PROTOCOL_TEXT,
    count_notes,
)
from ghuda.report.outputs import TABLE_BUILDERS, builders, register_table
from ghuda.report.render import DASH, Table, fmt, fmt_p, to_latex, to_markdown
from ghuda.report.reported import AVG, NOT_RECORDED, ReportedNumbers
from ghuda.report.stats import Paired, mean_std
from ghuda.runs import write_text

Summary = Mapping[str, pd.DataFrame]
MIN_PAIRS = 3  # no interval or test from fewer pairs


def delta_ci(p: Paired) -> str:
    """'Δ [low, high]': the mean paired difference and its interval."""
    return (f"{fmt(p.mean, signed=True)} [{fmt(p.ci_low, signed=True)}, "
            f"{fmt(p.ci_high, signed=True)}]")


def delta_cells(p: Paired) -> list[str]:
    """Cells 'Δ [CI]', 'p (t)', 'p (Wilcoxon)', 'n' of a paired comparison; below
    `MIN_PAIRS` pairs only the mean difference (no interval, no test)."""
    if p.n < MIN_PAIRS or np.isnan(p.ci_low):
        return [f"{fmt(p.mean, signed=True)} [—, —]", DASH, DASH, str(p.n)]
    return [delta_ci(p), fmt_p(p.p_t), fmt_p(p.p_wilcoxon), str(p.n)]


def mean_std_text(values: Sequence[float]) -> str:
    """'mean ± std' of the values ('mean' of one value, a dash of none)."""
    mean, std = mean_std(values)
    return f"{fmt(mean)} ± {fmt(std)}" if len(values) > 1 else fmt(mean)


def summary_cell(values: pd.Series, rep: str | None, collapsed: int = 0) -> str:
    """'mean ± std' over the values with an accuracy, 'k/n div.' when k of them diverged,
    'k/n coll.' when `collapsed` of the runs behind them collapsed."""
    arr = values.to_numpy(dtype=float)
    finite = arr[~np.isnan(arr)]
    if arr.size and not finite.size:
        text = f"diverged ({arr.size}/{arr.size})"
    else:
        text = mean_std_text(finite)
        if finite.size < arr.size:
            text += f" ({arr.size - finite.size}/{arr.size} div.)"
    if collapsed:
        text += f" ({collapsed}/{arr.size} coll.)"
    return text if rep is None else f"{text} (rep. {rep})"


def count_cell(k: int, n: int) -> str:
    """'k/n' runs (a dash when the row has no runs)."""
    return f"{k}/{n}" if n else DASH


def seed_ranges(seeds: Sequence[int]) -> str:
    """Seeds as ranges: [0, 1, 2, 5] -> '0–2, 5'."""
    out: list[str] = []
    for seed in sorted(map(int, seeds)):
        if out and out[-1][1] == seed - 1:
            out[-1][1] = seed
        else:
            out.append([seed, seed])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in out)


def _rep(reported: ReportedNumbers | None, dataset: str, method: str, variant: str,
         task: str) -> str | None:
    if reported is None or not reported.published(dataset):
        return None
    value = reported.value(dataset, method, variant, task)
    return NOT_RECORDED if value is None else fmt(value, 2).rstrip("0").rstrip(".")


def dataset_table(config: Mapping[str, Any], runs: pd.DataFrame, dataset: str,
                  reported: ReportedNumbers | None = None) -> Table:
    """Rows baseline, +GH, +GH++, ... per method; columns every task, Avg and Δ over the same
    complete (task, seed) pairs, and the diverged and collapsed counts (paper shape plus)."""
    tcfg = settings(config).tables
    protocol, confidence, baseline = tcfg.protocol, tcfg.confidence, tcfg.baseline
    col = metric_column(config, dataset, protocol)
    ds = config["datasets"][dataset]
    registered = registered_dataset(config, dataset)  # published numbers are per dataset
    tasks = list(ds["tasks"])
    data = runs[runs["dataset"] == dataset]
    seeds = sorted(data["seed"].unique())
    metric = "mean per-class accuracy" if ds.get("metric") == "mean_class_acc" else "accuracy"
    table = Table(
        caption=(f"{ds.get('label', dataset)}: target {metric} (%), protocol `{protocol}`, "
                 f"mean ± std over seeds per task"),
        columns=["Method", *[task_label(t) for t in tasks], "Avg", "Δ Avg [CI]", "p (t)",
                 "p (Wilcoxon)", "n", "div.", "coll."],
        label=f"tab:{dataset}")
    partial = False
    for method in method_order(config):
        mdata = data[data["method"] == method]
        if mdata.empty:
            continue
        base = mdata[mdata["variant"] == baseline]
        for variant in row_variants(config):
            vdata = mdata[mdata["variant"] == variant]
            if vdata.empty:
                continue
            is_base = variant == baseline or base.empty
            label = (method_label(method) if variant == baseline
                     else config["variants"][variant]["label"])
            cells = [label]
            for task in tasks:
                tdata = vdata[vdata["task"] == task]
                rep = _rep(reported, registered, method, variant, task)
                cells.append(DASH if tdata.empty else summary_cell(tdata[col], rep))
            values, base_values = complete_pairs(vdata, None if is_base else base, col)
            avg = "diverged" if values.empty else fmt(task_avg(values))
            rep = _rep(reported, registered, method, variant, AVG)
            avg = avg if rep is None else f"{avg} (rep. {rep})"
            if len(set(vdata["task"])) < len(tasks):
                partial = True
                avg += "*"
            cells.append(avg)
            if is_base:
                cells += [DASH, DASH, DASH, str(len(values))]
            else:
                cells += delta_cells(paired_by_task(values, base_values, confidence))
            total = len(vdata)
            cells += [count_cell(int(vdata[col].isna().sum()), total),
                      count_cell(collapsed_count(vdata), total)]
            table.add(cells)
        table.end_group()
    table.notes.append(f"Protocol {PROTOCOL_TEXT[protocol]}; seeds {seed_ranges(seeds)} "
                       "(a row's runs: n).")
    table.notes.append(AVG_NOTE)
    table.notes.append(PAIRING_NOTE.format(conf=confidence))
    table.notes.append(COUNT_NOTE.format(margin=COLLAPSE_MARGIN_PP))
    if partial:
        table.notes.append("*: over the tasks this row was run on (a subset).")
    if reported is not None:
        if not reported.published(registered):
            note = reported.dataset_note(registered) or "no published numbers exist"
            table.notes.append(f"Published numbers: none for this dataset ({note}).")
        else:
            table.notes.append("rep.: the published number (configs/reported.yaml, with its "
                               f"source); '{NOT_RECORDED}' where none is recorded. Published "
                               "numbers select on target labels (protocol oracle).")
    return table


@register_table("protocols", "Model-selection protocols (last / source_val / oracle)")
def protocol_table(config: Mapping[str, Any], summary: Summary) -> Table:
    """Avg accuracy under the three protocols for every dataset, method and variant."""
    runs = summary["runs"]
    table = Table(
        caption="Model-selection protocols: Avg target accuracy (%), mean ± std over seeds",
        columns=["Dataset", "Method", "Variant", "last", "source_val",
                 "oracle (target labels)", "oracle − last"],
        align="lllrrrr", label="tab:protocols")
    for dataset in dataset_table_stems(config):
        data = runs[runs["dataset"] == dataset]
        for method in method_order(config):
            for variant in all_variants(config):
                vdata = data[(data["method"] == method) & (data["variant"] == variant)]
                if vdata.empty:
                    continue
                cols = {p: metric_column(config, dataset, p)
                        for p in ("last", "source_val", "oracle")}
                per_seed = {p: seed_means(vdata, c) for p, c in cols.items()}
                gap = per_seed["oracle"] - per_seed["last"]
                table.add([config["datasets"][dataset].get("label", dataset),
                           method_label(method), config["variants"][variant]["label"],
                           *[summary_cell(per_seed[p], None) for p in ("last", "source_val",
                                                                  "oracle")],
                           summary_cell(gap, None)])
            table.end_group()
        count_notes(table, data, metric_column(config, dataset, "last"))
    table.notes += [PROTOCOL_TEXT["last"] + "; " + PROTOCOL_TEXT["source_val"] + "; " +
                    PROTOCOL_TEXT["oracle"] + ".",
                    "The released code reports oracle numbers (REFERENCE 1.6); only last and "
                    "source_val use no target labels.",
                    "Per seed: the mean over the row's tasks, over the seeds that ran all of "
                    "them (rows with extra seeds on some tasks: their first seeds)."]
    return table


@register_table("cost", "Cost per step and extra passes per harmonizer")
def cost_table(config: Mapping[str, Any], summary: Summary) -> Table:
    """Step time and peak memory per method and harmonizer, with the extra passes."""
    frame = cost_frame(config, summary["runs"])
    table = Table(
        caption="Cost per training step: median CPU time per step and peak memory over runs",
        columns=["Dataset", "Method", "Variant", "extra fwd", "extra bwd", "step (CPU ms)",
                 "× baseline", "peak mem (MB)", "runs"],
        align="lllrrrrrr", label="tab:cost")
    previous = None
    for row in frame.itertuples():
        if previous is not None and (row.dataset, row.method) != previous:
            table.end_group()
        previous = (row.dataset, row.method)
        table.add([config["datasets"][row.dataset].get("label", row.dataset),
                   method_label(row.method), config["variants"][row.variant]["label"],
                   str(row.extra_fwd), str(row.extra_bwd), fmt(row.step_ms),
                   fmt(row.ratio, 2), fmt(row.peak_mb), str(row.runs)])
    devices = sorted({d for ds in frame.get("devices", []) for d in ds.split(", ") if d})
    kinds = sorted({k for ks in frame.get("mem_kinds", []) for k in ks.split(", ") if k})
    table.notes += [
        "extra fwd / bwd: passes beyond one forward and one backward per harmonized step, "
        "as the harmonizer states them (extra_forward, extra_backward).",
        "step: CPU time of the training loop outside evaluation, per step (process time, so "
        "other processes on a shared machine do not inflate it; on a GPU, wall time differs). "
        "× baseline: median over (task, seed) of this time / the baseline's on the same task "
        "and seed.",
        f"Measured on: {', '.join(devices) or 'unknown'}; peak memory kind: "
        f"{', '.join(kinds) or 'unknown'}."]
    if frame.get("diverged", pd.Series(dtype=int)).any():
        table.notes.append("Diverged runs count here with the median wall time of the steps "
                           "they made (no process-time split between training and "
                           "evaluation is recorded for them).")
    return table


@register_table("ghpp_t_sweep", "GH++ trade-off t", when=has_t_sweep)
def t_sweep_table(config: Mapping[str, Any], summary: Summary) -> Table:
    """GH++ trade-off t: accuracy and paired difference to the baseline per t."""
    runs = summary["runs"]
    tcfg = settings(config).tables
    sweep = tcfg.t_sweep
    protocol, confidence, baseline = tcfg.protocol, tcfg.confidence, tcfg.baseline
    dataset, task, method = sweep["dataset"], sweep["task"], sweep["method"]
    col = metric_column(config, dataset, protocol)
    data = runs[(runs["dataset"] == dataset) & (runs["task"] == task)
                & (runs["method"] == method)]
    base = data[data["variant"] == baseline]
    table = Table(
        caption=(f"GH++ trade-off t: {method_label(method)} on "
                 f"{config['datasets'][dataset].get('label', dataset)} {task_label(task)}, "
                 f"target accuracy (%), protocol `{protocol}`"),
        columns=["Variant", "t", "accuracy", "Δ [CI]", "p (t)", "p (Wilcoxon)", "n"],
        align="lrrrrrr", label="tab:ghpp_t")
    swept = sorted(sweep["variants"], key=lambda v: config["variants"][v]["options"]["t"])
    for variant in [baseline, *swept]:
        vdata = data[data["variant"] == variant]
        t = config["variants"][variant].get("options", {}).get("t")
        label = (method_label(method) if variant == baseline
                 else config["variants"][variant]["label"])
        if vdata.empty:
            table.add([label, fmt(t, 2) if t is not None else DASH, DASH, DASH, DASH, DASH,
                       "0"])
            continue
        cells = [label, fmt(t, 2) if t is not None else DASH,
                 summary_cell(vdata[col], None, collapsed_count(vdata))]
        if variant == baseline:
            cells += [DASH, DASH, DASH, DASH]
        else:
            cells += delta_cells(paired_to_baseline(vdata, base, col, confidence))
        table.add(cells)
    table.notes.append(ONE_TASK_PAIRING_NOTE.format(conf=confidence))
    count_notes(table, data, col)
    return table


def build_tables(config: Mapping[str, Any], summary: Summary,
                 reported: ReportedNumbers | None) -> dict[str, Table]:
    """Every table of the config, keyed by file stem (`ghuda.report.outputs.table_stems`):
    the per-dataset tables, then the registered ones the config has."""
    tables = {ds: dataset_table(config, summary["runs"], ds, reported)
              for ds in dataset_table_stems(config)}
    return {**tables, **{name: build(config, summary)
                         for name, build in builders(TABLE_BUILDERS, config).items()}}


def write_tables(tables: Mapping[str, Table], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Render each table as <stem>.md and <stem>.tex (atomically)."""
    out = Path(out_dir)
    written = []
    for stem, built in tables.items():
        for ext, render in (("md", to_markdown), ("tex", to_latex)):
            path = out / f"{stem}.{ext}"
            write_text(path, render(built))
            written.append(path)
    return written
