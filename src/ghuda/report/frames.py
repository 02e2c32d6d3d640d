"""Statistics of the aggregated runs frame (``runs.csv``, `ghuda.report.aggregate`): values per
(task, seed), balanced seeds, paired comparisons with tasks as strata, collapse counts and the
cost per step."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from ghuda.pipeline.config import settings
from ghuda.report.lookup import (
    all_variants,
    dataset_table_stems,
    harmonizer_passes,
    method_order,
    row_variants,
)
from ghuda.report.stats import Paired, paired, stratified_mean


def _values(frame: pd.DataFrame, column: str) -> pd.Series:
    """Accuracy per (task, seed)."""
    return frame.set_index(["task", "seed"])[column].sort_index()


def row_frames(config: Mapping[str, Any], data: pd.DataFrame
               ) -> Iterator[tuple[str, pd.DataFrame, list[tuple[str, pd.DataFrame]]]]:
    """Per method in config order: (method, its baseline's runs in `data`, [(variant, its
    runs)] for the row variants that have runs), the rows of a table under that method."""
    baseline = settings(config).tables.baseline
    for method in method_order(config):
        mdata = data[data["method"] == method]
        rows = [(v, mdata[mdata["variant"] == v]) for v in row_variants(config)]
        yield method, mdata[mdata["variant"] == baseline], [(v, f) for v, f in rows
                                                             if not f.empty]


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


def collapsed_count(frame: pd.DataFrame) -> int:
    """Runs of `frame` marked collapsed (0 when the summary predates the column)."""
    return int(frame["collapsed"].fillna(False).astype(bool).sum()) if "collapsed" in frame else 0


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
    baseline = settings(config).tables.baseline
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
