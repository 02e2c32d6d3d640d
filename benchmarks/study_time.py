"""Where a finished pipeline run's time went (issue 26): job-seconds per method and harmonizer
variant from the Snakemake benchmark files (one per training batch and per extension run),
split into the runs' own wall time (training, evaluation; metrics.json `cost`) and the
jobs' overhead (process start, imports, data); and another grid of the same config (e.g. the
config before the seed rule, ``--before REV``) projected at the same measured per-run cost
plus a per-process start-up cost, as one process per run.

    python benchmarks/study_time.py --config configs/digits_full.yaml \\
        --before 65ca88f --startup-s 2.3 --out benchmarks/results/study_time_digits_full.csv

Nothing is timed here: the numbers come from the run folders and benchmark files under the
config's results directory (which must hold a finished run).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import yaml
from benchlib.csv_out import write_csv

from ghuda.extensions.grid import expand_extension_runs
from ghuda.pipeline.config import load_config, validate_schema
from ghuda.pipeline.grid import expand_runs

FIELDS = ["group", "method", "variant", "runs", "job_s", "run_wall_s", "train_s", "eval_s",
          "overhead_s", "before_runs", "before_job_s"]


def _tsv_seconds(path: Path) -> float:
    """The wall seconds a Snakemake benchmark file recorded (column ``s``)."""
    rows = list(csv.DictReader(io.StringIO(path.read_text()), delimiter="\t"))
    if not rows:
        raise SystemExit(f"study_time: {path} holds no benchmark row")
    return float(rows[-1]["s"])


def _metrics(path: Path) -> dict:
    if not path.exists():
        raise SystemExit(f"study_time: {path} is missing: is the pipeline run finished?")
    return json.loads(path.read_text())


def _config_at(rev: str, path: str) -> dict:
    """The pipeline config as committed at `rev` (schema defaults filled)."""
    text = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True,
                          check=True).stdout
    return validate_schema(yaml.safe_load(text), source=f"{rev}:{path}")


def study_rows(config: dict, before: dict | None, startup_s: float) -> list[dict]:
    """One row per (method, variant) of the training grid and per (extension, variant)."""
    res = Path(config["results_dir"]) / config["name"]
    rows: dict[tuple[str, str, str], dict] = defaultdict(lambda: dict.fromkeys(
        ["runs", "job_s", "run_wall_s", "train_s", "eval_s"], 0.0))
    for tsv in sorted((res / "benchmarks" / "train").rglob("*.tsv")):
        parts = tsv.relative_to(res / "benchmarks" / "train").parts  # ds/task/method/variant/…
        rows[("train", parts[2], parts[3])]["job_s"] += _tsv_seconds(tsv)
    for run in expand_runs(config):
        cost = _metrics(res / run.rel_dir / "metrics.json")["cost"]
        row = rows[("train", run.method, run.variant)]
        row["runs"] += 1
        row["run_wall_s"] += cost["wall_s"]
        row["train_s"] += cost.get("train_s") or 0.0
        row["eval_s"] += cost.get("eval_s") or 0.0
    for spec in expand_extension_runs(config):
        rel = Path("extensions") / spec.extension / spec.data / spec.variant / f"seed{spec.seed}"
        row = rows[("extension", spec.extension, spec.variant)]
        row["runs"] += 1
        row["job_s"] += _tsv_seconds(res / "benchmarks" / rel.with_suffix(".tsv"))
        cost = _metrics(res / rel / "metrics.json")["cost"]
        row["run_wall_s"] += cost["wall_s"]
        row["train_s"] += cost.get("train_s") or 0.0
        row["eval_s"] += cost.get("eval_s") or 0.0
    counts: Counter[tuple[str, str, str]] = Counter()
    if before is not None:
        counts.update(("train", r.method, r.variant) for r in expand_runs(before))
        counts.update(("extension", s.extension, s.variant)
                      for s in expand_extension_runs(before))
    out = []
    for key in sorted(set(rows) | set(counts)):
        row = rows[key]
        per_run = row["run_wall_s"] / row["runs"] if row["runs"] else float("nan")
        n_before = counts.get(key, 0)
        out.append({"group": key[0], "method": key[1], "variant": key[2], **row,
                    "overhead_s": row["job_s"] - row["run_wall_s"],
                    "before_runs": n_before if before is not None else "",
                    "before_job_s": (n_before * (per_run + startup_s) if before is not None
                                     and n_before else (0.0 if before is not None else ""))})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="pipeline config of the finished run")
    p.add_argument("--before", metavar="REV",
                   help="git revision whose version of --config to project (one process per run)")
    p.add_argument("--startup-s", type=float, default=0.0,
                   help="seconds of process start-up per run in the projection (measured "
                   "separately)")
    p.add_argument("--out", type=Path, help="CSV to write")
    args = p.parse_args(argv)
    config = load_config(args.config)
    before = _config_at(args.before, args.config) if args.before else None
    rows = study_rows(config, before, args.startup_s)
    if args.out:
        write_csv(args.out, FIELDS, rows)
    print("| group | method | variant | runs | job-min | of which runs | overhead | before runs "
          "| before job-min |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    total = Counter()
    for r in rows:
        print(f"| {r['group']} | {r['method']} | {r['variant']} | {r['runs']:.0f} | "
              f"{r['job_s'] / 60:.1f} | {r['run_wall_s'] / 60:.1f} | {r['overhead_s'] / 60:.1f} "
              f"| {r['before_runs']} | "
              + (f"{r['before_job_s'] / 60:.1f} |" if r["before_job_s"] != "" else " |"))
        for k in ("runs", "job_s", "run_wall_s", "train_s", "eval_s", "overhead_s"):
            total[k] += r[k]
        if r["before_job_s"] != "":
            total["before_runs"] += r["before_runs"]
            total["before_job_s"] += r["before_job_s"]
    print(f"| all | | | {total['runs']:.0f} | {total['job_s'] / 60:.1f} | "
          f"{total['run_wall_s'] / 60:.1f} | {total['overhead_s'] / 60:.1f} | "
          f"{total['before_runs']} | {total['before_job_s'] / 60:.1f} |")
    other = total["run_wall_s"] - total["train_s"] - total["eval_s"]
    print(f"\nruns' wall: training {total['train_s'] / 60:.1f} min, evaluation "
          f"{total['eval_s'] / 60:.1f} min, other {other / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
