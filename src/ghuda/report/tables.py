"""Table builders: per-dataset results in the paper's shape, protocols, cost, GH++ t sweep.

Every builder takes the resolved pipeline config and the aggregated ``runs.csv`` frame
(`ghuda.report.aggregate`) and returns a `ghuda.report.render.Table`; `write_tables` renders
each as Markdown and LaTeX under the tables directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ghuda.pipeline.grid import registered_dataset, run_config_for
from ghuda.report.aggregate import COLLAPSE_MARGIN_PP
from ghuda.report.outputs import dataset_table_stems
from ghuda.report.render import DASH, Table, fmt, fmt_p, to_latex, to_markdown
from ghuda.report.reported import AVG, NOT_RECORDED, ReportedNumbers
from ghuda.report.stats import Paired, mean_std, paired, stratified_mean
from ghuda.runs import write_text

PROTOCOL_TEXT = {
    "last": "last: final iterate",
    "source_val": "source_val: best held-out source-validation accuracy",
    "oracle": "oracle: best target accuracy, selects on TARGET LABELS",
}
PAIRING_NOTE = ("Δ: paired difference to the baseline (pairs share seed and task): the mean "
                "over tasks of each task's mean difference, with its {conf:.0%} t interval "
                "from the within-task spreads (tasks are strata: se² = Σ s²/n over tasks / "
                "tasks², Welch-Satterthwaite degrees of freedom; on one task the paired "
                "t-test, scipy.stats.ttest_rel); p: that t-test and the Wilcoxon signed-rank "
                "test over all pairs (scipy.stats.wilcoxon); n: pairs (no interval or test "
                "from fewer than 3 pairs, or with a task of 1 pair).")

ONE_TASK_PAIRING_NOTE = ("Δ: mean paired difference to the baseline over seeds (pairs share "
                         "seed and task) with its {conf:.0%} t interval; p: paired t-test "
                         "(scipy.stats.ttest_rel) and Wilcoxon signed-rank test "
                         "(scipy.stats.wilcoxon); n: pairs (no interval or test from fewer "
                         "than 3).")


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
    sweep = config.get("tables", {}).get("t_sweep")
    return list(sweep["variants"]) if sweep else []


def row_variants(config: Mapping[str, Any]) -> list[str]:
    """Variants shown under each method: tables.rows, else every non-sweep variant."""
    tables = config.get("tables", {})
    baseline = tables.get("baseline", "sum")
    rows = tables.get("rows") or [v for v in config["variants"]
                                   if v not in sweep_variants(config)]
    return [baseline, *[v for v in rows if v != baseline]]


def all_variants(config: Mapping[str, Any]) -> list[str]:
    """Row variants, then the t-sweep variants not already among them."""
    rows = row_variants(config)
    return rows + [v for v in sweep_variants(config) if v not in rows]


DIVERGED_NOTE = ("k/n div.: k of the n runs diverged (non-finite loss; the run's "
                 "failure.json names the iteration); they have no accuracy and are left out "
                 "of the mean ± std and of the paired differences.")


def _values(frame: pd.DataFrame, column: str) -> pd.Series:
    """Accuracy per (task, seed)."""
    return frame.set_index(["task", "seed"])[column].sort_index()


def balanced_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs of the seeds that ran every task of `frame` (a row with extra seeds on some
    tasks keeps its balanced part, so that a mean over tasks per seed means one thing)."""
    per_seed = frame.groupby("seed")["task"].nunique()
    return frame[frame["seed"].isin(per_seed.index[per_seed == frame["task"].nunique()])]


def seed_means(frame: pd.DataFrame, column: str) -> pd.Series:
    """Mean over tasks per seed of `balanced_seeds`; NaN (a diverged run) when any task of
    the seed diverged."""
    return balanced_seeds(frame).groupby("seed")[column].agg(
        lambda s: float(s.to_numpy(dtype=float).mean()))


def paired_to_baseline(frame: pd.DataFrame, base: pd.DataFrame, column: str,
                       confidence: float) -> Paired:
    """`stats.paired` over the (task, seed) pairs both frames have with an accuracy (a
    diverged run leaves its pair out; `complete_pairs`), tasks as strata."""
    return paired_by_task(*complete_pairs(frame, base, column), confidence)


def paired_by_task(values: pd.Series, base_values: pd.Series, confidence: float) -> Paired:
    """`stats.paired` of aligned (task, seed) values, tasks as strata."""
    return paired(values.to_numpy(dtype=float), base_values.to_numpy(dtype=float), confidence,
                  strata=task_strata(values))


def task_strata(values: pd.Series) -> list[str]:
    """The task of each (task, seed) entry: the strata of `stats.paired`."""
    return list(values.index.get_level_values("task"))


def task_avg(values: pd.Series) -> float:
    """Avg of (task, seed) values: the mean over tasks of each task's mean."""
    return stratified_mean(values.to_numpy(dtype=float), task_strata(values))


MIN_PAIRS = 3  # no interval or test from fewer pairs


