"""Collect the run folders of a config into three tables (docs/run-outputs.md).

- ``runs.csv``: one row per run: identity, status (``completed`` or ``diverged``, with the
  iteration), accuracy under each protocol (empty for a diverged run; the unsupervised
  validators' protocols empty for a run recorded before they existed), conflict summary, cost,
  provenance;
- ``history_train.csv.gz``: one row per logged training step and harmonized pair (cos, angle,
  w1, w2, norms, conflict; the values of its two losses; the stage's reversal coefficient and
  discriminator accuracy);
- ``history_eval.csv.gz``: one row per evaluation (target and source-validation accuracy,
  and every validator score ``val_<name>`` the records hold).

Every run of the config's grid must have completed (metrics.json present); a missing or
mislabelled run is an error naming its folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ghuda.pipeline.grid import Run, expand_runs, split_task
from ghuda.runs import read_json, read_jsonl, write_with

PROTOCOLS = ("last", "source_val", "oracle")
KEYS = ["dataset", "task", "method", "variant", "seed"]
PAIR_FIELDS = ("cos", "angle_deg", "conflict", "w1", "w2", "norm1", "norm2", "norm_update",
               "fallback")
# `Stage.monitor` scalars of adversarial methods (issue 22): reversal coefficient, discriminator
# accuracy on the batch; empty for methods that log none
MONITOR_FIELDS = ("grl_coeff", "disc_acc")
EVAL_FIELDS = ("target_acc", "target_mean_class_acc", "source_val_acc",
               "source_val_mean_class_acc")
SCORE_PREFIX = "val_"  # validator scores of eval records (`ghuda.engine.validators`)


def score_fields(records: list[dict[str, Any]]) -> list[str]:
    """The validator score keys (``val_<name>``) of eval records, in first-seen order."""
    return list(dict.fromkeys(k for r in records for k in r if k.startswith(SCORE_PREFIX)))


def results_root(config: Mapping[str, Any]) -> Path:
    return Path(config["results_dir"]) / config["name"]


def run_dir(config: Mapping[str, Any], run: Run) -> Path:
    return results_root(config) / run.rel_dir


def _check_identity(path: Path, metrics: Mapping[str, Any], run: Run) -> None:
    got = metrics.get("run", {})
    source, target = split_task(run.task)
    want = {"dataset": run.run_config["dataset"]["name"], "source": source, "target": target,
            "method": run.method, "variant": run.variant, "seed": run.seed}
    bad = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    if bad:
        detail = ", ".join(f"{k}: found {g!r}, expected {w!r}" for k, (g, w) in bad.items())
        raise ValueError(f"{path}: metrics.json belongs to another run ({detail})")


# A completed run whose final accuracy is within this many points of chance (100 / classes), or
# below, is marked "collapsed" in the tables (counted next to its number, never left out).
COLLAPSE_MARGIN_PP = 2.0


def collapsed(status: str, last_acc: float | None, num_classes: int | None) -> bool:
    """Whether a completed run ended at chance level or below (`COLLAPSE_MARGIN_PP`)."""
    if status != "completed" or last_acc is None or not num_classes:
        return False
    return bool(last_acc <= 100.0 / num_classes + COLLAPSE_MARGIN_PP)


def run_row(run: Run, metrics: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """Flatten one metrics.json into a runs.csv row."""
    info = metrics["run"]
    row: dict[str, Any] = {k: getattr(run, k) for k in KEYS}
    failure = metrics.get("failure") or {}
    row.update(block=run.block, harmonizer=info.get("harmonizer"),
               backbone=info.get("backbone"), steps=info.get("steps"), run_dir=str(folder),
               status=metrics.get("status", "completed"),
               diverged_at=failure.get("iteration"))
    for proto in PROTOCOLS:
        if proto not in metrics["protocols"]:
            raise ValueError(f"{folder}/metrics.json: protocol {proto!r} missing; "
                             f"found {sorted(metrics['protocols'])}")
    for proto, entry in metrics["protocols"].items():
        # a diverged run has no accuracy (None): NaN in the frame, counted by the tables
        row[f"acc_{proto}"] = entry["acc"]
        row[f"mean_class_acc_{proto}"] = entry.get("mean_class_acc")
        row[f"step_{proto}"] = entry.get("step")
    row["collapsed"] = collapsed(row["status"], row["acc_last"], info.get("num_classes"))
    conflict = metrics.get("conflict") or {}
    row.update(conflict_fraction=conflict.get("fraction_conflicting"),
               mean_cos=conflict.get("mean_cos"), logged_steps=conflict.get("logged_steps"))
    cost = metrics.get("cost") or {}
    for key in ("wall_s", "cpu_s", "train_s", "eval_s", "steps_per_s", "step_ms_median",
                "peak_mem_mb", "peak_mem_kind", "device", "threads"):
        row[key] = cost.get(key)
    prov = metrics.get("provenance") or {}
    row.update(git_commit=prov.get("git_commit"), git_dirty=prov.get("git_dirty"))
    return row


def history_rows(run: Run, folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train pair rows, eval rows) of one run's history.jsonl."""
    train: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    ident = {k: getattr(run, k) for k in KEYS}
    path = folder / "history.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (metrics.json exists, so the run folder is "
                                "incomplete)")
    for rec in read_jsonl(path):
        kind = rec.get("kind")
        if kind == "train":
            for i, pair in enumerate(rec.get("pairs") or []):
                row = {**ident, "step": rec["step"], "stage": rec.get("stage"), "pair": i,
                       "first": pair.get("first"), "second": pair.get("second")}
                row.update({f: pair.get(f) for f in PAIR_FIELDS})
                losses = rec.get("losses") or {}
                row.update(loss_first=losses.get(pair.get("first")),
                           loss_second=losses.get(pair.get("second")))
                monitor = rec.get("monitor") or {}
                row.update({f: monitor.get(f) for f in MONITOR_FIELDS})
                train.append(row)
        elif kind == "eval":
            fields = [*EVAL_FIELDS, *score_fields([rec])]
            evals.append({**ident, "step": rec["step"], **{f: rec.get(f) for f in fields}})
    return train, evals


