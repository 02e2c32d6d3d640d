"""A UDA run of any method and harmonizer: build it, drive the engine's loop, write it.

The `Trainer` is the `ghuda.engine.loop.LoopTask` of a UDA method (the extension tasks are
the loop's other client, `ghuda.extensions.loop`). One iteration: set the learning rates,
draw the keyed source and target batches, and run each `Stage` the method yields through
`ghuda.engine.step.run_stage` (the harmonized step); train records carry the base rate
``lr``. A method with ``refresh_every > 0`` (CGDM) gets `Method.refresh` with the target
training images before every ``refresh_every``-th iteration; each batch carries its target
indices. Evaluations every ``train.eval_every`` steps go to ``history.jsonl``;
``metrics.json`` (`ghuda.engine.metrics`) is written last. The run folder's files are
`ghuda.runs`'.

Resuming: a checkpoint holds the model, optimizers, loss scaler, harmonizer state, every RNG
state, the iteration, and the byte length of ``history.jsonl`` at that moment; the batch order
is a pure function of (seed, iteration) (`ghuda.engine.data`). A run killed at any point and
started again with the same command truncates the history to that length and continues,
ending (on the CPU) with a ``metrics.json`` identical to an uninterrupted run's except for the
``cost`` and ``provenance`` blocks (timings, memory, host, start time).

A run holds the folder's lock (`RunFolder.lock`) from its first look at the folder to its end.
Resuming or skipping a completed run first checks that the folder still describes this command:
its ``config.yaml`` and recorded config sha256, and its recorded data fingerprint
(`ghuda.engine.identity`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ghuda import config as config_mod
from ghuda.engine import checkpoint as ckpt
from ghuda.engine.amp import LossScaler
from ghuda.engine.data import SOURCE_STREAM, TARGET_STREAM, BatchStream, load_splits
from ghuda.engine.evaluate import evaluate_splits, on_device, target_images, write_features
from ghuda.engine.identity import (
    check_data,
    completed_metrics,
    data_fingerprint,
    prepare_folder,
)
from ghuda.engine.interrupt import StopRequest
from ghuda.engine.loop import Cadence, LoopClock, LoopTask, run_loop
from ghuda.engine.memory import PeakMemory
from ghuda.engine.metrics import failure_record, metrics_document, provenance
from ghuda.engine.optim import GroupOptimizers, check_coverage
from ghuda.engine.progress import Progress
from ghuda.engine.runtime import make_runtime, rng_state, seed_everything, set_rng_state
from ghuda.engine.step import NonFiniteLoss, StepParts, run_stage
from ghuda.methods.base import Batch, Method, StepInfo
from ghuda.runs import (
    History,
    RunFolder,
    RunFolderError,
    write_json,
    write_text,
)

__all__ = ["NonFiniteLoss", "RunFolderError", "Trainer"]


class Trainer(LoopTask):
    """Trains one run described by a resolved, validated config into folder `out`."""

    def __init__(self, cfg: dict[str, Any], out: str | Path, *, fresh: bool = False,
                 bar: bool | None = None, record_divergence: bool = False,
                 stop: StopRequest | None = None,
                 load_data: Callable[..., Any] | None = None) -> None:
        """`stop`: checked after every step (`ghuda.engine.interrupt`; Ctrl-C in `ghuda
        train`). `load_data`: builds the splits from the ``dataset`` section and the crop
        per domain (default `load_splits`; a batch shares them: `ghuda.engine.batch`)."""
        self.cfg, self.folder = cfg, RunFolder(out)
        self.fresh, self.record_divergence, self.bar = fresh, record_divergence, bar
        self.stop, self.load_data = stop, load_data
        self.sha = config_mod.sha256(cfg)
        self.train_cfg = cfg["train"]
        self.label = f"{cfg['method']['name']}/{config_mod.variant(cfg)}/" \
                     f"seed{self.train_cfg['seed']}"
        self._data: dict[str, Any] | None = None

    def data_fingerprint(self) -> dict[str, Any]:
        """The fingerprint of the data this run reads (computed once; `ghuda.engine.identity`)."""
        if self._data is None:
            self._data = data_fingerprint(self.cfg)
        return self._data

    # ------------------------------------------------------------------ the folder
    def completed(self) -> dict[str, Any] | None:
        """The metrics of a completed run of this same config and data in the folder, if any.

        A completed run of another config or data, or one whose config.yaml was edited, is an
        error (never overwritten or answered silently).
        """
        self.folder.check_is_folder()
        f = self.folder
        metrics = None if self.fresh else completed_metrics(f, self.cfg, self.sha)
        if metrics is None:
            return None
        check_data(metrics["provenance"].get("data"), self.data_fingerprint(), str(f.metrics))
        if not self.train_cfg["keep_checkpoint"]:
            f.checkpoint.unlink(missing_ok=True)
        return metrics

    def _prepare_folder(self) -> dict[str, Any] | None:
        """Handle an existing run folder; returns a checkpoint state to resume from, or None."""
        state = prepare_folder(self.folder, self.cfg, self.sha, self.fresh)
        if state is not None:
            check_data(state.get("data"), self.data_fingerprint(), str(self.folder.checkpoint),
                       ckpt.CheckpointError)
        return state

    # ------------------------------------------------------------------ building
    def setup(self) -> None:
        """Build data, model, optimizers and harmonizer (no file is touched).

        Problems a config check cannot see (e.g. ``train.lr_multipliers`` naming a group the
        method lacks) raise ValueError here, before any output is written.
        """
        from ghuda import harmonize, methods, models

        self.folder.check_is_folder()
        cfg, t = self.cfg, self.train_cfg
        self.runtime = runtime = make_runtime(t)
        seed_everything(t["seed"])
        method_cls = methods.get(cfg["method"]["name"])
        self.splits = (self.load_data or load_splits)(
            cfg["dataset"], lambda domain: method_cls.dataset_crop(
                cfg["method"]["params"], cfg["dataset"]["name"], domain))
        self.data_fingerprint()
        mcfg = cfg["model"]
        backbone = models.build_backbone(mcfg["backbone"], pretrained=mcfg["pretrained"],
                                         **mcfg["options"])
        self.method: Method = methods.build(cfg["method"]["name"], backbone,
                                            backbone.feature_dim, self.splits.num_classes,
                                            **cfg["method"]["params"])
        self.method.to(runtime.device)
        if runtime.channels_last and getattr(backbone, "kind", "") == "cnn":
            self.method.to(memory_format=torch.channels_last)
        groups = self.method.param_groups()
        check_coverage(self.method, groups)
        multipliers = self.method.lr_multipliers()
        unknown = sorted(set(t["lr_multipliers"]) - set(groups))
        if unknown:
            raise ValueError(f"train.lr_multipliers: unknown group {unknown[0]!r}; method "
                             f"{self.method.name!r} has groups {list(groups)}")
        multipliers.update(t["lr_multipliers"])
        self.optim = GroupOptimizers(groups, multipliers, t, self.method.optimizer_overrides())
        hz = cfg["harmonizer"]
        self.harmonizer = harmonize.make(hz["name"], mode=hz["mode"], **hz["options"])
        self.scaler = LossScaler(runtime.loss_scaling)
        self.parts = StepParts(self.method, self.optim, self.harmonizer, self.scaler,
                               runtime.autocast, order=hz["order"], measure=hz["measure"],
                               method_name=cfg["method"]["name"], harmonizer_name=hz["name"])
        seed, bs, workers = t["seed"], t["batch_size"], t["num_workers"]
        self.src = BatchStream(self.splits.source_train, bs, seed, SOURCE_STREAM, workers)
        self.tgt = BatchStream(self.splits.target_train, bs, seed, TARGET_STREAM, workers)

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        """Train (or resume) to completion under the folder's lock; returns the metrics
        written to metrics.json. `RunFolderBusy` if another process holds the folder."""
        with self.folder.lock():
            return self._run()

    def _run(self) -> dict[str, Any]:
        clock_start = (time.perf_counter(), time.process_time())
        done_before = self.completed()
        if done_before is not None:
            Progress(0, 0, self.label, bar=False).log("complete", out=str(self.folder.out))
            return done_before
        if not hasattr(self, "runtime"):
            self.setup()
        t, f = self.train_cfg, self.folder
        resume = self._prepare_folder()
        start, offset, step_times = 0, 0, []
        prior = {"wall_s": 0.0, "cpu_s": 0.0, "eval_s": 0.0}
        if resume is not None:
            self._restore(resume)
            start, offset = resume["step"], resume["history_offset"]
            step_times, prior = resume["step_times"], resume["timing"]
        write_text(f.config, config_mod.to_yaml(self.cfg))
        f.failure.unlink(missing_ok=True)
        history, total = History(f.history, offset), t["steps"]
        progress = Progress(total, start, self.label, self.bar)
        if start:
            progress.log("resume", step=start, checkpoint=str(f.checkpoint))
        memory = PeakMemory(self.runtime.device)
        memory.start()
        clock = LoopClock(step_times, prior["eval_s"])
        self.progress = progress

        def elapsed() -> dict[str, float]:
            return {"wall_s": prior["wall_s"] + time.perf_counter() - clock_start[0],
                    "cpu_s": prior["cpu_s"] + time.process_time() - clock_start[1],
                    "eval_s": clock.eval_s}

        def checkpoint(done: int) -> None:
            self._checkpoint(done, history.offset(), clock.step_times, elapsed())

        diverged = None
        try:
            run_loop(self, Cadence.of(t), start, history, clock, checkpoint, self.stop)
        except NonFiniteLoss as err:
            diverged = err
        finally:
            progress.close()
            history.close()
        cost = {**elapsed(), **memory.report(), "device": self.runtime.describe(),
                "threads": self.runtime.threads}
        if diverged is not None:
            self._fail(diverged, cost, step_times)
        if t["save_features"]:
            write_features(self.method, self.splits, self.runtime, t, f.features)
        cost = {"wall_s": cost["wall_s"], "cpu_s": cost["cpu_s"], "train_s": sum(step_times),
                "eval_s": cost["eval_s"],
                "steps_per_s": len(step_times) / max(sum(step_times), 1e-12),
                "step_ms_median": 1000.0 * statistics.median(step_times),
                "extra_forward": int(self.harmonizer.extra_forward),
                "extra_backward": int(self.harmonizer.extra_backward),
                **memory.report(), "device": self.runtime.describe(),
                "threads": self.runtime.threads, "resumed": resume is not None}
        metrics = self._metrics(cost)
        write_json(f.metrics, metrics)
        if not t["keep_checkpoint"]:
            f.checkpoint.unlink(missing_ok=True)
        # target accuracy under each protocol: `target_acc.source_val` is the target score of
        # the checkpoint chosen on source validation, not the `source_val_acc` of eval lines
        progress.log("done", **{f"target_acc.{k}": v["acc"]
                                for k, v in metrics["protocols"].items()},
                     wall_s=cost["wall_s"])
        return metrics

    # ------------------------------------------------------------------ the loop's task
    def train_step(self, i: int, total: int, log: bool) -> list[dict[str, Any]]:
        """`LoopTask.train_step`: the learning rates, then every stage of the method."""
        self._lr = self.optim.set_step(i)
        return [{"lr": self._lr, **r} for r in self._iteration(i, total, log)]

    def evaluate(self, step: int) -> dict[str, Any]:
        """`LoopTask.evaluate`: target and source-validation accuracies."""
        return evaluate_splits(self.method, self.splits, self.runtime, self.train_cfg)

    def observe(self, step: int, total: int, records: list[dict[str, Any]],
                evaluation: dict[str, Any] | None) -> None:
        """`LoopTask.observe`: the progress bar, and a log line per evaluation."""
        postfix = {k: v for r in records for k, v in r["losses"].items()}
        if evaluation is not None:
            self.progress.log("eval", step=f"{step}/{total}", lr=self._lr, **postfix,
                              **evaluation)
        self.progress.step(postfix)

    def _iteration(self, i: int, total: int, log: bool) -> list[dict[str, Any]]:
        runtime = self.runtime
        x_s, y_s = self.src.get(i)
        x_t, _ = self.tgt.get(i)
        x_s, x_t = on_device(x_s, runtime), on_device(x_t, runtime)
        info = StepInfo(step=i, total_steps=total)
        every = self.method.refresh_every
        if every and i % every == 0:
            self.method.eval()
            with torch.no_grad(), runtime.autocast():
                self.method.refresh(target_images(self.splits, runtime, self.train_cfg), info)
        batch = Batch(x_src=x_s, y_src=y_s.to(runtime.device, non_blocking=True), x_tgt=x_t,
                      idx_tgt=self.tgt.indices(i).to(runtime.device, non_blocking=True))
        self.method.train()
        stages = self.method.stages(batch, info)
        records = []
        while True:
            with runtime.autocast():
                stage = next(stages, None)
            if stage is None:
                return records
            record = run_stage(self.parts, stage, i, log)
            if record is not None:
                records.append(record)

    # ------------------------------------------------------------------ state and results
    def _checkpoint(self, step: int, history_offset: int, step_times: list[float],
                    timing: dict[str, float]) -> None:
        ckpt.save(self.folder.checkpoint, {
            "config_sha256": self.sha, "data": self.data_fingerprint(), "step": step,
            "history_offset": history_offset,
            "method": self.method.state_dict(), "optimizers": self.optim.state_dict(),
            "scaler": self.scaler.state_dict(), "harmonizer": self.harmonizer.state_dict(),
            "rng": rng_state(), "step_times": step_times, "timing": timing})

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.method.load_state_dict(state["method"])
            self.optim.load_state_dict(state["optimizers"])
            self.scaler.load_state_dict(state["scaler"])
            self.harmonizer.load_state_dict(state["harmonizer"])
            set_rng_state(state["rng"])
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise ckpt.CheckpointError(
                f"checkpoint {self.folder.checkpoint} does not fit this run "
                f"({type(err).__name__}: {err}); delete it or pass --fresh") from None

    def _fail(self, err: NonFiniteLoss, cost: dict[str, Any], step_times: list[float]) -> None:
        """failure.json, with ``--record-divergence`` a metrics.json of status ``diverged``
        (the cost of the steps made, no accuracy); then re-raise."""
        failure = failure_record(err, self.sha)
        write_json(self.folder.failure, failure)
        if self.record_divergence:
            median = 1000.0 * statistics.median(step_times) if step_times else None
            cost = {"wall_s": cost["wall_s"], "cpu_s": cost["cpu_s"], "eval_s": cost["eval_s"],
                    "steps_done": len(step_times), "step_ms_median": median,
                    **{k: v for k, v in cost.items()
                       if k not in ("wall_s", "cpu_s", "eval_s")}}
            write_json(self.folder.metrics, self._metrics(cost, failure))
        raise err

    def _metrics(self, cost: dict[str, Any], failure: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
        return metrics_document(
            self.cfg, self.splits.num_classes, list(self.folder.read_history()), cost,
            provenance(self.sha, self.runtime.describe(), self.train_cfg["seed"],
                       self.data_fingerprint()), failure)

