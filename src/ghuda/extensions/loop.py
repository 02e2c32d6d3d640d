"""An extension task's run (issue 16): one run, one folder, through the engine's loop.

`ExtensionRun` is the `ghuda.engine.loop.LoopTask` of an `ExtensionTask`: each iteration the
task's losses form one `Stage` whose pair (`ExtensionTask.pair`) is harmonized by any
registered harmonizer and whose other losses are summed (`ghuda.engine.step.run_stage`);
every group is stepped by SGD (`GroupOptimizers`: a constant rate with the step decay of
``train.lr_decay`` / ``lr_decay_every`` / ``lr_milestones``). Train records are logged at the
first step and every ``log_every`` steps after it (the released scripts' cadence) and at the
last; every ``eval_every`` steps and at the end the task is evaluated on its val split (held
out from the training data) and its test split (``{"val": ..., "test": ...}``).

The run folder (`ghuda.runs` file names): ``config.yaml`` first, ``history.jsonl``,
``metrics.json`` last (`ghuda.engine.metrics.document`): the test metrics under the engine's
protocols (`ghuda.engine.evaluate.SELECTIONS`): ``last`` (final evaluation), ``source_val``
(the evaluation with the best val primary metric: the val split is held out from the
training data, so no test labels) and ``oracle`` (the best test primary metric: selects on
test labels, labelled as such). A non-finite loss stops the run; with ``record_divergence``
it is recorded as ``status: diverged`` with its ``failure``. With ``train.checkpoint_every``
> 0 the run saves ``checkpoint.pt`` (`ghuda.engine.checkpoint`: the task, optimizers,
harmonizer, RNG states, evaluations and the history's length) every that many steps; started
again on the same folder and config it resumes there, to the same bytes as an uninterrupted
run (the batch streams depend only on the seed, so they are replayed to the step), unless
``fresh``. Without checkpoints an interrupted run starts over. The folder is handled as a UDA
run's (`ghuda.engine.identity`, under `RunFolder.lock`): a completed run of the same config is
answered from its ``metrics.json``, a folder of another config is refused with the differing
keys named.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from ghuda import runs
from ghuda.engine import checkpoint
from ghuda.engine.amp import LossScaler
from ghuda.engine.identity import completed_metrics, prepare_folder
from ghuda.engine.loop import Cadence, LoopClock, LoopTask, run_loop
from ghuda.engine.metrics import document, failure_record, provenance
from ghuda.engine.optim import GroupOptimizers, check_coverage, check_groups
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
    """Test metrics under each of the engine's protocols from the eval records (ties: the
    earliest); ``source_val`` selects on the val split."""
    if not evals:
        return {}
    best_val = max(evals, key=lambda e: (e["val"][primary], -e["step"]))
    oracle = max(evals, key=lambda e: (e["test"][primary], -e["step"]))
    return {name: {"step": e["step"], **e["test"]} for name, e in
            (("last", evals[-1]), ("source_val", best_val), ("oracle", oracle))}


class ExtensionRun(LoopTask):
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

    def _setup(self) -> None:
        """The runtime, task, data, optimizers, harmonizer and the run's generator."""
        cfg, train = self.cfg, self.cfg["train"]
        self.runtime = runtime = make_runtime({
            "threads": train["threads"], "device": train["device"],
            "deterministic": train["deterministic"], "amp": False, "amp_dtype": "auto"})
        seed_everything(cfg["seed"])
        self.task, self.data = self._build()
        self.task.to(runtime.device)
        self.groups = tuple(self.task.param_groups())
        optim = GroupOptimizers(self.task.param_groups(), self.task.lr_multipliers(),
                                {**train, "lr_schedule": "constant"})
        harm = cfg["harmonizer"]
        self.parts = StepParts(method=self.task, optim=optim,
                               harmonizer=make_harmonizer(harm["name"], **harm["options"]),
                               scaler=LossScaler(False), autocast=runtime.autocast,
                               order=harm["order"], method_name=self.task.name,
                               harmonizer_name=harm["name"])
        first, second, measure = self.task.pair()
        self.pair = Pair(first, second, tuple(measure))
        self.generator = torch.Generator(device=runtime.device).manual_seed(cfg["seed"])
        self.batches = self.data.batches(cfg["seed"])
        self.evals: list[dict[str, Any]] = []

    def run(self, fresh: bool = False) -> dict[str, Any]:
        """Train (resuming from the folder's checkpoint unless `fresh`), evaluate, write the
        folder; returns metrics.json's content. A folder that already holds this run, completed,
        is answered from its metrics.json. Runs under the folder's lock (`RunFolder.lock`); the
        folder's config is checked as a UDA run's is (`ghuda.engine.identity`)."""
        self.folder.check_is_folder()
        with self.folder.lock():
            return self._run(fresh)

    def _run(self, fresh: bool) -> dict[str, Any]:
        cfg, train = self.cfg, self.cfg["train"]
        config_text = yaml.safe_dump(cfg, sort_keys=True)
        sha = _sha256(config_text)
        done_before = None if fresh else completed_metrics(self.folder, cfg, sha)
        if done_before is not None:
            return done_before
        state = prepare_folder(self.folder, cfg, sha, fresh)
        if state is None:
            for path in self.folder.all():
                path.unlink(missing_ok=True)
            runs.write_text(self.folder.config, config_text)
        self._setup()
        start, offset, spent = 0, 0, {"wall_s": 0.0, "eval_s": 0.0}
        if state is not None:
            self._restore(state)
            start, offset, spent = state["step"], state["history_offset"], state["spent"]
        history = runs.History(self.folder.history, offset)
        clock = LoopClock(eval_s=spent["eval_s"])
        t0 = time.perf_counter() - spent["wall_s"]

        def save(step: int) -> None:
            checkpoint.save(self.folder.checkpoint, {
                "config_sha256": sha, "step": step, "history_offset": history.offset(),
                "evals": self.evals, "task": self.task.state_dict(),
                "optimizers": self.parts.optim.state_dict(),
                "harmonizer": self.parts.harmonizer.state_dict(),
                "generator": self.generator.get_state(), "rng": rng_state(),
                "spent": {"wall_s": time.perf_counter() - t0, "eval_s": clock.eval_s}})

        failure = None
        try:
            run_loop(self, Cadence.of(train), start, history, clock, save)
        except NonFiniteLoss as err:
            if not self.record_divergence:
                history.close()
                raise
            failure = failure_record(err, sha)
        history.close()
        wall = time.perf_counter() - t0
        harm = cfg["harmonizer"]
        run = {"extension": cfg["extension"], "primary": self.task.primary,
               "metrics": list(self.task.metrics), "seed": cfg["seed"],
               "harmonizer": harm["name"], "harmonizer_options": harm["options"],
               "order": harm["order"], "steps": train["steps"], "data": self.data.describe}
        cost = {"wall_s": wall, "train_s": wall - clock.eval_s, "eval_s": clock.eval_s,
                "resumed": state is not None, "device": self.runtime.describe(),
                "threads": self.runtime.threads}
        train_records = [r for r in self.folder.read_history() if r["kind"] == "train"]
        metrics = document(
            run, select(self.evals, self.task.primary) if failure is None else {},
            train_records, cost,
            provenance(sha, self.runtime.describe(), cfg["seed"],
                       {"describe": self.data.describe}), failure)
        runs.write_json(self.folder.metrics, metrics)
        self.folder.checkpoint.unlink(missing_ok=True)
        return metrics

    # ------------------------------------------------------------------ the loop's task
    def logs(self, i: int, cadence: Cadence) -> bool:
        """The first step, every ``log_every`` steps after it, and the last."""
        return i % cadence.log_every == 0 or i == cadence.steps - 1

    def train_step(self, i: int, total: int, log: bool) -> list[dict[str, Any]]:
        """`LoopTask.train_step`: the learning rates, then the task's one stage."""
        self.parts.optim.set_step(i)
        self.task.train()
        losses = self.task.losses(_to(next(self.batches), self.runtime.device), self.generator)
        stage = Stage("main", losses, step=self.groups, pairs=(self.pair,))
        record = run_stage(self.parts, stage, i, log)
        return [] if record is None else [record]

    def evaluate(self, step: int) -> dict[str, Any]:
        """`LoopTask.evaluate`: the task's metrics on the val and test splits."""
        self.task.eval()
        with torch.no_grad():
            result = {"val": self.task.evaluate(self.data.val),
                      "test": self.task.evaluate(self.data.test)}
        self.evals.append({"step": step, **result})
        return result

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.task.load_state_dict(state["task"])
            self.parts.optim.load_state_dict(state["optimizers"])
            self.parts.harmonizer.load_state_dict(state["harmonizer"])
            self.generator.set_state(state["generator"])
        except (KeyError, ValueError, RuntimeError, TypeError) as err:
            raise checkpoint.CheckpointError(
                f"checkpoint {self.folder.checkpoint} does not fit this run "
                f"({type(err).__name__}: {err}); delete it or pass --fresh") from None
        for _ in range(state["step"]):  # the batch streams depend only on the seed
            next(self.batches)
        set_rng_state(state["rng"])
        self.evals = state["evals"]


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
