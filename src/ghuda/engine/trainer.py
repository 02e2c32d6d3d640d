"""The training loop shared by every method and harmonizer (issue 4, item 3).

One iteration: set the learning rates, draw the keyed source and target batches, then for each
`Stage` the method yields: check its losses are finite, zero the gradients, backpropagate every
harmonized `Pair` through the harmonizer (params = the stage's stepped groups, measure = the
pair's groups, or the stepped groups under ``harmonizer.measure: stepped``), backpropagate the
remaining losses as one plain sum, and step the stage's groups. Statistics are requested from
the harmonizer only on logging steps, so the ``sum`` baseline costs one backward pass on the
others. A harmonizer that owns its step (``look_ahead``: MetaAlign) also receives the stage's
`reevaluate` and the stepped parameters' names and learning rates (`_look_ahead`). A method
with ``refresh_every > 0`` (CGDM) gets `Method.refresh` with the target training images
before every ``refresh_every``-th iteration; each batch carries its target indices.

Resuming: a checkpoint holds the model, optimizers, loss scaler, harmonizer state, every RNG
state, the iteration, and the byte length of ``history.jsonl`` at that moment; the batch
order is a pure function of (seed, iteration) (`ghuda.engine.data`). A run killed at any point
and started again with the same command truncates the history to that length and continues,
ending (on the CPU) with a ``metrics.json`` identical to an uninterrupted run's except for the
``cost`` and ``provenance`` blocks (timings, memory, host, start time).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ghuda import config as config_mod
from ghuda.engine import checkpoint as ckpt
from ghuda.engine.amp import LossScaler
from ghuda.engine.data import (
    SOURCE_STREAM,
    TARGET_STREAM,
    BatchStream,
    eval_batches,
    load_splits,
    subsample,
)
from ghuda.engine.evaluate import SELECTIONS, accuracies, predict_all, protocols
from ghuda.engine.memory import PeakMemory
from ghuda.engine.optim import GroupOptimizers
from ghuda.engine.outputs import (
    SCHEMA_VERSION,
    History,
    atomic_write_bytes,
    atomic_write_text,
    conflict_summary,
    provenance,
    read_history,
    write_json,
)
from ghuda.engine.progress import Progress
from ghuda.engine.runtime import Runtime, make_runtime, rng_state, seed_everything, set_rng_state
from ghuda.harmonize.base import NonFiniteGradientError
from ghuda.harmonize.metaalign import LookAhead
from ghuda.methods.base import Batch, Method, Pair, Stage, StepInfo

FEATURES_PER_DOMAIN = 1000


class NonFiniteLoss(RuntimeError):
    """A loss (or a harmonized gradient) became NaN or Inf; the message names the iteration,
    stage and loss, the attributes hold them for ``failure.json``."""

    def __init__(self, message: str, iteration: int, stage: str, what: str) -> None:
        super().__init__(message)
        self.iteration, self.stage, self.what = iteration, stage, what


class RunFolderError(RuntimeError):
    """The output folder holds a run that this command must not overwrite."""


class RunPaths:
    """The files of one run folder (docs/run-outputs.md)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.metrics = out / "metrics.json"
        self.history = out / "history.jsonl"
        self.config = out / "config.yaml"
        self.checkpoint = out / "checkpoint.pt"
        self.features = out / "features.npz"
        self.failure = out / "failure.json"

    def all(self) -> tuple[Path, ...]:
        return (self.metrics, self.history, self.config, self.checkpoint, self.features,
                self.failure)


