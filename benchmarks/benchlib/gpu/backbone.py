"""gpu_check's ``backbone`` section: the engine step (source-only, the dataset's paper batch
size and ``num_workers``, no pretrained weights) of each backbone configs/paper.yaml runs on
each paper dataset, on a generated tree in that dataset's layout: the unit step that `ghuda
report budget --gpu-csv` uses."""

from __future__ import annotations

from benchlib.gpu.engine import (
    engine_run,
    fixture_dataset,
    paper_backbones,
    paper_datasets,
    paper_run,
    row_from_metrics,
)
from benchlib.gpu.rows import Context, Row


def run(ctx: Context) -> list[Row]:
    """A row per (dataset, backbone); a skipped row for a dataset whose tree failed."""
    s = ctx.sizes
    rows = []
    for dataset in paper_datasets(s):
        backbones = paper_backbones(dataset)
        if s.stand_in is not None and dataset != "digits":  # --quick: a tiny stand-in
            backbones = [s.stand_in]
        try:
            root = fixture_dataset(dataset, ctx, s.backbone_tree_scale)
        except Exception as err:  # reported in the CSV; the other datasets go on
            rows.append(Row("backbone", "source_only", dataset=dataset, status="skipped",
                            note=f"fixture tree: {type(err).__name__}: {err}"))
            continue
        for backbone in backbones:
            overrides, batch, workers = paper_run(dataset, root, backbone, "source_only",
                                                  s.backbone_steps, ctx)
            metrics = engine_run(overrides, ctx.scratch / "runs" / f"{dataset}_{backbone}")
            rows.append(row_from_metrics(
                Row("backbone", "source_only", dataset=dataset, backbone=backbone,
                    batch=batch, steps=s.backbone_steps,
                    note=f"generated {dataset} tree, {workers} workers, engine step "
                         "(data loading included)"), metrics))
    return rows
