"""`ghuda extension train|fetch|report` (issue 16: GH / GH++ beyond classification).

    ghuda extension train --config RUN.yaml --out DIR [--set key=value ...] [--record-divergence]
    ghuda extension fetch css3d|voc [--root DIR] [--url URL]
    ghuda extension report --config PIPELINE.yaml --results DIR --tables DIR --figures DIR

Exit status: 0 done, 2 configuration or data error (nothing written), 3 non-finite loss
(without --record-divergence), 4 run-folder problem, 5 missing ImageNet weights, 6 download
failed (the message says where to put a manual download).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from ghuda.config import ConfigError, parse_yaml
from ghuda.data.paths import data_root

EXIT_CONFIG, EXIT_NONFINITE, EXIT_FOLDER, EXIT_WEIGHTS, EXIT_FETCH = 2, 3, 4, 5, 6
DATASET_TASKS = {"css3d": "retrieval", "voc": "detection"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ghuda extension", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train one extension run into --out")
    t.add_argument("--config", required=True, help="YAML run config (ghuda.extensions.loop)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=20 (repeatable)")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--fresh", action="store_true",
                   help="start over even if the folder holds a checkpoint of this config")
    t.add_argument("--record-divergence", action="store_true",
                   help="a non-finite loss is a result: metrics.json with status 'diverged'")
    f = sub.add_parser("fetch", help="download and register a paper dataset of an extension")
    f.add_argument("dataset", choices=sorted(DATASET_TASKS))
    f.add_argument("--root", default=None,
                   help="data root (default: $GHUDA_DATA or <repo>/data)")
    f.add_argument("--url", default=None, help="download from this URL instead (a mirror)")
    r = sub.add_parser("report", help="tables and figures of a pipeline config's extensions")
    r.add_argument("--config", required=True, help="resolved pipeline config (YAML)")
    r.add_argument("--results", required=True, help="<results>/<name>/extensions")
    r.add_argument("--tables", required=True, help="tables folder")
    r.add_argument("--figures", required=True, help="figures folder")
    return p


def _load_run_config(path: str, overrides: list[str]) -> dict:
    try:
        raw = parse_yaml(Path(path).read_text(), path) or {}
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.steps=20")
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a mapping")
        node[leaf] = yaml.safe_load(text) if text.strip() else None
    return raw


def _train(args: argparse.Namespace) -> int:
    from ghuda.engine.checkpoint import CheckpointError
    from ghuda.engine.step import NonFiniteLoss
    from ghuda.extensions.loop import ExtensionRun
    from ghuda.models.torchvision_backbones import PretrainedWeightsMissing
    from ghuda.runs import RunFolderError

    try:
        run = ExtensionRun(_load_run_config(args.config, args.overrides), args.out,
                           record_divergence=args.record_divergence)
        metrics = run.run(fresh=args.fresh)
    except ConfigError as err:
        print(f"ghuda extension train: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except (FileNotFoundError, ValueError) as err:  # missing dataset, bad groups
        print(f"ghuda extension train: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except PretrainedWeightsMissing as err:
        print(f"ghuda extension train: {err}", file=sys.stderr)
        return EXIT_WEIGHTS
    except NonFiniteLoss as err:
        print(f"ghuda extension train: {err}", file=sys.stderr)
        return EXIT_NONFINITE
    except (RunFolderError, CheckpointError) as err:
        print(f"ghuda extension train: {err}", file=sys.stderr)
        return EXIT_FOLDER
    if metrics["status"] == "diverged":
        print(f"ghuda extension train: {metrics['failure']['message']}; recorded as "
              f"diverged in "
              f"{run.folder.metrics}", file=sys.stderr)
    else:
        last = metrics["protocols"]["last"]
        print("ghuda extension train: done; last: " + ", ".join(
            f"{m} {last[m]:.1f}" for m in metrics["run"]["metrics"]))
    return 0


def _fetch(args: argparse.Namespace) -> int:
    import importlib

    from ghuda.data.fetch import FetchError, VerifyError
    from ghuda.extensions.meta import task_module

    module = importlib.import_module(task_module(DATASET_TASKS[args.dataset]))
    try:
        path = module.fetch(args.dataset, data_root(args.root), url=args.url)
    except (FetchError, VerifyError) as err:
        print(f"ghuda extension fetch: {err}", file=sys.stderr)
        return EXIT_FETCH
    print(f"ghuda extension fetch: {args.dataset} ready in {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ghuda.extensions.report import write_report

    try:
        config = yaml.safe_load(Path(args.config).read_text())
        written = write_report(config, Path(args.results), Path(args.tables),
                               Path(args.figures))
    except (OSError, ValueError) as err:
        print(f"ghuda extension report: {err}", file=sys.stderr)
        return EXIT_CONFIG
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ghuda extension`; returns the exit status."""
    args = _parser().parse_args(argv)
    return {"train": _train, "fetch": _fetch, "report": _report}[args.command](args)
