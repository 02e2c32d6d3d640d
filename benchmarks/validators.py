"""Cost of the unsupervised validators per evaluation (issue 27). Run by hand, not by CI:

    .venv/bin/python benchmarks/validators.py [--config configs/digits_mini.yaml]
        [--repeats 10] [--warmup 2] [--out benchmarks/results/validators_cpu.csv]

The model is the run config's (default configs/digits_mini.yaml: the digit CNN of the default
pipeline, DANN, untrained, on the CPU with one thread) on digits-mini synth -> optdigits. Timed,
interleaved round robin in one process (`--warmup` untimed, `--repeats` timed rounds):
``pass``: the evaluation's forward passes over the target evaluation split and the source
validation split, with the accuracies (what `ghuda.engine.evaluate.evaluate_splits` did before
the validators: its logits are what the validators read); each registered validator on the
logits of that pass; ``all validators``: `ghuda.engine.validators.scores`. Reported: median
process CPU time (ms) and quartiles, and the ratio to ``pass``. Every row carries the machine,
torch version, commit, load average and date.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from benchlib.csv_out import write_csv
from benchlib.provenance import date, git_commit, load_average, machine_description
from benchlib.timing import quartiles, rotation

from ghuda import config
from ghuda.engine.data import eval_batches
from ghuda.engine.evaluate import accuracies, predict_all
from ghuda.engine.trainer import Trainer
from ghuda.engine.validators import VALIDATORS, Evidence, scores

ROOT = Path(__file__).resolve().parent.parent
FIELDS = ("what", "n_target", "n_source_val", "cpu_ms_median", "cpu_ms_q1", "cpu_ms_q3",
          "ratio_to_pass", "repeats", "machine", "torch", "git", "load_avg_1m", "date")


def evaluation_pass(trainer: Trainer) -> Evidence:
    """The forward passes and accuracies of one evaluation; the validators' evidence."""
    method, splits, runtime, t = trainer.method, trainer.splits, trainer.runtime, \
        trainer.train_cfg
    method.eval()
    out = {}
    for name, ds in (("target", splits.target_eval), ("source_val", splits.source_val)):
        preds, labels, logits = predict_all(
            method.predict, eval_batches(ds, t["eval_batch_size"], t["num_workers"]),
            runtime.device, runtime.channels_last, runtime.autocast())
        accuracies(preds, labels, splits.num_classes)
        out[name] = logits, labels
    return Evidence(out["target"][0], out["source_val"][0], out["source_val"][1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "digits_mini.yaml"))
    parser.add_argument("--data-root", type=Path, default=ROOT / "data",
                        help="folder holding digits_mini/ (default: the checkout's data/)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "validators_cpu.csv")
    args = parser.parse_args(argv)
    cfg = config.load(args.config, [f"dataset.root={args.data_root}", "train.device=cpu",
                                    "train.threads=1"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp), bar=False)
        trainer.setup()
        evidence = evaluation_pass(trainer)
        jobs: dict[str, Callable[[], Any]] = {"pass": lambda: evaluation_pass(trainer)}
        jobs |= {name: (lambda n=name: VALIDATORS.get(n)(evidence))
                 for name in VALIDATORS.names()}
        jobs["all validators"] = lambda: scores(evidence)
        times: dict[str, list[float]] = {k: [] for k in jobs}
        for r in range(args.warmup + args.repeats):
            for label in rotation(list(jobs), r):
                t0 = time.process_time()
                jobs[label]()
                if r >= args.warmup:
                    times[label].append(1e3 * (time.process_time() - t0))
    base = quartiles(times["pass"])[0]
    common = {"repeats": args.repeats, "machine": machine_description(),
              "torch": torch.__version__, "git": git_commit(), "load_avg_1m": load_average(),
              "date": date()}
    rows = []
    for label, ts in times.items():
        median, q1, q3 = quartiles(ts)
        rows.append({"what": label, "n_target": len(evidence.target_logits),
                     "n_source_val": len(evidence.source_logits), "cpu_ms_median": median,
                     "cpu_ms_q1": q1, "cpu_ms_q3": q3, "ratio_to_pass": median / base,
                     **common})
        print(f"{label:>15}: {median:8.2f} ms CPU (q1 {q1:.2f}, q3 {q3:.2f}), "
              f"x{median / base:.3f} of the evaluation pass")
    write_csv(args.out, list(FIELDS), rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
