"""The one outer training loop (issue 25): the UDA trainer and the extension runs drive it.

A `LoopTask` is what one iteration trains and one evaluation measures: a UDA method on its
source and target streams (`ghuda.engine.trainer.Trainer`) or an extension task
(`ghuda.extensions.loop.ExtensionRun`). `run_loop` takes it from iteration ``start`` to
``cadence.steps``. Per iteration ``i`` (0-based; ``done = i + 1``):

1. the task's train records of the step (when `LoopTask.logs`) go to ``history.jsonl`` as
   ``{"kind": "train", "step": done, ...}``; the step's time joins `LoopClock.step_times`;
2. every ``eval_every`` steps and at the last, ``{"kind": "eval", "step": done, ...}`` with
   `LoopTask.evaluate`'s result (its time in `LoopClock.eval_s`);
3. `LoopTask.observe` (progress display);
4. every ``checkpoint_every`` steps (0: never), except after the last, the caller's
   ``checkpoint(done)``; then the stop request (`ghuda.engine.interrupt`) is checked.

A non-finite loss (`ghuda.engine.step.NonFiniteLoss`) propagates to the caller.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ghuda.engine.interrupt import StopRequest
from ghuda.runs import History


@dataclass(frozen=True)
class Cadence:
    """How long a run trains and how often it logs, evaluates and checkpoints."""

    steps: int
    log_every: int
    eval_every: int
    checkpoint_every: int = 0

    @classmethod
    def of(cls, train: dict[str, Any]) -> Cadence:
        """The cadence of a ``train`` config block (the engine's or an extension's)."""
        return cls(train["steps"], train["log_every"], train["eval_every"],
                   train["checkpoint_every"])


@dataclass
class LoopClock:
    """Seconds spent so far: per training step, and in evaluations (restored on resume)."""

    step_times: list[float] = field(default_factory=list)
    eval_s: float = 0.0


class LoopTask(ABC):
    """What `run_loop` drives."""

    def logs(self, i: int, cadence: Cadence) -> bool:
        """Whether iteration `i` logs its train records: every ``log_every``-th step and the
        last (the engine's rule)."""
        done = i + 1
        return done % cadence.log_every == 0 or done == cadence.steps

    @abstractmethod
    def train_step(self, i: int, total: int, log: bool) -> list[dict[str, Any]]:
        """Train iteration `i` (learning rates, batches, every stage); the records to log
        (none when `log` is false)."""

    @abstractmethod
    def evaluate(self, step: int) -> dict[str, Any]:
        """The evaluation record's content after `step` training steps."""

    def observe(self, step: int, total: int, records: list[dict[str, Any]],
                evaluation: dict[str, Any] | None) -> None:
        """Called after each step with its records and evaluation (None if none); the
        default shows nothing."""
        return


def run_loop(task: LoopTask, cadence: Cadence, start: int, history: History,
             clock: LoopClock, checkpoint: Callable[[int], None],
             stop: StopRequest | None = None) -> None:
    """Iterations `start` .. ``cadence.steps - 1`` of `task` (module docstring)."""
    total, every = cadence.steps, cadence.checkpoint_every
    for i in range(start, total):
        done = i + 1
        t0 = time.perf_counter()
        records = task.train_step(i, total, task.logs(i, cadence))
        clock.step_times.append(time.perf_counter() - t0)
        for record in records:
            history.append({"kind": "train", "step": done, **record})
        evaluation = None
        if done % cadence.eval_every == 0 or done == total:
            t1 = time.perf_counter()
            evaluation = task.evaluate(done)
            clock.eval_s += time.perf_counter() - t1
            history.append({"kind": "eval", "step": done, **evaluation})
        task.observe(done, total, records, evaluation)
        if every and done % every == 0 and done < total:
            checkpoint(done)
        if stop is not None:
            stop.check()