def aggregate(config: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Read every run of `config` and write runs.csv and the two history tables."""
    out = Path(out_dir)
    runs, train, evals = [], [], []
    missing = []
    for run in expand_runs(config):
        folder = run_dir(config, run)
        path = folder / "metrics.json"
        if not path.exists():
            missing.append(str(path))
            continue
        metrics = read_json(path)
        _check_identity(path, metrics, run)
        runs.append(run_row(run, metrics, folder))
        t, e = history_rows(run, folder)
        train.extend(t)
        evals.extend(e)
    if missing:
        shown = "\n  ".join(missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise FileNotFoundError(f"{len(missing)} run(s) of config {config['name']!r} have no "
                                f"metrics.json (not trained or not finished):\n  {shown}{more}")
    paths = {"runs": out / "runs.csv", "train": out / "history_train.csv.gz",
             "eval": out / "history_eval.csv.gz"}
    train_cols = [*KEYS, "step", "stage", "pair", "first", "second", *PAIR_FIELDS,
                  "loss_first", "loss_second", *MONITOR_FIELDS]
    eval_cols = [*KEYS, "step", *EVAL_FIELDS, *score_fields(evals)]
    frames = {"runs": pd.DataFrame(runs), "train": pd.DataFrame(train, columns=train_cols),
              "eval": pd.DataFrame(evals, columns=eval_cols)}
    for name, frame in frames.items():
        compression = "gzip" if paths[name].suffix == ".gz" else None
        # gzip without a timestamp, so identical inputs give identical bytes
        comp = {"method": "gzip", "mtime": 0} if compression else None
        write_with(paths[name], lambda tmp, f=frame, c=comp: f.to_csv(tmp, index=False,
                                                                       compression=c))
    return paths


def load_summary(summary_dir: str | os.PathLike[str]) -> dict[str, pd.DataFrame]:
    """Read what `aggregate` wrote."""
    d = Path(summary_dir)
    out = {}
    for name, file in (("runs", "runs.csv"), ("train", "history_train.csv.gz"),
                       ("eval", "history_eval.csv.gz")):
        path = d / file
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run `ghuda report aggregate` first")
        out[name] = pd.read_csv(path, keep_default_na=True, low_memory=False)
    return out