def delta_cells(p: Paired) -> list[str]:
    """Cells 'Δ [CI]', 'p (t)', 'p (Wilcoxon)', 'n' of a paired comparison; below
    `MIN_PAIRS` pairs only the mean difference (no interval, no test)."""
    if p.n < MIN_PAIRS or np.isnan(p.ci_low):
        return [f"{fmt(p.mean, signed=True)} [—, —]", DASH, DASH, str(p.n)]
    return [f"{fmt(p.mean, signed=True)} [{fmt(p.ci_low, signed=True)}, "
            f"{fmt(p.ci_high, signed=True)}]", fmt_p(p.p_t), fmt_p(p.p_wilcoxon), str(p.n)]


COLLAPSED_NOTE = ("k/n coll.: k of the n runs collapsed (completed at chance level or below: "
                  "final accuracy within {margin:g} points of 100 / classes); they are "
                  "included in the mean ± std and in the paired differences.")


def collapsed_count(frame: pd.DataFrame) -> int:
    """Runs of `frame` marked collapsed (0 when the summary predates the column)."""
    return int(frame["collapsed"].fillna(False).astype(bool).sum()) if "collapsed" in frame else 0


def summary_cell(values: pd.Series, rep: str | None, collapsed: int = 0) -> str:
    """'mean ± std' over the values with an accuracy, 'k/n div.' when k of them diverged,
    'k/n coll.' when `collapsed` of the runs behind them collapsed."""
    arr = values.to_numpy(dtype=float)
    finite = arr[~np.isnan(arr)]
    if arr.size and not finite.size:
        text = f"diverged ({arr.size}/{arr.size})"
    else:
        mean, std = mean_std(finite)
        text = f"{fmt(mean)} ± {fmt(std)}" if not np.isnan(std) else fmt(mean)
        if finite.size < arr.size:
            text += f" ({arr.size - finite.size}/{arr.size} div.)"
    if collapsed:
        text += f" ({collapsed}/{arr.size} coll.)"
    return text if rep is None else f"{text} (rep. {rep})"


def _diverged_note(table: Table, frame: pd.DataFrame, column: str) -> None:
    """The notes explaining 'div.' and 'coll.' cells, once per table, where they occur."""
    if frame[column].isna().any() and DIVERGED_NOTE not in table.notes:
        table.notes.append(DIVERGED_NOTE)
    note = COLLAPSED_NOTE.format(margin=COLLAPSE_MARGIN_PP)
    if collapsed_count(frame) and note not in table.notes:
        table.notes.append(note)


def _rep(reported: ReportedNumbers | None, dataset: str, method: str, variant: str,
         task: str) -> str | None:
    if reported is None or not reported.published(dataset):
        return None
    value = reported.value(dataset, method, variant, task)
    return NOT_RECORDED if value is None else fmt(value, 2).rstrip("0").rstrip(".")


def complete_pairs(frame: pd.DataFrame, base: pd.DataFrame | None, column: str
                   ) -> tuple[pd.Series, pd.Series | None]:
    """Accuracy per (task, seed) of `frame`'s runs that completed, restricted to the pairs
    whose `base` run completed too (when `base` is given); and the base on those pairs."""
    a = _values(frame, column).dropna()
    if base is None:
        return a, None
    b = _values(base, column).dropna()
    common = a.index.intersection(b.index)
    return a.loc[common], b.loc[common]


def count_cell(k: int, n: int) -> str:
    """'k/n' runs (a dash when the row has no runs)."""
    return f"{k}/{n}" if n else DASH


AVG_NOTE = ("Avg: mean over tasks of each task's mean over the row's runs that completed "
            "(diverged runs have no accuracy); for a row below a baseline, over the n pairs "
            "where both it and the baseline completed, the same pairs as its Δ, so that Δ = "
            "its Avg minus the baseline's Avg over those pairs. n: those runs or pairs.")
COUNT_NOTE = ("div.: runs that diverged (non-finite loss; failure.json names the iteration), "
              "left out of every mean and of Δ; coll.: runs that completed at chance level or "
              "below (final accuracy within {margin:g} points of 100 / classes), kept in the "
              "means and in Δ; both out of the row's runs. '(k/n div.)' in a task cell: k of "
              "that task's n runs diverged.")


def dataset_table(config: Mapping[str, Any], runs: pd.DataFrame, dataset: str,
                  reported: ReportedNumbers | None = None) -> Table:
    """Rows baseline, +GH, +GH++, ... per method; columns every task, Avg and Δ over the same
    complete (task, seed) pairs, and the diverged and collapsed counts (paper shape plus)."""
    tcfg = config.get("tables", {})
    protocol, confidence = tcfg.get("protocol", "last"), tcfg.get("confidence", 0.95)
    baseline = tcfg.get("baseline", "sum")
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


def seed_ranges(seeds: Sequence[int]) -> str:
    """Seeds as ranges: [0, 1, 2, 5] -> '0–2, 5'."""
    out: list[str] = []
    for seed in sorted(map(int, seeds)):
        if out and out[-1][1] == seed - 1:
            out[-1][1] = seed
        else:
            out.append([seed, seed])
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in out)


