"""CPU time of one forward + backward pass of each backbone, the numbers the compute budget
reads (`ghuda report budget`; ``compute_budget.cpu_pass_csv``). Run by hand, not by CI:

    .venv/bin/python benchmarks/backbone_pass.py [--settings digit_cnn:32:32:1,...]
        [--repeats 30] [--warmup 5] [--out benchmarks/results/backbone_pass_cpu.csv]

A setting is backbone:batch:size:threads: one forward of `batch` random images of size x size
and the backward of the mean squared feature, on the CPU with `threads` torch threads, in
training mode (no pretrained weights). The defaults are what the budget needs: the digits
backbones at the batch, image size and threads of the runs of configs/default.yaml and
configs/digits_full.yaml, and the paper backbones at 224 px with a batch of 2 (the budget
counts their FLOPs instead; these rows are for reference).

Time: process CPU time (all threads; steadier than wall time on a shared machine), median
and quartiles over `--repeats` passes after `--warmup` untimed ones. All settings run in one
process, interleaved round robin, so that load drift hits every setting alike (the budget
uses the ratio of two backbones' passes). Every row carries the machine, torch version,
commit, load average and date.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib.csv_out import write_csv as write_records
from benchlib.provenance import date, git_commit, load_average, machine_description
from benchlib.timing import quartiles

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_SETTINGS = ("digit_cnn:32:32:1,tiny_vit:32:32:1,"
                    "resnet50:2:224:1,resnet101:2:224:1,vit_b16:2:224:1")
FIELDS = ("backbone", "batch", "size", "threads", "cpu_ms_median", "cpu_ms_q1", "cpu_ms_q3",
          "wall_ms_median", "repeats", "machine", "torch", "git", "load_avg_1m", "date")


@dataclass(frozen=True)
class Setting:
    """One backbone pass to time."""

    backbone: str
    batch: int
    size: int
    threads: int


def parse_settings(text: str) -> list[Setting]:
    """'digit_cnn:32:32:1,tiny_vit:32:32:1' -> settings (backbone:batch:size:threads)."""
    out = []
    for item in (x for x in text.split(",") if x):
        parts = item.split(":")
        if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts[1:]):
            raise argparse.ArgumentTypeError(
                f"setting {item!r}: expected backbone:batch:size:threads (positive integers)")
        out.append(Setting(parts[0], int(parts[1]), int(parts[2]), int(parts[3])))
    if not out:
        raise argparse.ArgumentTypeError("no setting given")
    return out


def measure(settings: list[Setting], repeats: int, warmup: int) -> list[dict[str, float]]:
    """Per setting: median and quartiles of the CPU time (ms) of one forward + backward, and
    the median wall time; settings interleaved round robin."""
    import torch

    from ghuda.models import build_backbone

    torch.manual_seed(0)
    models = [build_backbone(s.backbone).train() for s in settings]
    inputs = [torch.randn(s.batch, 3, s.size, s.size) for s in settings]
    cpu: list[list[float]] = [[] for _ in settings]
    wall: list[list[float]] = [[] for _ in settings]
    for rnd in range(warmup + repeats):
        for i, (setting, model, x) in enumerate(zip(settings, models, inputs, strict=True)):
            torch.set_num_threads(setting.threads)
            model.zero_grad(set_to_none=True)
            c0, w0 = time.process_time(), time.perf_counter()
            model(x).float().pow(2).mean().backward()
            c1, w1 = time.process_time(), time.perf_counter()
            if rnd >= warmup:
                cpu[i].append((c1 - c0) * 1e3)
                wall[i].append((w1 - w0) * 1e3)
    out = []
    for c, w in zip(cpu, wall, strict=True):
        median, q1, q3 = quartiles(c)
        out.append({"cpu_ms_median": median, "cpu_ms_q1": q1, "cpu_ms_q3": q3,
                    "wall_ms_median": statistics.median(w), "repeats": len(c)})
    return out


def write_csv(path: Path, settings: list[Setting], results: list[dict[str, float]],
              meta: dict[str, str]) -> None:
    """One row per setting, with the machine, torch version, commit, load and date."""
    write_records(path, list(FIELDS), ({**s.__dict__, **r, **meta}
                                       for s, r in zip(settings, results, strict=True)))


def main(argv: list[str] | None = None) -> int:
    """Time the settings and write the CSV."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", type=parse_settings, default=DEFAULT_SETTINGS,
                        help=f"comma list of backbone:batch:size:threads ({DEFAULT_SETTINGS})")
    parser.add_argument("--repeats", type=int, default=30, help="timed passes (30)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed passes first (5)")
    parser.add_argument("--out", type=Path, default=RESULTS / "backbone_pass_cpu.csv",
                        help="CSV path (benchmarks/results/backbone_pass_cpu.csv)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    import torch

    meta = {"machine": machine_description(), "torch": torch.__version__, "git": git_commit(),
            "load_avg_1m": load_average(), "date": date()}
    results = measure(args.settings, args.repeats, args.warmup)
    meta["load_avg_1m"] += f"->{load_average()}"
    write_csv(args.out, args.settings, results, meta)
    for s, r in zip(args.settings, results, strict=True):
        print(f"{s.backbone:>10} batch {s.batch:>3} {s.size:>3} px {s.threads} thread(s): "
              f"{r['cpu_ms_median']:9.2f} CPU ms (median of {r['repeats']})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
