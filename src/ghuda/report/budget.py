"""Compute budget of another config's jobs (configs/paper.yaml), estimated from this run.

The method is `METHOD` below; the output states it with the numbers.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping
from functools import cache
from typing import Any

import pandas as pd

from ghuda.pipeline.config import load_config
from ghuda.pipeline.grid import Run, expand_runs, run_config_for, split_task
from ghuda.report.io import write_text, write_with
from ghuda.report.render import Table, fmt, to_markdown
from ghuda.report.tables import method_label, step_cpu_ms

METHOD = """\
1. From this pipeline's runs (digits backbones, CPU), take the CPU time per training step
   s(m, v) of every (method, harmonizer variant): the run's process CPU time in its training
   loop times the loop's share of wall time outside evaluation, over its steps (median over
   runs; CPU time, not wall time, so that other processes on a shared machine do not inflate
   it). The unit u is one plain forward + backward of the backbone on one domain batch: the
   source-only step of the same pipeline (same machine, same conditions), scaled by the ratio
   of the two backbones' passes timed here when the method runs another backbone (SSRT's
   tiny ViT). R(m, v) = s / u is the cost of one training step in "backbone passes": it
   contains the target forward, the heads, the harmonizer's extra backward passes, MCD's
   inner steps.
2. Count the FLOPs of one forward + backward of the paper job's backbone at its input size
   and per-domain batch with torch.utils.flop_counter (on the meta device), F.
3. GPU time of a job = steps * R * max(F / P, f), plus the evaluation forwards
   (steps / eval_every passes over the target domain's images and the source validation
   split), where P is the sustained throughput that the target config assumes under `budget`
   and f the least time of one backbone pass it assumes (small models are bound by kernel
   launches, not FLOPs): assumptions about the GPU, not measurements.
