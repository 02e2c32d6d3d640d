"""What is known about the extension tasks without torch (issue 25): their names, the run
config's keys and their training defaults, and the structural check of a run config.

The report (fidelity rows) and the pipeline's config check read these without importing the
training loop or any model; each task package's namespace (`ghuda.extensions.<task>`: its
``defaults`` module) is torch-free too, its model and builder live in ``<task>.task``.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping
from copy import deepcopy
from types import ModuleType
from typing import Any

from ghuda.config import ORDERS, ConfigError, defaults

TASKS = ("retrieval", "detection")
TOP_KEYS = ("extension", "seed", "data", "model", "task", "harmonizer", "train")
# The extension tasks' training defaults: the engine's (`ghuda.config`) where they agree, and
# their own where they differ (the released retrieval and detection scripts: no Nesterov, no
# weight decay unless the task's defaults set one, a step decay of the rate, one CPU thread;
# `ghuda.engine.optim` reads the decay keys). Each task's defaults.py sets its own values.
SHARED_TRAIN = ("batch_size", "lr", "momentum", "eval_every", "log_every", "deterministic")
TRAIN_OVERRIDES: dict[str, Any] = {
    "steps": 300, "nesterov": False, "weight_decay": 0.0, "lr_decay": 0.1,
    "lr_decay_every": None, "lr_milestones": [], "device": "cpu", "threads": 1,
    "checkpoint_every": 0,
}
TRAIN_DEFAULTS: dict[str, Any] = {**{k: defaults()["train"][k] for k in SHARED_TRAIN},
                                  **TRAIN_OVERRIDES}


def task_package(task: str) -> ModuleType:
    """The torch-free package of `task`: ``EMBEDDED_DEFAULTS``, ``PAPER_DEFAULTS``,
    ``FIDELITY``."""
    return importlib.import_module(f"ghuda.extensions.{task}")


def task_module(task: str) -> str:
    """Name of the module whose import registers `task`'s builder (`ghuda.extensions.base`)."""
    return f"ghuda.extensions.{task}.task"


def resolve(raw: Mapping[str, Any], tasks: Collection[str] = TASKS) -> dict[str, Any]:
    """Check a run config's structure and fill the loop's defaults; ConfigError names the
    offending key and the allowed values (the task's builder checks data/model/task).
    `tasks`: the accepted extension names (the loop passes its registered builders)."""
    from ghuda.harmonize import names as harmonizer_names  # the registry imports torch

    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"extension run config: unknown keys {unknown}; allowed: "
                          f"{list(TOP_KEYS)}")
    cfg = {k: deepcopy(raw.get(k, {})) for k in ("data", "model", "task")}
    cfg["extension"] = raw.get("extension")
    if cfg["extension"] not in tasks:
        raise ConfigError(f"extension: {cfg['extension']!r} is not a task; choose from "
                          f"{sorted(tasks)}")
    cfg["seed"] = raw.get("seed", 0)
    if not isinstance(cfg["seed"], int) or cfg["seed"] < 0:
        raise ConfigError(f"seed: {cfg['seed']!r} must be a non-negative integer")
    harm = dict(raw.get("harmonizer") or {"name": "sum"})
    if harm.get("name") not in harmonizer_names():
        raise ConfigError(f"harmonizer.name: {harm.get('name')!r}; choose from "
                          f"{harmonizer_names()}")
    extra = sorted(set(harm) - {"name", "options", "order"})
    if extra:
        raise ConfigError(f"harmonizer: unknown keys {extra}; allowed: name, options, order")
    if harm.get("order", ORDERS[0]) not in ORDERS:
        raise ConfigError(f"harmonizer.order: {harm['order']!r}; allowed: {', '.join(ORDERS)}")
    cfg["harmonizer"] = {"name": harm["name"], "options": dict(harm.get("options") or {}),
                         "order": harm.get("order", ORDERS[0])}
    train = dict(raw.get("train") or {})
    bad = sorted(set(train) - set(TRAIN_DEFAULTS))
    if bad:
        raise ConfigError(f"train: unknown keys {bad}; allowed: {sorted(TRAIN_DEFAULTS)}")
    cfg["train"] = {**TRAIN_DEFAULTS, **train}
    t = cfg["train"]
    for key in ("steps", "batch_size", "eval_every", "log_every"):
        if not isinstance(t[key], int) or t[key] < 1:
            raise ConfigError(f"train.{key}: {t[key]!r} must be a positive integer")
    if not isinstance(t["checkpoint_every"], int) or t["checkpoint_every"] < 0:
        raise ConfigError(f"train.checkpoint_every: {t['checkpoint_every']!r} must be an "
                          "integer >= 0 (0: no checkpoint)")
    if t["lr_decay_every"] is not None and (not isinstance(t["lr_decay_every"], int)
                                            or t["lr_decay_every"] < 1):
        raise ConfigError(f"train.lr_decay_every: {t['lr_decay_every']!r} must be a positive "
                          "integer or null (no decay)")
    if not isinstance(t["lr_milestones"], list) or not all(
            isinstance(m, int) and m > 0 for m in t["lr_milestones"]):
        raise ConfigError(f"train.lr_milestones: {t['lr_milestones']!r} must be a list of "
                          "positive step numbers")
    if t["lr_milestones"] and t["lr_decay_every"] is not None:
        raise ConfigError("train: set lr_decay_every or lr_milestones, not both")
    return cfg
