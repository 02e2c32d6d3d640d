"""Compute budget of another config's jobs (configs/paper.yaml), estimated from this run.

The method is `METHOD` below; the output states it with the numbers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import pandas as pd

from ghuda.pipeline.config import load_config, settings
from ghuda.pipeline.grid import Run, expand_runs, run_config_for, split_task
from ghuda.report.frames import step_cpu_ms
from ghuda.report.lookup import method_label
from ghuda.report.render import Table, fmt, to_markdown
from ghuda.runs import write_text, write_with

METHOD = """\
1. From this pipeline's runs (digits backbones, CPU), take the CPU time per training step
   s(m, v) of every (method, harmonizer variant): the run's process CPU time in its training
   loop times the loop's share of wall time outside evaluation, over its steps (median over
   runs; CPU time, not wall time, so that other processes on a shared machine do not inflate
   it). The unit u is one plain forward + backward of the backbone on one domain batch: the
   source-only step of the same pipeline (same machine, same conditions), scaled by the ratio
   of the two backbones' CPU pass times when the method runs another backbone (SSRT's tiny
   ViT). Pass times are not timed when the report is built: they are read from a committed
   CSV of benchmarks/backbone_pass.py (named below with the machine that measured them).
   R(m, v) = s / u is the cost of one training step in "backbone passes": it
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
DEFAULT_SIZE = {"digit_cnn": 32, "lenet": 32, "dtn": 32, "tiny_vit": 32}


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


PassKey = tuple[str, int, int, int]  # (backbone, per-domain batch, image size, threads)
PASS_COLUMNS = ("backbone", "batch", "size", "threads", "cpu_ms_median", "machine", "torch",
                "date")


@dataclass(frozen=True)
class PassTimes:
    """Measured CPU times of one backbone forward + backward: a committed CSV written by
    benchmarks/backbone_pass.py. The budget reads them; it times nothing itself."""

    path: str
    ms: dict[PassKey, float]
    origin: dict[PassKey, str]  # "machine; torch version; date" of each row

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> PassTimes:
        """Read the CSV; a missing file or column is a ValueError naming the file."""
        try:
            frame = pd.read_csv(path)
        except FileNotFoundError:
            raise ValueError(f"{path}: backbone pass times not found (compute_budget."
                             "cpu_pass_csv); write them with `python benchmarks/backbone_pass.py"
                             f" --out {path}`") from None
        missing = sorted(set(PASS_COLUMNS) - set(frame.columns))
        if missing:
            raise ValueError(f"{path}: not a CSV of benchmarks/backbone_pass.py; it lacks the "
                             f"columns {missing}")
        keys = [(str(r.backbone), int(r.batch), int(r.size), int(r.threads))
                for r in frame.itertuples()]
        return cls(str(path), dict(zip(keys, frame["cpu_ms_median"].astype(float), strict=True)),
                   {k: f"{r.machine}; torch {r.torch}; {r.date}"
                    for k, r in zip(keys, frame.itertuples(), strict=True)})

    def of(self, key: PassKey) -> float:
        """CPU ms of one pass `key`; a ValueError naming the file and the missing row."""
        if key not in self.ms:
            backbone, batch, size, threads = key
            raise ValueError(f"{self.path}: no CPU pass time of {backbone} at batch {batch}, "
                             f"{size} px, {threads} thread(s), which this pipeline's runs use; "
                             "measure it with `python benchmarks/backbone_pass.py --settings "
                             f"{backbone}:{batch}:{size}:{threads}` and add its row")
        return self.ms[key]

    def describe(self, keys: list[PassKey]) -> str:
        """Where the pass times of `keys` come from: the file and the machines that measured."""
        origins = sorted({self.origin[k] for k in keys})
        return f"`{self.path}` (measured on {' | '.join(origins)})"


def pass_key(config: Mapping[str, Any], dataset: str, run_config: Mapping[str, Any],
             backbone: str | None = None) -> PassKey:
    """(backbone, per-domain batch, image size, threads) of a run of this pipeline; `backbone`
    when its run config names none."""
    backbone = run_config.get("model", {}).get("backbone", backbone)
    size = config["datasets"][dataset].get("image_size", DEFAULT_SIZE.get(backbone, 32))
    train = run_config.get("train", {})
    return (backbone, int(train.get("batch_size", 32)), int(size),
            int(train.get("threads") or 1))


def _pass_setting(config: Mapping[str, Any], row: pd.Series) -> PassKey:
    rc = run_config_for(config, row["dataset"], row["task"], row["method"], row["variant"],
                        int(row["seed"]))
    return pass_key(config, row["dataset"], rc, row["backbone"])