def protocol_table(config: Mapping[str, Any], runs: pd.DataFrame) -> Table:
    """Avg accuracy under the three protocols for every dataset, method and variant."""
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
        _diverged_note(table, data, metric_column(config, dataset, "last"))
    table.notes += [PROTOCOL_TEXT["last"] + "; " + PROTOCOL_TEXT["source_val"] + "; " +
                    PROTOCOL_TEXT["oracle"] + ".",
                    "The released code reports oracle numbers (REFERENCE 1.6); only last and "
                    "source_val use no target labels.",
                    "Per seed: the mean over the row's tasks, over the seeds that ran all of "
                    "them (rows with extra seeds on some tasks: their first seeds)."]
    return table


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


def step_cpu_ms(frame: pd.DataFrame) -> pd.Series:
    """CPU ms per training step of each run (docs/run-outputs.md cost fields); runs without
    cpu_s fall back to the median wall time per step."""
    cpu = (1e3 * frame["cpu_s"] * (frame["train_s"] / frame["wall_s"]) / frame["steps"]
           if {"cpu_s", "train_s", "wall_s"} <= set(frame.columns) else None)
    if cpu is None:
        return frame["step_ms_median"].astype(float)
    return cpu.fillna(frame["step_ms_median"]).astype(float)


def cost_frame(config: Mapping[str, Any], runs: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, method, variant): extra passes, median CPU time per step
    (`step_cpu_ms`), its median ratio to the baseline's on the same (task, seed), median peak
    memory, number of runs."""
    baseline = config.get("tables", {}).get("baseline", "sum")
    rows = []
    for dataset in dataset_table_stems(config):
        data = runs[runs["dataset"] == dataset]
        for method in method_order(config):
            mdata = data[data["method"] == method]
            mdata = mdata.assign(step_cpu=step_cpu_ms(mdata))
            base = mdata[mdata["variant"] == baseline].set_index(["task", "seed"])
            for variant in all_variants(config):
                vdata = mdata[mdata["variant"] == variant]
                if vdata.empty:
                    continue
                fwd, bwd = harmonizer_passes(config, dataset, method, variant)
                v = vdata.set_index(["task", "seed"])
                common = v.index.intersection(base.index)
                ratio = v.loc[common, "step_cpu"] / base.loc[common, "step_cpu"]
                rows.append({
                    "dataset": dataset, "method": method, "variant": variant,
                    "extra_fwd": fwd, "extra_bwd": bwd,
                    "step_ms": float(vdata["step_cpu"].median()),
                    "ratio": float(ratio.median()) if len(common) else float("nan"),
                    "peak_mb": float(vdata["peak_mem_mb"].median()), "runs": len(vdata),
                    "diverged": (int(vdata["status"].eq("diverged").sum())
                                 if "status" in vdata else 0),
                    "devices": ", ".join(sorted(map(str, vdata["device"].dropna().unique()))),
                    "mem_kinds": ", ".join(sorted(map(str,
                                                      vdata["peak_mem_kind"].dropna().unique()))),
                })
    return pd.DataFrame(rows)


def cost_table(config: Mapping[str, Any], runs: pd.DataFrame) -> Table:
    """Step time and peak memory per method and harmonizer, with the extra passes."""
    frame = cost_frame(config, runs)
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


def t_sweep_table(config: Mapping[str, Any], runs: pd.DataFrame) -> Table:
    """GH++ trade-off t: accuracy and paired difference to the baseline per t."""
    tcfg = config["tables"]
    sweep = tcfg["t_sweep"]
    baseline = tcfg.get("baseline", "sum")
    protocol, confidence = tcfg.get("protocol", "last"), tcfg.get("confidence", 0.95)
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
    _diverged_note(table, data, col)
    return table


def build_tables(config: Mapping[str, Any], runs: pd.DataFrame,
                 reported: ReportedNumbers | None,
                 history: Mapping[str, pd.DataFrame] | None = None) -> dict[str, Table]:
    """Every table of the config, keyed by file stem (`ghuda.report.outputs.table_stems`);
    the ladder table also reads the histories (`history`: the summary's ``train`` and
    ``eval`` frames)."""
    tables = {ds: dataset_table(config, runs, ds, reported)
              for ds in dataset_table_stems(config)}
    tables["protocols"] = protocol_table(config, runs)
    tables["cost"] = cost_table(config, runs)
    if config.get("tables", {}).get("t_sweep"):
        tables["ghpp_t_sweep"] = t_sweep_table(config, runs)
    if config.get("tables", {}).get("ladder"):
        from ghuda.report.ladder import ladder_table

        if history is None:
            raise ValueError("the ladder table needs the run histories (history_train, "
                             "history_eval)")
        tables["ladder"] = ladder_table(config, runs, history["train"], history["eval"])
    return tables


def write_tables(tables: Mapping[str, Table], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Render each table as <stem>.md and <stem>.tex (atomically)."""
    out = Path(out_dir)
    written = []
    for stem, table in tables.items():
        for ext, render in (("md", to_markdown), ("tex", to_latex)):
            path = out / f"{stem}.{ext}"
            write_text(path, render(table))
            written.append(path)
    return written
