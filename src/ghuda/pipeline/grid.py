"""Expand a pipeline config into its training runs (trained in batches: `ghuda.pipeline.batches`).

A run is (dataset, source, target, method, variant, seed), where dataset is the key of a
``datasets`` entry (which names its registered dataset, `registered_dataset`); its folder follows
docs/run-outputs.md: ``<results_dir>/<name>/<dataset>/<source>__<target>/<method>/<variant>/
seed<k>/``. Its run config (docs/config.md) is the deep merge, later entries winning, of
``run_defaults`` < ``datasets.<d>.run`` < ``datasets.<d>.methods.<m>.run`` < the method's
per-task ``run`` < the grid block's ``run`` < the variant's harmonizer < the run's identity.
Resources merge the same way (top-level < dataset < method < task); ``train.threads`` always
equals the job's ``threads`` so torch uses what Snakemake reserved.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

TASK_SEP = "->"
DIR_SEP = "__"


def split_task(task: str) -> tuple[str, str]:
    """'synth->optdigits' -> ('synth', 'optdigits')."""
    source, target = task.split(TASK_SEP)
    return source, target


def task_dir(task: str) -> str:
    """'synth->optdigits' -> 'synth__optdigits' (the folder name of docs/run-outputs.md)."""
    return DIR_SEP.join(split_task(task))


def task_from_dir(name: str) -> str:
    """Inverse of `task_dir`."""
    source, target = name.split(DIR_SEP)
    return f"{source}{TASK_SEP}{target}"


def deep_merge(base: Mapping[str, Any], *updates: Mapping[str, Any] | None) -> dict[str, Any]:
    """Recursive dict merge; later mappings win; inputs are not modified."""
    out = copy.deepcopy(dict(base))
    for upd in updates:
        for key, value in (upd or {}).items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Run:
    """One training run of a pipeline config."""

    dataset: str
    task: str
    method: str
    variant: str
    seed: int
    block: str
    run_config: dict[str, Any] = field(compare=False, hash=False, repr=False)
    resources: dict[str, int] = field(compare=False, hash=False, repr=False)

    @property
    def key(self) -> tuple[str, str, str, str, int]:
        return (self.dataset, self.task, self.method, self.variant, self.seed)

    @property
    def rel_dir(self) -> str:
        """Run folder relative to ``<results_dir>/<name>``."""
        return str(PurePosixPath(self.dataset, task_dir(self.task), self.method, self.variant,
                                 f"seed{self.seed}"))


def _resources(config: Mapping[str, Any], dataset: str, method: str, task: str
               ) -> dict[str, int]:
    ds = config["datasets"][dataset]
    mb = ds.get("methods", {}).get(method, {})
    merged = deep_merge(config["resources"], ds.get("resources"), mb.get("resources"),
                        mb.get("tasks", {}).get(task, {}).get("resources"))
    missing = {"gpu", "mem_mb", "runtime", "threads"} - set(merged)
    if missing:
        raise ValueError(f"resources for {dataset}/{method}/{task} lack {sorted(missing)}; "
                         "set them under the top-level 'resources'")
    return {k: int(merged[k]) for k in ("gpu", "mem_mb", "runtime", "threads")}


def _feature_runs(config: Mapping[str, Any]) -> set[tuple[str, str, str, str, int]]:
    return {(f["dataset"], f["task"], f["method"], v, s)
            for f in config.get("features", []) for v in f["variants"] for s in f["seeds"]}


def registered_dataset(config: Mapping[str, Any], entry: str) -> str:
    """The registered dataset of ``datasets.<entry>``: its ``dataset`` key, else `entry`."""
    return config["datasets"][entry].get("dataset", entry)


def run_config_for(config: Mapping[str, Any], dataset: str, task: str, method: str,
                   variant: str, seed: int, block_run: Mapping[str, Any] | None = None,
                   save_features: bool = False) -> dict[str, Any]:
    """The run config (docs/config.md) of one run."""
    ds = config["datasets"][dataset]
    mb = ds.get("methods", {}).get(method, {})
    var = config["variants"][variant]
    source, target = split_task(task)
    harmonizer = {"name": var["harmonizer"], "options": dict(var.get("options", {}))}
    for opt in ("mode", "order", "measure"):
        if opt in var:
            harmonizer[opt] = var[opt]
    identity = {
        "dataset": {"name": registered_dataset(config, dataset), "source": source,
                    "target": target},
        "method": {"name": method},
        "harmonizer": harmonizer,
        "variant": variant,
        "train": {"seed": seed,
                  "threads": _resources(config, dataset, method, task)["threads"]},
    }
    if var.get("method_params"):
        identity["method"]["params"] = dict(var["method_params"])
    if save_features:
        identity["train"]["save_features"] = True
    merged = deep_merge(config.get("run_defaults") or {}, ds.get("run"), mb.get("run"),
                        mb.get("tasks", {}).get(task, {}).get("run"), block_run, identity)
    # the variant's options replace (not merge with) any inherited harmonizer options
    merged["harmonizer"]["options"] = dict(var.get("options", {}))
    return merged


def expand_runs(config: Mapping[str, Any]) -> list[Run]:
    """Every run of the config's grid, deduplicated (the first block naming a run wins), in a
    stable order (grid order, then dataset, task, method, variant, seed)."""
    features = _feature_runs(config)
    seen: dict[tuple[str, str, str, str, int], Run] = {}
    for block in config["grid"]:
        for run in _block_runs(config, block, features):
            seen.setdefault(run.key, run)
    missing = features - set(seen)
    if missing:
        raise ValueError(f"'features' names runs that no grid block trains: {sorted(missing)}")
    return list(seen.values())


def _block_runs(config: Mapping[str, Any], block: Mapping[str, Any],
                features: set[tuple[str, str, str, str, int]]) -> Iterator[Run]:
    for dataset in block.get("datasets", list(config["datasets"])):
        tasks = block.get("tasks", config["datasets"][dataset]["tasks"])
        for task in tasks:
            for method in block["methods"]:
                for variant in block["variants"]:
                    for seed in block["seeds"]:
                        key = (dataset, task, method, variant, seed)
                        yield Run(
                            dataset=dataset, task=task, method=method, variant=variant,
                            seed=seed, block=block["name"],
                            run_config=run_config_for(config, dataset, task, method, variant,
                                                      seed, block.get("run"),
                                                      save_features=key in features),
                            resources=_resources(config, dataset, method, task))


def count_by_dataset(runs: list[Run]) -> dict[str, int]:
    """Number of training jobs per dataset."""
    out: dict[str, int] = {}
    for run in runs:
        out[run.dataset] = out.get(run.dataset, 0) + 1
    return out