def measured_ratios(config: Mapping[str, Any], runs: pd.DataFrame, passes: PassTimes
                    ) -> pd.DataFrame:
    """R(m, v) per (method, variant) of this pipeline: CPU time per step over the CPU time of
    one backbone pass, u. When the pipeline ran source-only, u is its step time (measured in
    the same runs, so under the same conditions), scaled by the ratio of the measured backbone
    passes when the method's backbone differs; otherwise u is the measured pass itself."""
    baseline = settings(config).tables.baseline
    ref = runs[(runs["method"] == "source_only") & (runs["variant"] == baseline)]
    ref_setting = _pass_setting(config, ref.iloc[0]) if not ref.empty else None
    rows = []
    for (method, variant), frame in runs.groupby(["method", "variant"], sort=False):
        setting = _pass_setting(config, frame.iloc[0])
        unit = passes.of(setting)
        if ref_setting is not None:
            unit = float(step_cpu_ms(ref).median()) * unit / passes.of(ref_setting)
        step = float(step_cpu_ms(frame).median())
        rows.append({"method": method, "variant": variant, "backbone": setting[0],
                     "batch": setting[1], "size": setting[2], "threads": setting[3],
                     "step_ms": step, "unit_ms": unit, "R": step / unit, "runs": len(frame)})
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
    fwd, fb = backbone_flops(backbone, batch, size)
    fwd1 = fwd / batch  # per image: FLOPs are linear in the batch (and a batch of one cannot
    # pass a training-mode BatchNorm1d, as the released LeNet / DTN have)
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
             passes: PassTimes, measured: Mapping[tuple[str, str], tuple[float, int]] | None = None
             ) -> tuple[pd.DataFrame, pd.DataFrame, Mapping[str, Any]]:
    """(per-job estimates, measured ratios, target config), from this pipeline's `runs`, the
    backbone pass times `passes` and, when given, `measured` GPU steps."""
    target = load_config(target_path)
    if "budget" not in target:
        raise ValueError(f"{target_path}: no 'budget' section (gpu, sustained_tflops, basis); "
                         "the estimate needs the GPU throughput it assumes")
    ratios = measured_ratios(config, runs, passes)
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
                    target_path: str, passes_from: str, measured_from: str | None = None) -> str:
    """tables/compute_budget.md; `passes_from` says where the backbone pass times come from."""
    gpu = target["budget"]
    lines = [f"# Compute budget of `{target_path}` (estimate)", "",
             f"Estimated GPU time of all **{len(jobs)} jobs** of `{target_path}`: "
             f"**{jobs['gpu_hours'].sum():,.0f} GPU hours** on the assumed GPU "
             f"({gpu['gpu']}, sustained {gpu['sustained_tflops']} TFLOP/s, at least "
             f"{gpu.get('pass_floor_ms', 0)} ms per backbone pass: "
             f"{' '.join(str(gpu['basis']).split())}). Every job uses "
             f"{int(jobs['gpus'].max())} GPU.", "", _step_source(jobs, measured_from), "",
             f"Backbone pass times (step 1): {passes_from}, written by "
             "benchmarks/backbone_pass.py; nothing is timed when this table is built.", "",
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
                 gpu_csv: str | os.PathLike[str] | None = None,
                 pass_csv: str | os.PathLike[str] | None = None) -> float:
    """Write the budget table and the per-job CSV; returns the total GPU hours. `pass_csv`
    (default: ``compute_budget.cpu_pass_csv`` of `config`) gives the backbone pass times,
    `gpu_csv` (default: ``compute_budget.gpu_csv``) measured GPU step times."""
    settings = config.get("compute_budget", {})
    gpu_csv = gpu_csv or settings.get("gpu_csv")
    pass_csv = pass_csv or settings.get("cpu_pass_csv")
    if pass_csv is None:
        raise ValueError("compute budget: no backbone pass times; set compute_budget."
                         "cpu_pass_csv (benchmarks/backbone_pass.py writes the CSV)")
    passes = PassTimes.read(pass_csv)
    measured, measured_from = measured_steps(gpu_csv) if gpu_csv else (None, None)
    jobs, ratios, target = estimate(config, runs, target_path, passes, measured)
    used = [(r.backbone, r.batch, r.size, r.threads) for r in ratios.itertuples()]
    write_with(out_csv, lambda tmp: jobs.round(6).to_csv(tmp, index=False))
    write_text(out_md, budget_markdown(jobs, ratios, target, target_path,
                                       passes.describe(used), measured_from))
    return float(jobs["gpu_hours"].sum())
