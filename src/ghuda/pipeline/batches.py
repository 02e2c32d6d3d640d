"""Group a pipeline's runs into training batches: one Snakemake job, one `ghuda train-batch`
process (`ghuda.engine.batch`) per batch (issue 26).

A batch holds the runs of one variant (dataset, task, method, harmonizer variant) whose seeds
fall in one block of ``train_batch_size`` consecutive seeds: seed ``s`` is in block
``s // size``. Adding seeds therefore changes only the batches of the blocks they fall in (the
others keep their marker and are not run again), and a changed batch skips its complete runs.
A batch job's output is a marker, ``<results>/batches/<batch>.json``, not the runs'
metrics.json: Snakemake deletes a job's declared outputs before running it, which would
discard every complete run of a batch that gained one seed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from ghuda.pipeline.grid import Run, task_dir


@dataclass(frozen=True)
class TrainBatch:
    """Runs of one variant in one seed block, trained one after the other in one process."""

    rel_path: str
    runs: tuple[Run, ...]

    @property
    def resources(self) -> dict[str, int]:
        """What the job reserves: the largest threads, GPUs and memory of its runs (they run
        one at a time) and the sum of their run times (minutes)."""
        res = [r.resources for r in self.runs]
        return {"threads": max(r["threads"] for r in res), "gpu": max(r["gpu"] for r in res),
                "mem_mb": max(r["mem_mb"] for r in res),
                "runtime": sum(r["runtime"] for r in res)}

    def requests(self, results: str) -> str:
        """The `ghuda train-batch` requests file (JSON) under results folder `results`: each
        run's folder, log and run config as YAML (the text its request.yaml holds)."""
        return json.dumps([{
            "out": f"{results}/{r.rel_dir}",
            "log": f"{results}/logs/train/{r.rel_dir}.log",
            "request": yaml.safe_dump(r.run_config, sort_keys=True),
        } for r in self.runs], sort_keys=True)

    def saves_features(self) -> bool:
        """Whether a run of the batch writes features.npz (the t-SNE figure reads them)."""
        return any(r.run_config.get("train", {}).get("save_features") for r in self.runs)


def train_batches(runs: Iterable[Run], size: int) -> dict[str, TrainBatch]:
    """The batches of `runs` (module docstring), keyed by path relative to ``batches/``:
    ``<dataset>/<source>__<target>/<method>/<variant>/seeds<first>-<last>``."""
    if size < 1:
        raise ValueError(f"train_batch_size must be at least 1, not {size}")
    groups: dict[str, list[Run]] = {}
    for run in runs:
        first = run.seed // size * size
        rel = PurePosixPath(run.dataset, task_dir(run.task), run.method, run.variant,
                            f"seeds{first}-{first + size - 1}")
        groups.setdefault(str(rel), []).append(run)
    return {rel: TrainBatch(rel, tuple(sorted(group, key=lambda r: r.seed)))
            for rel, group in groups.items()}


def stale(batch: TrainBatch, results: str, marker: str) -> bool:
    """Whether the batch's `marker` exists while a run of the batch has no metrics.json (a run
    folder or its metrics.json removed by hand): then the batch must run again."""
    return Path(marker).exists() and not all(
        (Path(results) / r.rel_dir / "metrics.json").exists() for r in batch.runs)
