"""Validate every run config a pipeline config expands to, before anything trains.

`check_runs` first resolves each fragment of a run config where it is written (``run_defaults``,
``datasets.<d>.run``, a method's or task's ``run``, a grid block's ``run``) with
`ghuda.config.resolve`, so that a typo such as ``run_defaults.train.stpes`` is reported at the
place it was made; then it validates the merged run config of every run of the grid with
`ghuda.config.resolve` and `ghuda.config.validate` (names against the registries, method and
harmonizer options against their signatures). The Snakefile calls it (so `snakemake -n` fails
on a bad run config) and so does ``ghuda config check CONFIG``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ghuda import config as run_config
from ghuda.config import ConfigError, located
from ghuda.pipeline.config import check_config, load_config, validate_schema


def _fragments(config: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, fragment) for every partial run config the pipeline config writes."""
    if config.get("run_defaults"):
        yield "run_defaults", config["run_defaults"]
    for name, ds in config["datasets"].items():
        if ds.get("run"):
            yield f"datasets.{name}.run", ds["run"]
        for method, mblock in ds.get("methods", {}).items():
            if mblock.get("run"):
                yield f"datasets.{name}.methods.{method}.run", mblock["run"]
            for task, tblock in mblock.get("tasks", {}).items():
                if tblock.get("run"):
                    yield f"datasets.{name}.methods.{method}.tasks['{task}'].run", tblock["run"]
    for i, block in enumerate(config["grid"]):
        if block.get("run"):
            yield f"grid[{i}] ({block['name']}).run", block["run"]


def check_runs(config: Mapping[str, Any], source: str = "config") -> int:
    """Validate every run config of `config`'s grid; returns how many runs it expands to.

    Raises `ghuda.config.ConfigError` naming the file (`source`), where in it the bad key is
    (or which run it breaks) and the key itself, with its allowed values.
    """
    from ghuda.pipeline.grid import expand_runs

    for where, fragment in _fragments(config):
        with located(f"{source}, {where}"):
            run_config.resolve(fragment)
    try:
        runs = expand_runs(config)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None
    checked: set[str] = set()
    for run in runs:
        what = (f"{source}: the run {run.dataset} {run.task} {run.method}/{run.variant} seed "
                f"{run.seed} (grid block {run.block!r}) has an invalid run config")
        with located(what):
            cfg = run_config.resolve(run.run_config)
            # the seed does not change what the registries accept: one check per other config
            key = run_config.sha256({**cfg, "train": {**cfg["train"], "seed": 0}})
            if key not in checked:
                checked.add(key)
                run_config.validate(cfg)
    return len(runs)


def check_pipeline(config: dict[str, Any], source: str = "config",
                   root: Path | None = None) -> int:
    """Everything `snakemake` checks before planning jobs: the schema (defaults filled in
    place), cross-references, registry names and every run config; returns the run count."""
    validate_schema(config, source=source, root=root)
    check_config(config, source=source, check_registry=True)
    return check_runs(config, source=source) + check_extension_runs(config, source=source)


def check_extension_runs(config: Mapping[str, Any], source: str = "config") -> int:
    """Validate the run config of every ``extensions`` run (`ghuda.extensions.meta.resolve`;
    the task's builder checks its own keys when the run starts); returns their number."""
    if not config.get("extensions"):
        return 0
    from ghuda.extensions.grid import expand_extension_runs
    from ghuda.extensions.meta import resolve

    try:
        specs = expand_extension_runs(config)
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from None
    for spec in specs:
        with located(f"{source}: the extension run {spec.key} has an invalid run config"):
            resolve(spec.run_config)
    return len(specs)


def _count(n: int, noun: str) -> str:
    """"1 run config", "4 run configs"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _check_file(path: str) -> str:
    """Check one pipeline or run config file; returns a one-line verdict (ConfigError if bad)."""
    try:
        raw = run_config.parse_yaml(Path(path).read_text(encoding="utf-8"), path)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror})") from None
    if isinstance(raw, dict) and "grid" in raw:
        config = load_config(path, check_registry=True)
        n = check_runs(config, source=path)
        k = check_extension_runs(config, source=path)
        extra = f" and its {_count(k, 'extension run config')}" if k else ""
        verb = "is" if n == 1 and not k else "are"
        return f"{path}: pipeline config valid; its {_count(n, 'run config')}{extra} {verb} valid"
    with located(path):
        run_config.load(path)
    return f"{path}: run config valid"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ghuda config check FILE ...``; exit 0 valid, 2 invalid."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="ghuda config", description="Check configs before anything runs: a pipeline "
        "config (configs/*.yaml: schema, cross-references and every run config its grid "
        "expands to) or a run config (docs/config.md).")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate config files; exit 2 on the first error")
    check.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    for path in args.files:
        try:
            print(_check_file(path))
        except ConfigError as err:
            print(f"ghuda config check: {err}", file=sys.stderr)
            return 2
    return 0
