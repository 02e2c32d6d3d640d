"""Training loop of an extension task (issue 16): one run, one folder.

It connects an `ExtensionTask` to any registered harmonizer through the engine's `run_stage`:
each iteration the task's losses form one `Stage` whose pair (`ExtensionTask.pair`) is
harmonized and whose other losses are summed; every group is stepped by SGD
(`GroupOptimizers`, a constant rate with the step decay `ghuda.engine.optim.step_decay`).
Every ``eval_every`` steps and at the end the task is evaluated on its val split (held out
from training data) and its test split.

The run folder (`ghuda.runs` file names): ``config.yaml`` first, ``history.jsonl`` (train
records with losses and the pair's statistics every ``log_every`` steps; eval records),
``metrics.json`` last, with the test metrics under three protocols: ``last`` (final
evaluation), ``val`` (the evaluation with the best val primary metric; no test labels) and
``oracle`` (the best test primary metric: selects on test labels, labelled as such). A
non-finite loss stops the run; with ``record_divergence`` it is recorded as
``status: diverged``. With ``train.checkpoint_every`` > 0 the run saves ``checkpoint.pt``
(`ghuda.engine.checkpoint`: the task, optimizers, harmonizer, RNG states, evaluations and the
history's length) every that many steps; started again on the same folder and config it
resumes there, to the same bytes as an uninterrupted run (the batch streams depend only on
the seed, so they are replayed to the step), unless ``fresh``. Without checkpoints an
interrupted run starts over.
"""

from __future__ import annotations

import hashlib
import importlib
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from ghuda import runs
from ghuda.engine import checkpoint
from ghuda.engine.amp import LossScaler
from ghuda.engine.metrics import git_commit
from ghuda.engine.optim import GroupOptimizers, check_coverage, check_groups, step_decay
from ghuda.engine.runtime import make_runtime, rng_state, seed_everything, set_rng_state
from ghuda.engine.step import NonFiniteLoss, StepParts, run_stage
from ghuda.extensions import meta
from ghuda.extensions.base import BUILDERS, ExtensionTask, TaskData
from ghuda.extensions.meta import TASKS, task_module
from ghuda.harmonize import make as make_harmonizer
from ghuda.methods.base import Pair, Stage

TASK_MODULES = tuple(task_module(t) for t in TASKS)


def load_tasks() -> dict[str, Any]:
    """Import the task modules (registration) and return the builders by name."""
    for module in TASK_MODULES:
        importlib.import_module(module)
    return BUILDERS


def resolve(raw: Mapping[str, Any]) -> dict[str, Any]:
    """`ghuda.extensions.meta.resolve` against the registered tasks."""
    return meta.resolve(raw, load_tasks())


def select(evals: list[dict[str, Any]], primary: str) -> dict[str, dict[str, Any]]:
    """Test metrics under each protocol from the eval records (ties: the earliest)."""
    if not evals:
        return {}
    best_val = max(evals, key=lambda e: (e["val"][primary], -e["step"]))
    oracle = max(evals, key=lambda e: (e["test"][primary], -e["step"]))
    return {name: {"step": e["step"], **e["test"]} for name, e in
            (("last", evals[-1]), ("val", best_val), ("oracle", oracle))}


