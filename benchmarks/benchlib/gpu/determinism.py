"""gpu_check's ``determinism`` section: DANN + GH on digits-mini twice with one seed, with
``train.deterministic`` false and true: are the two histories (losses, statistics,
accuracies) identical, and what does each mode's step cost?"""

from __future__ import annotations

import hashlib
from pathlib import Path

from benchlib.gpu.engine import device_overrides, digits_root, engine_run, row_from_metrics
from benchlib.gpu.rows import Context, Row


def _history_digest(run: Path) -> str:
    return hashlib.sha256((run / "history.jsonl").read_bytes()).hexdigest()[:16]


def run(ctx: Context) -> list[Row]:
    """A row per mode: identical or differ, both last accuracies and history digests."""
    s = ctx.sizes
    try:
        root = digits_root(ctx)
    except (ImportError, FileNotFoundError) as err:
        return [Row("determinism", "all", status="skipped", note=str(err))]
    rows = []
    for flag in ("false", "true"):
        runs, metrics = [], []
        for k in range(2):
            out = ctx.scratch / "runs" / f"determinism_{flag}_{k}"
            metrics.append(engine_run(
                [f"dataset.root={root}", "method.name=dann", "harmonizer.name=gh",
                 f"train.steps={s.determinism_steps}", f"train.eval_every={s.determinism_steps}",
                 "train.checkpoint_every=0", f"train.deterministic={flag}",
                 *device_overrides(ctx)], out))
            runs.append(out)
        digests = [_history_digest(r) for r in runs]
        accs = [float(m["protocols"]["last"]["acc"]) for m in metrics]
        row = row_from_metrics(Row("determinism", f"dann+gh deterministic={flag}",
                                   backbone="digit_cnn", dataset="digits_mini",
                                   steps=s.determinism_steps, batch=32), metrics[0])
        row.status = "identical" if digests[0] == digests[1] else "differ"
        row.note = (f"same seed twice: last acc {accs[0]:.2f} / {accs[1]:.2f}; history "
                    f"sha256 {digests[0]} / {digests[1]}; ms/step of the first run")
        rows.append(row)
    return rows
