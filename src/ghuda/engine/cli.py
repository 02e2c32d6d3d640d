"""`ghuda train --config FILE [--set key=value ...] --out DIR` (docs/config.md).

Exit status: 0 done (or already complete), 2 configuration or data error (nothing was
started), 3 non-finite loss, 4 run-folder or checkpoint problem (another process holds the
folder, it holds another configuration's or data's run, a corrupt checkpoint, a write failed),
5 missing ImageNet weights, 130 interrupted (Ctrl-C; the same command resumes).
"""

from __future__ import annotations

import argparse
import sys

from ghuda.config import ConfigError, load, sha256, to_yaml

EXIT_CONFIG, EXIT_NONFINITE, EXIT_FOLDER, EXIT_WEIGHTS, EXIT_INTERRUPTED = 2, 3, 4, 5, 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ghuda train", description="Train one UDA run (docs/config.md, docs/run-outputs.md). "
        "Re-running the same command resumes from the checkpoint in --out.",
        usage="ghuda train [--config FILE] [--set KEY=VALUE ...] --out DIR [--fresh] "
        "[--record-divergence] [--progress | --no-progress]\n"
        "       ghuda train [--config FILE] [--set KEY=VALUE ...] --print-config")
    p.add_argument("--config", metavar="FILE",
                   help="YAML run config (omit: the package defaults, which are not "
                   "configs/digits_mini.yaml's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=20 (repeatable)")
    p.add_argument("--out", metavar="DIR",
                   help="run folder (metrics.json, history.jsonl, config.yaml, ...); "
                   "required, except with --print-config")
    p.add_argument("--fresh", action="store_true",
                   help="discard any checkpoint or completed run in --out and start over")
    p.add_argument("--record-divergence", action="store_true",
                   help="a non-finite loss is a result: write metrics.json with status "
                   "'diverged' and no accuracy, and exit 0 (the pipeline's mode); without it "
                   f"the run stops with exit {EXIT_NONFINITE} and no metrics.json")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config and its sha256, then exit")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="bar", action="store_true", default=None,
                     help="force a tqdm progress bar")
    bar.add_argument("--no-progress", dest="bar", action="store_false",
                     help="structured log lines only")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ghuda train`; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        cfg = load(args.config, args.overrides)
    except ConfigError as err:
        print(f"ghuda train: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    if args.print_config:
        print(to_yaml(cfg) + f"# sha256: {sha256(cfg)}")
        return 0
    if not args.out:
        print("ghuda train: --out DIR is required", file=sys.stderr)
        return EXIT_CONFIG

    from ghuda.engine.interrupt import StopRequest
    from ghuda.engine.trainer import Trainer

    stop = StopRequest()
    trainer = Trainer(cfg, args.out, fresh=args.fresh, bar=args.bar,
                      record_divergence=args.record_divergence, stop=stop)
    try:
        with stop:
            return train_status(trainer, args.record_divergence)
    except KeyboardInterrupt:
        print(f"ghuda train: interrupted. Run the same command again to resume "
              f"({resume_hint(trainer)}; --fresh starts over).", file=sys.stderr)
        return EXIT_INTERRUPTED


def resume_hint(trainer) -> str:
    """Where an interrupted run continues from: its checkpoint, or step 1."""
    ckpt = trainer.folder.checkpoint
    return (f"it continues from the last checkpoint, {ckpt}" if ckpt.exists() else
            "no checkpoint was written yet, so it starts from step 1")


def train_status(trainer, record_divergence: bool, prog: str = "ghuda train") -> int:
    """Set up and run `trainer`; each error is one line on stderr prefixed `prog`, and the
    return value is the exit status of the module docstring (KeyboardInterrupt propagates)."""
    from ghuda.data.paths import DatasetCorruptError, DatasetNotFoundError
    from ghuda.engine.checkpoint import CheckpointError
    from ghuda.engine.trainer import NonFiniteLoss, RunFolderError
    from ghuda.models.torchvision_backbones import PretrainedWeightsMissing

    try:
        trainer.setup()
    except RunFolderError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return EXIT_FOLDER
    except (DatasetNotFoundError, DatasetCorruptError) as err:
        print(f"{prog}: data error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except (ValueError, FileNotFoundError) as err:  # e.g. a bad group, train.device=cuda
        print(f"{prog}: config error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except PretrainedWeightsMissing as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return EXIT_WEIGHTS
    try:
        trainer.run()
    except (DatasetNotFoundError, DatasetCorruptError) as err:  # changed since setup
        print(f"{prog}: data error: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except NonFiniteLoss as err:
        print(f"{prog}: {err}", file=sys.stderr)
        if record_divergence:
            print(f"{prog}: recorded as diverged in {trainer.folder.metrics}",
                  file=sys.stderr)
            return 0
        return EXIT_NONFINITE
    except (CheckpointError, RunFolderError) as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return EXIT_FOLDER
    except OSError as err:  # e.g. a read-only or full disk under --out
        print(f"{prog}: cannot write the run folder {trainer.folder.out} "
              f"({err.strerror}: {err.filename}); choose another --out or free the disk.",
              file=sys.stderr)
        return EXIT_FOLDER
    return 0