class Trainer:
    """Trains one run described by a resolved, validated config into folder `out`."""

    def __init__(self, cfg: dict[str, Any], out: str | Path, *, fresh: bool = False,
                 bar: bool | None = None, record_divergence: bool = False) -> None:
        self.cfg = cfg
        self.paths = RunPaths(Path(out))
        self.fresh = fresh
        self.record_divergence = record_divergence
        self.bar = bar
        self.sha = config_mod.sha256(cfg)
        self.t = cfg["train"]
        self.label = (f"{cfg['method']['name']}/{config_mod.variant(cfg)}/"
                      f"seed{self.t['seed']}")

    # ------------------------------------------------------------------ setup
    def check_folder(self) -> None:
        """The run folder must be a folder (or not exist yet, under an existing folder)."""
        out = self.paths.out
        for path in (out, *out.parents):
            if path.is_dir():
                return
            if path.exists():
                what = "--out" if path == out else f"--out {out}: its parent"
                raise RunFolderError(f"{what} {path} is an existing file, not a folder; "
                                     "choose a folder path for the run (it is created if "
                                     "missing). Nothing was written.")

    def completed(self) -> dict[str, Any] | None:
        """The metrics of a completed run of this same config in the folder, if any.

        A completed run of another config is an error (never overwritten silently).
        """
        self.check_folder()
        p = self.paths
        if self.fresh or not p.metrics.exists():
            return None
        try:
            metrics = json.loads(p.metrics.read_text())
            sha = metrics["provenance"]["config_sha256"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise RunFolderError(f"{p.metrics} is unreadable ({err}); delete it or pass "
                                 "--fresh") from None
        if sha != self.sha:
            raise RunFolderError(
                f"{p.out} holds a completed run of a different configuration (sha256 "
                f"{str(sha)[:12]}..., now {self.sha[:12]}...). Choose another --out, or pass "
                "--fresh to discard it and train again.")
        if not self.t["keep_checkpoint"]:
            p.checkpoint.unlink(missing_ok=True)
        return metrics

    def _prepare_folder(self) -> dict[str, Any] | None:
        """Handle an existing run folder; returns a checkpoint state to resume from, or None."""
        p = self.paths
        p.out.mkdir(parents=True, exist_ok=True)
        if self.fresh:
            for path in p.all():
                path.unlink(missing_ok=True)
            return None
        if p.checkpoint.exists():
            return ckpt.load(p.checkpoint, self.sha)
        return None

    def _build(self, runtime: Runtime) -> None:
        from ghuda import harmonize, methods, models

        cfg = self.cfg
        method_cls = methods.get(cfg["method"]["name"])
        self.splits = load_splits(
            cfg["dataset"], lambda domain: method_cls.train_crop(cfg["method"]["params"], domain))
        mcfg = cfg["model"]
        backbone = models.build_backbone(mcfg["backbone"], pretrained=mcfg["pretrained"],
                                         **mcfg["options"])
        method = methods.build(cfg["method"]["name"], backbone, backbone.feature_dim,
                               self.splits.num_classes, **cfg["method"]["params"])
        method.to(runtime.device)
        if runtime.channels_last and getattr(backbone, "kind", "") == "cnn":
            method.to(memory_format=torch.channels_last)
        self.method: Method = method
        groups = method.param_groups()
        _check_coverage(method, groups)
        multipliers = method.lr_multipliers()
        unknown = sorted(set(self.t["lr_multipliers"]) - set(groups))
        if unknown:
            raise ValueError(f"train.lr_multipliers: unknown group {unknown[0]!r}; method "
                             f"{method.name!r} has groups {list(groups)}")
        multipliers.update(self.t["lr_multipliers"])
        self.optim = GroupOptimizers(groups, multipliers, self.t, method.optimizer_overrides())
        hz = cfg["harmonizer"]
        self.harmonizer = harmonize.make(hz["name"], mode=hz["mode"], **hz["options"])
        self.scaler = LossScaler(runtime.loss_scaling)
        seed, bs, workers = self.t["seed"], self.t["batch_size"], self.t["num_workers"]
        self.src = BatchStream(self.splits.source_train, bs, seed, SOURCE_STREAM, workers)
        self.tgt = BatchStream(self.splits.target_train, bs, seed, TARGET_STREAM, workers)
        self._trainable = [p for p in method.parameters() if p.requires_grad]
        self._param_names = {id(p): n for n, p in method.named_parameters()}
        self._validated: set[str] = set()

    # ------------------------------------------------------------------ one stage
    def _check_stage(self, stage: Stage) -> None:
        """Validate a stage's structure once per stage name (clear errors for method authors)."""
        if stage.name in self._validated:
            return
        where = f"method {self.cfg['method']['name']!r}, stage {stage.name!r}"
        groups = set(self.optim.params)
        for g in stage.step:
            if g not in groups:
                raise ValueError(f"{where}: steps unknown group {g!r}; groups: {sorted(groups)}")
        used: set[str] = set()
        for pair in stage.pairs:
            for name in (pair.first, pair.second):
                if name not in stage.losses:
                    raise ValueError(f"{where}: pair names loss {name!r}, losses are "
                                     f"{sorted(stage.losses)}")
                if name in used:
                    raise ValueError(f"{where}: loss {name!r} is in two pairs")
                used.add(name)
            for g in pair.measure:
                if g not in groups:
                    raise ValueError(f"{where}: pair measures unknown group {g!r}")
        self._validated.add(stage.name)

    def _pairs(self, stage: Stage) -> list[Pair]:
        """The stage's pairs under ``harmonizer.order`` (swapped: L1 and L2 exchange, with
        their scales) and ``harmonizer.measure`` (stepped: every stepped group)."""
        hz = self.cfg["harmonizer"]
        out = []
        for pair in stage.pairs:
            if hz["order"] == "swapped":
                pair = Pair(pair.second, pair.first, pair.measure,
                            scales=(pair.scales[1], pair.scales[0]))
            if hz["measure"] == "stepped":
                pair = dataclasses.replace(pair, measure=tuple(stage.step))
            out.append(pair)
        return out

    def _run_stage(self, stage: Stage, step: int, log: bool) -> dict[str, Any] | None:
        """Backpropagate one stage and step its groups; returns its history record on logging
        steps. Pairs go through the harmonizer (``scales`` applied after harmonization),
        remaining losses are one plain sum; every backward but the last keeps the graph."""
        self._check_stage(stage)
        names = list(stage.losses)
        values = torch.stack([stage.losses[n].detach().float().reshape(()) for n in names])
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            k = int((~finite).nonzero()[0])
            raise self._non_finite(step, stage, f"loss {names[k]!r} = {float(values[k])}")
        for p in self._trainable:
            p.grad = None
        params = self.optim.parameters(stage.step)
        pairs = self._pairs(stage)
        paired = {n for pair in pairs for n in (pair.first, pair.second)}
        rest = [stage.losses[n] for n in names
                if n not in paired and stage.losses[n].requires_grad]
        passes = len(pairs) + (1 if rest else 0)
        stats = []
        scale = self.scaler.scale_loss
        try:
            for k, pair in enumerate(pairs):
                s = self.harmonizer.backward(
                    scale(stage.losses[pair.first]), scale(stage.losses[pair.second]),
                    params, self.optim.parameters(pair.measure),
                    retain_graph=k < passes - 1, with_stats=log, scales=pair.scales,
                    **self._look_ahead(stage, pair, params))
                if log:
                    stats.append({"first": pair.first, "second": pair.second,
                                  **self.scaler.unscale_stats(s)})
        except NonFiniteGradientError as err:
            if not self.scaler.enabled:
                raise self._non_finite(step, stage, f"gradient: {err}") from None
            # float16 overflow: skip this step (the scaler halves its scale below)
            for p in params:
                if p.grad is not None:
                    p.grad.fill_(math.inf)
            rest, stats = [], []
        if rest:
            total = rest[0] if len(rest) == 1 else torch.stack(
                [r.float().reshape(()) for r in rest]).sum()
            scale(total).backward(inputs=params)
        if self.scaler.unscale_and_check(params):
            self.optim.step(stage.step)
        if not log:
            return None
        return {"stage": stage.name, "losses": dict(zip(names, values.tolist(), strict=True)),
                "pairs": stats}

    def _look_ahead(self, stage: Stage, pair: Pair, params: list[nn.Parameter]
                    ) -> dict[str, LookAhead]:
        """``look_ahead=`` for harmonizers that own their step (MetaAlign), else nothing: the
        stage's `reevaluate` under the run's autocast, parameter names, current learning rates
        of the stepped groups, the pair's loss names and the loss scale."""
        if not self.harmonizer.look_ahead:
            return {}
        fn, autocast = stage.reevaluate, self.runtime.autocast

        def reevaluate(substituted: Any) -> dict[str, Any]:
            with autocast():
                return fn(substituted)  # type: ignore[misc]

        lrs: list[float] = []
        for g in stage.step:  # the order of `params` (GroupOptimizers.parameters)
            if self.optim.params[g]:
                lrs += [self.optim.optimizers[g].param_groups[0]["lr"]] * len(self.optim.params[g])
        return {"look_ahead": LookAhead(
            reevaluate=None if fn is None else reevaluate,
            names=[self._param_names[id(p)] for p in params], lrs=lrs,
            first=pair.first, second=pair.second,
            loss_scale=self.scaler.scale if self.scaler.enabled else 1.0,
            where=f"method {self.cfg['method']['name']!r}, stage {stage.name!r}")}

    def _non_finite(self, step: int, stage: Stage, what: str) -> NonFiniteLoss:
        message = (f"non-finite {what} at iteration {step + 1} (stage {stage.name!r}, method "
                   f"{self.cfg['method']['name']!r}, harmonizer "
                   f"{self.cfg['harmonizer']['name']!r}); stopping. Lower train.lr or check the "
                   "method's hyper-parameters.")
        return NonFiniteLoss(message, step + 1, stage.name, what)

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, runtime: Runtime) -> dict[str, float]:
        self.method.eval()
        out: dict[str, float] = {}
        for prefix, ds in (("target", self.splits.target_eval),
                           ("source_val", self.splits.source_val)):
            preds, labels = predict_all(
                self.method.predict, eval_batches(ds, self.t["eval_batch_size"],
                                                  self.t["num_workers"]),
                runtime.device, runtime.channels_last, runtime.autocast())
            acc, mean_class = accuracies(preds, labels, self.splits.num_classes)
            out[f"{prefix}_acc"], out[f"{prefix}_mean_class_acc"] = acc, mean_class
        return out

    def _save_features(self, runtime: Runtime) -> None:
        self.method.eval()
        arrays: dict[str, np.ndarray] = {}
        for name, ds in (("source", self.splits.source_train),
                         ("target", self.splits.target_eval)):
            idx = subsample(ds, FEATURES_PER_DOMAIN, self.t["seed"])
            sub = torch.utils.data.Subset(ds, idx)
            feats, labels = [], []
            with torch.inference_mode():
                for x, y in eval_batches(sub, self.t["eval_batch_size"], self.t["num_workers"]):
                    with runtime.autocast():
                        f = self.method.features(x.to(runtime.device))
                    feats.append(f.float().cpu())
                    labels.append(y.long())
            arrays[name] = torch.cat(feats).numpy().astype(np.float32)
            arrays[f"{name}_labels"] = torch.cat(labels).numpy().astype(np.int64)
        import io

        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(self.paths.features, buffer.getvalue())

    # ------------------------------------------------------------------ the run
    def setup(self) -> None:
        """Build data, model, optimizers and harmonizer (no file is touched).

        Problems a config check cannot see (e.g. ``train.lr_multipliers`` naming a group the
        method lacks) raise ValueError here, before any output is written.
        """
        self.check_folder()
        self.runtime = make_runtime(self.t)
        seed_everything(self.t["seed"])
        self._build(self.runtime)

    def run(self) -> dict[str, Any]:
        """Train (or resume) to completion; returns the metrics written to metrics.json."""
        wall0, cpu0 = time.perf_counter(), time.process_time()
        done_before = self.completed()
        if done_before is not None:
            Progress(0, 0, self.label, bar=False).log("complete", out=str(self.paths.out))
            return done_before
        if not hasattr(self, "runtime"):
            self.setup()
        runtime = self.runtime
        resume = self._prepare_folder()
        start, offset, step_times = 0, 0, []
        prior = {"wall_s": 0.0, "cpu_s": 0.0, "eval_s": 0.0}
        if resume is not None:
            self._restore(resume)
            start, offset = resume["step"], resume["history_offset"]
            step_times, prior = resume["step_times"], resume["timing"]
        atomic_write_text(self.paths.config, config_mod.to_yaml(self.cfg))
        self.paths.failure.unlink(missing_ok=True)
        history = History(self.paths.history, offset)
        total = self.t["steps"]
        progress = Progress(total, start, self.label, self.bar)
        if start:
            progress.log("resume", step=start, checkpoint=str(self.paths.checkpoint))
        memory = PeakMemory(runtime.device)
        memory.start()
        eval_s = prior["eval_s"]

        def elapsed() -> dict[str, float]:
            return {"wall_s": prior["wall_s"] + time.perf_counter() - wall0,
                    "cpu_s": prior["cpu_s"] + time.process_time() - cpu0, "eval_s": eval_s}

        try:
            for i in range(start, total):
                done = i + 1
                t0 = time.perf_counter()
                log = done % self.t["log_every"] == 0 or done == total
                lr = self.optim.set_step(i)
                records = self._iteration(i, total, log, runtime)
                step_times.append(time.perf_counter() - t0)
                for r in records:
                    history.append({"kind": "train", "step": done, "lr": lr, **r})
                postfix = {k: v for r in records for k, v in r["losses"].items()}
                if done % self.t["eval_every"] == 0 or done == total:
                    t1 = time.perf_counter()
                    ev = self._evaluate(runtime)
                    eval_s += time.perf_counter() - t1
                    history.append({"kind": "eval", "step": done, **ev})
                    progress.log("eval", step=f"{done}/{total}", lr=lr, **postfix, **ev)
                progress.step(postfix)
                every = self.t["checkpoint_every"]
                if every and done % every == 0 and done < total:
                    self._checkpoint(done, history.offset(), step_times, elapsed())
        except NonFiniteLoss as err:
            failure = {"schema": SCHEMA_VERSION, "kind": "non_finite",
                       "iteration": err.iteration, "stage": err.stage, "what": err.what,
                       "message": str(err), "config_sha256": self.sha}
            write_json(self.paths.failure, failure)
            diverged = err
        else:
            diverged = None
        finally:
            progress.close()
            history.close()
        if diverged is not None:
            if self.record_divergence:
                self._record_divergence(failure, {
                    **elapsed(), "steps_done": len(step_times),
                    "step_ms_median": (1000.0 * statistics.median(step_times)
                                       if step_times else None),
                    **memory.report(), "device": runtime.describe(),
                    "threads": runtime.threads}, runtime)
            raise diverged
        if self.t["save_features"]:
            self._save_features(runtime)
        timing = elapsed()
        cost = {"wall_s": timing["wall_s"], "cpu_s": timing["cpu_s"],
                "train_s": sum(step_times), "eval_s": timing["eval_s"],
                "steps_per_s": len(step_times) / max(sum(step_times), 1e-12),
                "step_ms_median": 1000.0 * statistics.median(step_times),
                "extra_forward": int(self.harmonizer.extra_forward),
                "extra_backward": int(self.harmonizer.extra_backward),
                **memory.report(), "device": runtime.describe(), "threads": runtime.threads,
                "resumed": resume is not None}
        metrics = self._metrics(cost, runtime)
        write_json(self.paths.metrics, metrics)
        if not self.t["keep_checkpoint"]:
            self.paths.checkpoint.unlink(missing_ok=True)
        # target accuracy under each protocol: `target_acc.source_val` is the target score of
        # the checkpoint chosen on source validation, not the `source_val_acc` of eval lines
        progress.log("done", **{f"target_acc.{k}": v["acc"]
                                for k, v in metrics["protocols"].items()},
                     wall_s=cost["wall_s"])
        return metrics

    def _checkpoint(self, step: int, history_offset: int, step_times: list[float],
                    timing: dict[str, float]) -> None:
        ckpt.save(self.paths.checkpoint, {
            "config_sha256": self.sha, "step": step, "history_offset": history_offset,
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
                f"checkpoint {self.paths.checkpoint} does not fit this run "
                f"({type(err).__name__}: {err}); delete it or pass --fresh") from None

    def _iteration(self, i: int, total: int, log: bool, runtime: Runtime
                   ) -> list[dict[str, Any]]:
        dev = runtime.device
        x_s, y_s = self.src.get(i)
        x_t, _ = self.tgt.get(i)
        x_s, x_t = x_s.to(dev, non_blocking=True), x_t.to(dev, non_blocking=True)
        if runtime.channels_last and x_s.dim() == 4:
            x_s = x_s.contiguous(memory_format=torch.channels_last)
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        every = self.method.refresh_every
        if every and i % every == 0:
            self._refresh(i, total, runtime)
        batch = Batch(x_src=x_s, y_src=y_s.to(dev, non_blocking=True), x_tgt=x_t,
                      idx_tgt=self.tgt.indices(i).to(dev, non_blocking=True))
        self.method.train()
        stages = self.method.stages(batch, StepInfo(step=i, total_steps=total))
        records = []
        while True:
            with runtime.autocast():
                stage = next(stages, None)
            if stage is None:
                break
            record = self._run_stage(stage, i, log)
            if record is not None:
                records.append(record)
        return records

    def _refresh(self, i: int, total: int, runtime: Runtime) -> None:
        """`Method.refresh` with every target training image in dataset order (eval mode, no
        gradients, the run's autocast); labels are dropped here."""
        self.method.eval()

        def images() -> Any:
            for x, _ in eval_batches(self.splits.target_train, self.t["eval_batch_size"],
                                     self.t["num_workers"]):
                x = x.to(runtime.device, non_blocking=True)
                if runtime.channels_last and x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                yield x

        with torch.no_grad(), runtime.autocast():
            self.method.refresh(images(), StepInfo(step=i, total_steps=total))

    def _record_divergence(self, failure: dict[str, Any], cost: dict[str, Any],
                           runtime: Runtime) -> None:
        """metrics.json of a diverged run (``--record-divergence``): status ``diverged``, the
        failure, the cost of the steps it made, and no accuracy under any protocol (the final
        iterate is not finite; an earlier evaluation would select a model the run did not end
        with)."""
        selection = f"none: the run diverged at iteration {failure['iteration']}"
        none = {name: {"acc": None, "mean_class_acc": None, "step": None,
                       "selection": selection} for name in SELECTIONS}
        metrics = self._metrics(cost, runtime, none)
        metrics.update(status="diverged", failure=failure)
        write_json(self.paths.metrics, metrics)

    def _metrics(self, cost: dict[str, Any], runtime: Runtime,
                 protocol_block: dict[str, Any] | None = None) -> dict[str, Any]:
        cfg = self.cfg
        history = list(read_history(self.paths.history))
        evals = [r for r in history if r["kind"] == "eval"]
        train = [r for r in history if r["kind"] == "train"]
        ds = cfg["dataset"]
        run = {"dataset": ds["name"], "source": ds["source"], "target": ds["target"],
               "task": f"{ds['source']}->{ds['target']}", "method": cfg["method"]["name"],
               "harmonizer": cfg["harmonizer"]["name"],
               "harmonizer_options": cfg["harmonizer"]["options"],
               "variant": config_mod.variant(cfg), "seed": self.t["seed"],
               "backbone": cfg["model"]["backbone"], "steps": self.t["steps"],
               "selection_metric": self.t["selection_metric"],
               "num_classes": self.splits.num_classes}
        return {"schema": SCHEMA_VERSION, "run": run, "status": "completed",
                "protocols": protocol_block or protocols(evals, self.t["selection_metric"]),
                "conflict": conflict_summary(train), "cost": cost,
                "provenance": provenance(self.sha, runtime.describe(), self.t["seed"])}


def _check_coverage(method: Method, groups: dict[str, list[nn.Parameter]]) -> None:
    """Every trainable parameter belongs to exactly one group (disjointness: GroupOptimizers)."""
    grouped = {id(p) for ps in groups.values() for p in ps}
    missing = [n for n, p in method.named_parameters() if p.requires_grad and id(p) not in grouped]
    if missing:
        raise ValueError(f"method {method.name!r}: parameters outside every group: "
                         f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")

