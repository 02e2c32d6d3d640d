"""gpu_check's ``digits`` section: one short digits-mini run per method (harmonizer sum) and
DANN with every two-pass harmonizer, through the engine: median ms per step and final target
accuracy."""

from __future__ import annotations

from benchlib.gpu.engine import device_overrides, digits_root, engine_run, row_from_metrics
from benchlib.gpu.rows import Context, Row


def run(ctx: Context) -> list[Row]:
    """A row per (method, harmonizer) of ``digits_runs``; one skipped row without
    digits-mini."""
    from ghuda import methods

    s = ctx.sizes
    try:
        root = digits_root(ctx)
    except (ImportError, FileNotFoundError) as err:
        return [Row("digits", "all", status="skipped",
                    note=f"digits-mini not under {ctx.data_root} and cannot be built here: "
                         f"{err}")]
    rows = []
    for method, harmonizer in s.digits_runs:
        needs_vit = methods.get(method).requires_backbone == "vit"  # SSRT, as the configs do
        overrides = [f"dataset.root={root}", f"method.name={method}",
                     *(["model.backbone=tiny_vit"] if needs_vit else []),
                     f"harmonizer.name={harmonizer}", f"train.steps={s.digits_steps}",
                     f"train.eval_every={s.digits_steps}", "train.checkpoint_every=0",
                     *device_overrides(ctx)]
        metrics = engine_run(overrides, ctx.scratch / "runs" / f"{method}_{harmonizer}")
        rows.append(row_from_metrics(
            Row("digits", f"{method}+{harmonizer}",
                backbone="tiny_vit" if needs_vit else "digit_cnn",
                dataset="digits_mini", steps=s.digits_steps, batch=32,
                note="engine run: median step (ms), target accuracy (%) after the run"),
            metrics))
    return rows