class ExtensionRun:
    """One training run of an extension task into the folder `out`."""

    def __init__(self, raw: Mapping[str, Any], out: str | Path, *,
                 record_divergence: bool = False) -> None:
        self.cfg = resolve(raw)
        self.folder = runs.RunFolder(out)
        self.record_divergence = record_divergence

    def _build(self) -> tuple[ExtensionTask, TaskData]:
        builder = BUILDERS[self.cfg["extension"]]
        task, data = builder(self.cfg)
        groups = task.param_groups()
        check_groups(groups)
        check_coverage(task, groups)
        return task, data

    def _resumable(self, config_text: str) -> dict[str, Any] | None:
        """The checkpoint of an interrupted run of this config in the folder, else None."""
        if not (self.folder.checkpoint.is_file() and self.folder.config.is_file()
                and self.folder.history.is_file()):
            return None
        if self.folder.config.read_text(encoding="utf-8") != config_text:
            raise runs.RunFolderError(
                f"{self.folder.out} holds a checkpoint of another config; start over with "
                "--fresh (or use another folder)")
        return checkpoint.load(self.folder.checkpoint, _sha256(config_text))

    def run(self, fresh: bool = False) -> dict[str, Any]:
        """Train (resuming from the folder's checkpoint unless `fresh`), evaluate, write the
        folder; returns metrics.json's content."""
        cfg, train = self.cfg, self.cfg["train"]
        self.folder.check_is_folder()
        self.folder.out.mkdir(parents=True, exist_ok=True)
        config_text = yaml.safe_dump(cfg, sort_keys=True)
        state = None if fresh else self._resumable(config_text)
        if state is None:
            for path in self.folder.all():
                path.unlink(missing_ok=True)
            runs.write_text(self.folder.config, config_text)
        runtime = make_runtime({"threads": train["threads"], "device": train["device"],
                                "deterministic": train["deterministic"], "amp": False,
                                "amp_dtype": "auto"})
        seed_everything(cfg["seed"])
        task, data = self._build()
        task.to(runtime.device)
        groups = task.param_groups()
        optim = GroupOptimizers(groups, task.lr_multipliers(), {
            "lr": train["lr"], "lr_schedule": "constant", "momentum": train["momentum"],
            "nesterov": train["nesterov"], "weight_decay": train["weight_decay"]})
        harm = cfg["harmonizer"]
        parts = StepParts(method=task, optim=optim,
                          harmonizer=make_harmonizer(harm["name"], **harm["options"]),
                          scaler=LossScaler(False), autocast=runtime.autocast,
                          order=harm["order"], method_name=task.name,
                          harmonizer_name=harm["name"])
        first, second, measure = task.pair()
        pair = Pair(first, second, tuple(measure))
        generator = torch.Generator(device=runtime.device).manual_seed(cfg["seed"])
        batches = data.batches(cfg["seed"])
        start, evals, offset, spent = 0, [], 0, {"wall_s": 0.0, "eval_s": 0.0}
        if state is not None:
            self._restore(state, task, parts, generator)
            for _ in range(state["step"]):  # the batch streams depend only on the seed
                next(batches)
            set_rng_state(state["rng"])
            start, evals, offset, spent = (state["step"], state["evals"],
                                           state["history_offset"], state["spent"])
        history = runs.History(self.folder.history, offset)
        status, diverged_at, error = "completed", None, None
        t0 = time.perf_counter() - spent["wall_s"]
        eval_s = spent["eval_s"]
        every = train["checkpoint_every"]
        try:
            for step in range(start, train["steps"]):
                optim.set_step(step, step_decay(train["lr_decay"], train["lr_decay_every"],
                                                train["lr_milestones"], step))
                task.train()
                losses = task.losses(_to(next(batches), runtime.device), generator)
                stage = Stage("main", losses, step=tuple(groups), pairs=(pair,))
                log = step % train["log_every"] == 0 or step == train["steps"] - 1
                record = run_stage(parts, stage, step, log)
                if record is not None:
                    history.append({"kind": "train", "step": step + 1, **record})
                if (step + 1) % train["eval_every"] == 0 or step + 1 == train["steps"]:
                    e0 = time.perf_counter()
                    evals.append(self._evaluate(task, data, step + 1))
                    eval_s += time.perf_counter() - e0
                    history.append({"kind": "eval", **evals[-1]})
                if every and (step + 1) % every == 0 and step + 1 < train["steps"]:
                    checkpoint.save(self.folder.checkpoint, {
                        "config_sha256": _sha256(config_text), "step": step + 1,
                        "history_offset": history.offset(), "evals": evals,
                        "task": task.state_dict(), "optimizers": optim.state_dict(),
                        "harmonizer": parts.harmonizer.state_dict(),
                        "generator": generator.get_state(), "rng": rng_state(),
                        "spent": {"wall_s": time.perf_counter() - t0, "eval_s": eval_s}})
        except NonFiniteLoss as err:
            if not self.record_divergence:
                history.close()
                raise
            status, diverged_at, error = "diverged", err.iteration, str(err)
        history.close()
        wall = time.perf_counter() - t0
        metrics = {
            "schema": runs.SCHEMA_VERSION, "status": status,
            "diverged_at": diverged_at, "error": error,
            "extension": cfg["extension"], "primary": task.primary,
            "metrics": list(task.metrics),
            "protocols": select(evals, task.primary) if status == "completed" else {},
            "run": {"seed": cfg["seed"], "harmonizer": harm["name"],
                    "harmonizer_options": harm["options"], "order": harm["order"],
                    "steps": train["steps"], "data": data.describe},
            "timing": {"wall_s": wall, "train_s": wall - eval_s, "eval_s": eval_s,
                       "resumed": state is not None},
            "provenance": {"git_commit": git_commit(), "torch": torch.__version__,
                           "python": platform.python_version(),
                           "device": runtime.describe(), "threads": runtime.threads},
        }
        runs.write_json(self.folder.metrics, metrics)
        self.folder.checkpoint.unlink(missing_ok=True)
        return metrics

    def _restore(self, state: dict[str, Any], task: ExtensionTask, parts: StepParts,
                 generator: torch.Generator) -> None:
        try:
            task.load_state_dict(state["task"])
            parts.optim.load_state_dict(state["optimizers"])
            parts.harmonizer.load_state_dict(state["harmonizer"])
            generator.set_state(state["generator"])
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise checkpoint.CheckpointError(
                f"checkpoint {self.folder.checkpoint} does not fit this run "
                f"({type(err).__name__}: {err}); delete it or pass --fresh") from None

    @staticmethod
    def _evaluate(task: ExtensionTask, data: TaskData, step: int) -> dict[str, Any]:
        task.eval()
        with torch.no_grad():
            return {"step": step, "val": task.evaluate(data.val),
                    "test": task.evaluate(data.test)}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _to(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested) batch to `device`; other values unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to(v, device) for v in batch)
    return batch