Ignored: data loading, mixed precision beyond P, and the Python overhead of a tiny CPU model,
which inflates R, so the estimate leans high.
With a GPU check CSV (benchmarks/gpu_check.py; `--gpu-csv`, or `compute_budget.gpu_csv` in
this pipeline's config), step 3 uses, for every job whose (dataset, backbone) it measured,
the measured source-only step time t on the generated tree of that dataset's layout instead
of max(F / P, f): GPU time of a training step = R * t * (job batch / measured batch). That
time was measured through the engine, so it includes data loading and mixed precision.
"""
GPU_SECTION = "backbone"  # the gpu_check rows that give the unit step time
SOURCE_VAL_FRACTION = 0.1  # held-out source split evaluated with the target (engine default)
DEFAULT_SIZE = {"digit_cnn": 32, "tiny_vit": 32}


def _forward_backward(backbone, x) -> None:
    feats = backbone(x)
    feats.float().pow(2).mean().backward()


@cache
def backbone_flops(name: str, batch: int, size: int) -> tuple[float, float]:
    """(forward FLOPs, forward + backward FLOPs) of backbone `name` on `batch` images of
    size x size, counted on the meta device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ghuda.models import build_backbone

    with torch.device("meta"):
        backbone = build_backbone(name)
        x = torch.empty(batch, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        feats = backbone(x)
        fwd = counter.get_total_flops()
        feats.float().pow(2).mean().backward()
        total = counter.get_total_flops()
    return float(fwd), float(total)


@cache
def cpu_pass_ms(name: str, batch: int, size: int, threads: int, repeats: int = 30) -> float:
    """Median CPU time (ms) of one forward + backward of backbone `name` on the CPU."""
    import torch

    from ghuda.models import build_backbone

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    backbone = build_backbone(name).train()
    x = torch.randn(batch, 3, size, size)
    times = []
    for i in range(repeats + 5):
        backbone.zero_grad(set_to_none=True)
        start = time.process_time()
        _forward_backward(backbone, x)
        if i >= 5:
            times.append((time.process_time() - start) * 1e3)
    return statistics.median(times)


def _pass_setting(config: Mapping[str, Any], row: pd.Series) -> tuple[str, int, int, int]:
    """(backbone, per-domain batch, image size, threads) of a run of this pipeline."""
    rc = run_config_for(config, row["dataset"], row["task"], row["method"], row["variant"],
                        int(row["seed"]))
    backbone = rc.get("model", {}).get("backbone", row["backbone"])
    size = config["datasets"][row["dataset"]].get("image_size", DEFAULT_SIZE.get(backbone, 32))
    return (backbone, int(rc.get("train", {}).get("batch_size", 32)), int(size),
            int(rc.get("train", {}).get("threads") or 1))


def measured_ratios(config: Mapping[str, Any], runs: pd.DataFrame) -> pd.DataFrame:
    """R(m, v) per (method, variant) of this pipeline: CPU time per step over the CPU time of
    one backbone pass, u. When the pipeline ran source-only, u is its step time (measured in
    the same runs, so under the same conditions), scaled by the ratio of timed backbone passes
    when the method's backbone differs; otherwise u is the timed pass itself."""
    baseline = config.get("tables", {}).get("baseline", "sum")
    ref = runs[(runs["method"] == "source_only") & (runs["variant"] == baseline)]
    ref_setting = _pass_setting(config, ref.iloc[0]) if not ref.empty else None
    rows = []
    for (method, variant), frame in runs.groupby(["method", "variant"], sort=False):
        setting = _pass_setting(config, frame.iloc[0])
        unit = cpu_pass_ms(*setting)
        if ref_setting is not None:
            unit = float(step_cpu_ms(ref).median()) * unit / cpu_pass_ms(*ref_setting)
        step = float(step_cpu_ms(frame).median())
        rows.append({"method": method, "variant": variant, "backbone": setting[0],
                     "batch": setting[1], "step_ms": step, "unit_ms": unit, "R": step / unit,
                     "runs": len(frame)})
    return pd.DataFrame(rows)


def measured_steps(path: str | os.PathLike[str]) -> tuple[dict[tuple[str, str], tuple[float, int]],
                                                         str]:
    """{(dataset, backbone): (ms per step, batch)} of a gpu_check CSV's completed backbone
    rows, and a description of the source (device, date, path)."""
    frame = pd.read_csv(path)
    rows = frame[(frame["section"] == GPU_SECTION) & frame["ms_per_step"].notna()
                 & frame["status"].isin(["ok", "completed"])]
    if rows.empty:
        raise ValueError(f"{path}: no completed '{GPU_SECTION}' rows (benchmarks/gpu_check.py "
                         "writes them)")
    steps = {(r.dataset, r.backbone): (float(r.ms_per_step), int(r.batch))
             for r in rows.itertuples()}
    first = rows.iloc[0]
    return steps, f"{first['device']}, {first['date']}, `{path}`"


def job_estimate(target: Mapping[str, Any], run: Run, ratio: float,
                 measured: Mapping[tuple[str, str], tuple[float, int]] | None = None
                 ) -> dict[str, Any]:
    """GPU hours of one job of the target config, given its R (and measured unit steps)."""
    rc = run.run_config
    train = rc.get("train", {})
    ds = target["datasets"][run.dataset]
    backbone = rc.get("model", {}).get("backbone")
    if backbone is None:
        raise ValueError(f"{run.rel_dir}: the target config sets no model.backbone")
    steps, batch = int(train["steps"]), int(train["batch_size"])
    size = int(ds.get("image_size", 224))
    _, fb = backbone_flops(backbone, batch, size)
    fwd1, _ = backbone_flops(backbone, 1, size)
    source, target_domain = split_task(run.task)
    images = ds.get("domain_images", {})
    eval_images = images.get(target_domain, 0) + SOURCE_VAL_FRACTION * images.get(source, 0)
    evals = steps // int(train.get("eval_every", steps)) if train.get("eval_every") else 1
    tflops = float(target["budget"]["sustained_tflops"])
    floor_s = float(target["budget"].get("pass_floor_ms", 0.0)) / 1e3
    unit = (measured or {}).get((run.dataset, backbone))
    if unit is None:
        train_s, source = steps * ratio * max(fb / (tflops * 1e12), floor_s), "assumed"
    else:
        train_s = steps * ratio * unit[0] / 1e3 * batch / unit[1]
        source = "measured"
    hours = (train_s + evals * eval_images * fwd1 / (tflops * 1e12)) / 3600
    return {"dataset": run.dataset, "task": run.task, "method": run.method,
            "variant": run.variant, "seed": run.seed, "backbone": backbone, "steps": steps,
            "batch": batch, "R": ratio, "train_pflop": steps * ratio * fb / 1e15,
            "eval_pflop": evals * eval_images * fwd1 / 1e15, "gpu_hours": hours,
            "requested_min": run.resources["runtime"], "gpus": run.resources["gpu"],
            "step_source": source}


def estimate(config: Mapping[str, Any], runs: pd.DataFrame, target_path: str,
             measured: Mapping[tuple[str, str], tuple[float, int]] | None = None
             ) -> tuple[pd.DataFrame, pd.DataFrame, Mapping[str, Any]]:
    """(per-job estimates, measured ratios, target config)."""
    target = load_config(target_path)
    if "budget" not in target:
        raise ValueError(f"{target_path}: no 'budget' section (gpu, sustained_tflops, basis); "
                         "the estimate needs the GPU throughput it assumes")
    ratios = measured_ratios(config, runs)
    lookup = {(r.method, r.variant): r.R for r in ratios.itertuples()}
    jobs, missing = [], set()
    for run in expand_runs(target):
        ratio = lookup.get((run.method, run.variant))
        if ratio is None:
            missing.add((run.method, run.variant))
            continue
        jobs.append(job_estimate(target, run, ratio, measured))
    if missing:
        raise ValueError(f"{target_path}: no step-cost measurement in this pipeline for "
                         f"(method, variant) {sorted(missing)}; add them to this config's grid")
    return pd.DataFrame(jobs), ratios, target


def _step_source(jobs: pd.DataFrame, measured_from: str | None) -> str:
    """The sentence that says where the step times come from."""
    if measured_from is None:
        return ("Step times: the assumed GPU throughput below (no measured GPU check CSV "
                "given; `--gpu-csv` or `compute_budget.gpu_csv` takes one).")
    n = int((jobs["step_source"] == "measured").sum())
    return (f"Step times: **measured** by benchmarks/gpu_check.py ({measured_from}) for {n} "
            f"of {len(jobs)} jobs; the other {len(jobs) - n} use the assumed throughput "
            "below.")


def budget_markdown(jobs: pd.DataFrame, ratios: pd.DataFrame, target: Mapping[str, Any],
                    target_path: str, measured_from: str | None = None) -> str:
    """tables/compute_budget.md."""
    gpu = target["budget"]
    lines = [f"# Compute budget of `{target_path}` (estimate)", "",
             f"Estimated GPU time of all **{len(jobs)} jobs** of `{target_path}`: "
             f"**{jobs['gpu_hours'].sum():,.0f} GPU hours** on the assumed GPU "
             f"({gpu['gpu']}, sustained {gpu['sustained_tflops']} TFLOP/s, at least "
             f"{gpu.get('pass_floor_ms', 0)} ms per backbone pass: "
             f"{' '.join(str(gpu['basis']).split())}). Every job uses "
             f"{int(jobs['gpus'].max())} GPU.", "", _step_source(jobs, measured_from), "",
             "This is an **estimate**, not a measurement. Method:", "", METHOD, ""]
    per_ds = Table(caption="Per dataset", columns=["Dataset", "jobs", "GPU hours",
                                                  "median h/job", "max h/job",
                                                  "jobs over requested runtime"],
                   align="lrrrrr")
    for ds, frame in jobs.groupby("dataset", sort=False):
        over = int((frame["gpu_hours"] * 60 > frame["requested_min"]).sum())
        per_ds.add([target["datasets"][ds].get("label", ds), str(len(frame)),
                    f"{frame['gpu_hours'].sum():,.1f}", fmt(frame["gpu_hours"].median(), 2),
                    fmt(frame["gpu_hours"].max(), 2), str(over)])
    per_ds.add(["**total**", str(len(jobs)), f"{jobs['gpu_hours'].sum():,.1f}", "", "", ""])
    per_m = Table(caption="Per dataset, method and variant (sum over tasks and seeds)",
                  columns=["Dataset", "Method", "Variant", "backbone", "steps", "R",
                           "jobs", "GPU hours", "requested min/job"], align="llllrrrrr")
    for (ds, m, v), frame in jobs.groupby(["dataset", "method", "variant"], sort=False):
        per_m.add([ds, method_label(m), target["variants"][v]["label"],
                   frame["backbone"].iloc[0], str(int(frame["steps"].iloc[0])),
                   fmt(frame["R"].iloc[0], 2), str(len(frame)),
                   fmt(frame["gpu_hours"].sum(), 1), str(int(frame["requested_min"].max()))])
    meas = Table(caption="Measured step costs on this machine (the R of step 1)",
                 columns=["Method", "Variant", "backbone", "batch", "step (CPU ms)",
                          "1 pass (CPU ms)", "R", "runs"], align="llllrrrr")
    for r in ratios.itertuples():
        meas.add([method_label(r.method), r.variant, r.backbone, str(r.batch),
                  fmt(r.step_ms), fmt(r.unit_ms, 2), fmt(r.R, 2), str(r.runs)])
    lines += [to_markdown(per_ds), to_markdown(per_m), to_markdown(meas),
              "Every job is listed in `compute_budget_jobs.csv` (dataset, task, method, "
              "variant, seed, backbone, steps, batch, R, train and eval PFLOP, GPU hours, "
              "requested runtime).", ""]
    return "\n".join(lines)


def write_budget(config: Mapping[str, Any], runs: pd.DataFrame, target_path: str,
                 out_md: str | os.PathLike[str], out_csv: str | os.PathLike[str],
                 gpu_csv: str | os.PathLike[str] | None = None) -> float:
    """Write the budget table and the per-job CSV; returns the total GPU hours. `gpu_csv`
    (default: ``compute_budget.gpu_csv`` of `config`) gives measured GPU step times."""
    gpu_csv = gpu_csv or config.get("compute_budget", {}).get("gpu_csv")
    measured, measured_from = measured_steps(gpu_csv) if gpu_csv else (None, None)
    jobs, ratios, target = estimate(config, runs, target_path, measured)
    write_with(out_csv, lambda tmp: jobs.round(6).to_csv(tmp, index=False))
    write_text(out_md, budget_markdown(jobs, ratios, target, target_path, measured_from))
    return float(jobs["gpu_hours"].sum())
