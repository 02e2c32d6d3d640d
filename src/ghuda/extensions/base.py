"""The contract between an extension task (retrieval, detection) and its training loop.

The paper applies GH / GH++ beyond domain adaptation (issue 16): to image retrieval with text
feedback (the soft-triplet loss on the clean query vs the same loss on a noised query) and to
object detection (the classification vs the box-regression loss). An extension task owns its
model, declares disjoint parameter groups (as a UDA `Method` does), says which two of its
losses form the harmonized pair (released order: `first` is L1) and on which groups the angle
is measured, and evaluates itself. The loop (`ghuda.extensions.loop`) connects it to any
registered harmonizer through the engine's `run_stage`, so neither knows the other.

A task module registers a builder with `register("name")`; the builder takes the run config
and returns the task and its data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class TaskData:
    """What a task trains and evaluates on.

    `batches(seed)` yields training batches forever, deterministically for a seed (a batch
    is whatever the task's `losses` takes); `val` and `test` are the evaluation sets handed to
    `ExtensionTask.evaluate` (`val` is held out from the training data: selecting on it uses
    no test labels); `describe` is one line for logs and provenance.
    """

    batches: Callable[[int], Iterator[Any]]
    val: Any
    test: Any
    describe: str


class ExtensionTask(nn.Module, ABC):
    """Base class of extension tasks.

    Subclasses set `metrics` (names of `evaluate`'s results, all "higher is better", in
    percent) and `primary` (the one used for validation selection), and implement
    `param_groups`, `pair`, `losses` and `evaluate`.
    """

    name: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ()
    primary: ClassVar[str] = ""

    @abstractmethod
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Disjoint named groups covering every trainable parameter."""

    def lr_multipliers(self) -> dict[str, float]:
        """Learning-rate multiplier per group; default 1 everywhere."""
        return {g: 1.0 for g in self.param_groups()}

    @abstractmethod
    def pair(self) -> tuple[str, str, tuple[str, ...]]:
        """(first loss, second loss, measure groups): the harmonized pair in released order."""

    @abstractmethod
    def losses(self, batch: Any, generator: torch.Generator) -> dict[str, Tensor]:
        """Named scalar losses of one training batch (at least the pair's two; any others are
        summed plainly). `generator` is the run's seeded RNG for any noise the losses draw."""

    @abstractmethod
    def evaluate(self, data: Any) -> dict[str, float]:
        """Metrics (keys `metrics`, percent) on an evaluation set; called under no_grad in
        eval mode."""


Builder = Callable[[dict[str, Any]], tuple[ExtensionTask, TaskData]]
BUILDERS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register a task builder ``build(run_config) -> (task, data)`` as `name`."""

    def deco(fn: Builder) -> Builder:
        if name in BUILDERS:
            raise ValueError(f"extension task {name!r} registered twice")
        BUILDERS[name] = fn
        return fn

    return deco
