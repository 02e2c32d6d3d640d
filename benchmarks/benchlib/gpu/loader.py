"""gpu_check's ``loader`` section: CDAN+E on the Office-31 tree through the engine, with its
input pipeline (persistent workers, pinned memory, prefetch) reading the JPEG files, the same
reading the decoded uint8 cache (``dataset.decoded_cache``), and on cached batches (compute
only): does the input pipeline starve the device?"""

from __future__ import annotations

import torch
from torch import Tensor

from benchlib.gpu.engine import fixture_dataset, paper_run
from benchlib.gpu.rows import Context, Row

NOTES = {"data": "{} workers per stream, JPEG decoded per item",
         "decoded": "{} workers per stream, read from the decoded uint8 cache",
         "cached": "first batch cached in pinned memory: compute only"}


class CachedBatches:
    """A training stream (`ghuda.engine.data.BatchStream`'s `get` and `indices`) that returns
    the first batch of `stream`, pinned when CUDA is there, at every step: the engine step
    with the input pipeline taken out (compute and host-to-device copy only)."""

    def __init__(self, stream: object) -> None:
        x, y = stream.get(0)  # type: ignore[attr-defined]
        if torch.cuda.is_available():
            x, y = x.pin_memory(), y.pin_memory()
        self.batch, self.stream = (x, y), stream

    def get(self, step: int) -> tuple[Tensor, Tensor]:
        """The first batch, whatever the step."""
        return self.batch

    def indices(self, step: int) -> Tensor:
        """The wrapped stream's dataset indices of iteration `step`."""
        return self.stream.indices(step)  # type: ignore[attr-defined]


def run(ctx: Context) -> list[Row]:
    """A row per pipeline (files, decoded cache, more workers, cached), ms per step and its
    ratio to the cached step."""
    from ghuda import config
    from ghuda.engine.trainer import Trainer

    s = ctx.sizes
    root = fixture_dataset("office31", ctx)
    overrides, batch, workers = paper_run("office31", root, s.loader_backbone, "cdan",
                                          s.loader_steps, ctx)
    runs = {"data": workers, "decoded": workers,
            **{f"data_w{w}": w for w in s.loader_more_workers}, "cached": 0}
    medians, status = {}, {}
    for name, n_workers in runs.items():
        cfg = config.load(None, [*overrides, f"train.num_workers={n_workers}",
                                 f"dataset.decoded_cache={str(name == 'decoded').lower()}"])
        trainer = Trainer(cfg, ctx.scratch / "runs" / f"loader_{name}", bar=False)
        trainer.setup()
        if name == "cached":
            trainer.src, trainer.tgt = CachedBatches(trainer.src), CachedBatches(trainer.tgt)
        metrics = trainer.run()
        medians[name] = float(metrics["cost"]["step_ms_median"])
        status[name] = metrics.get("status", "ok")
    return [Row("loader", f"cdan+{name}", dataset="office31", backbone=s.loader_backbone,
                batch=batch, steps=s.loader_steps, ms_per_step=ms, status=status[name],
                vs_plain=ms / medians["cached"],
                note=f"{NOTES.get(name, NOTES['data']).format(runs[name])}; "
                     "vs_plain = x the cached step")
            for name, ms in medians.items()]
