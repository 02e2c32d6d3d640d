"""GPU check (issue 13): one command that measures what the GPU path costs. Run by hand:

    PYTHONPATH=src python3 benchmarks/gpu_check.py [--device cuda] [--out CSV] [--only ...]
    PYTHONPATH=src python3 benchmarks/gpu_check.py --device cpu --quick   # tiny, ~30 s

Needs torch, torchvision, numpy, Pillow and PyYAML only (no Snakemake, DVC, pandas; a
digits-mini that is not already under --data-root is built, which needs scikit-learn and
matplotlib, else that section is reported as skipped). Five sections, one CSV row per measurement:

* ``step``: ResNet-50 at 224 px, 32 source + 32 target images, DANN-style heads (a linear
  classifier and a discriminator behind a gradient reversal; measure scope: all but the
  discriminator), engine SGD: ms per step of `plain` (one backward of L1 + L2), `floor` (two
  ``autograd.grad`` calls, plain sum written: the least any two-pass harmonizer can cost),
  every two-pass harmonizer of the registry (agr_rand, agr_sum, gh, ghpp, ghpp_exact,
  pcgrad, ...; direct mode, no statistics, as on the engine's non-logging steps) and
  `three_pass` (gh, released weighted-loss form), each in fp32 and in bf16 autocast with
  channels-last. Configurations run interleaved (round
  robin) so that drift hits all alike; median over repeats, CUDA synchronised per step.
* ``digits``: one short digits-mini run per registered method (harmonizer sum) and DANN with
  every two-pass harmonizer, through the engine: its median ms per step and final target
  accuracy.
* ``backbone``: the step time of each backbone that configs/paper.yaml runs on each paper
  dataset (no pretrained weights; digit_cnn for Digits) on a generated tree in that dataset's
  layout (`ghuda.data.fixtures` at 2x its images per class, 300 px solid-colour images,
  registered like the real data, no download; small, so that building it and the one
  evaluation at the end stay short), through the engine: source-only, the dataset's paper
  batch size and `num_workers`. This is the unit step that `ghuda report budget --gpu-csv`
  uses.
* ``loader``: CDAN+E with ResNet-50 on the Office-31 tree (16x its images per class, so that
  epochs are as short as real Office-31's) through the engine: with its input pipeline
  (persistent workers, pinned memory, prefetch) reading the JPEG files, the same reading the
  decoded uint8 cache (`dataset.decoded_cache`), and on cached batches (compute only): does
  the input pipeline starve the device?
* ``determinism``: DANN + GH on digits-mini twice with one seed, with ``train.deterministic``
  true and false: identical histories or not, and the step time of each mode.

The CSV is rewritten after each section, so a run stopped by a time limit keeps what it
measured. Each section is a module of `benchlib.gpu` (the benchmark library beside this
script, shared with harmonizer_step.py: the step and its floor, timing, provenance).

``--quick`` shrinks everything (the digit CNN at 32 px for the step table, a tiny ViT on the
Office-31 tree, batch 2-4, 2-3 steps) so that a test can exercise every path on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from benchlib.gpu import backbone, determinism, digits, loader, step
from benchlib.gpu.rows import Context, Row, Sizes, sizes, table, write_csv
from benchlib.provenance import date, git_commit

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# section -> its run(ctx), in the order a full run takes them
SECTIONS: dict[str, Callable[[Context], list[Row]]] = {
    "step": step.run, "loader": loader.run, "determinism": determinism.run,
    "digits": digits.run, "backbone": backbone.run}


def _meta(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {"device": f"{device} ({name})", "torch": torch.__version__,
            "python": platform.python_version(), "git": git_commit(), "date": date()}


def run(sections: tuple[str, ...], s: Sizes, device: torch.device, data_root: Path,
        threads: int | None, log: Callable[[str], None],
        after_section: Callable[[list[Row]], None] = lambda rows: None) -> list[Row]:
    """Run `sections` in order; `after_section` gets the rows so far after each (the driver
    writes the CSV then, so a run stopped by a time limit keeps what it measured)."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ghuda-gpu-check-") as tmp:
        ctx = Context(s, device, data_root, Path(tmp), threads)
        for section in sections:
            start = time.perf_counter()
            rows += SECTIONS[section](ctx)
            log(f"gpu_check: {section} done in {time.perf_counter() - start:.0f} s")
            after_section(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the sections, write the CSV, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU test)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections ({', '.join(SECTIONS)})")
    parser.add_argument("--data-root", type=Path, default=REPO / "data",
                        help="where digits-mini is (else it is built in a temp folder)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None,
                        help="CSV (default benchmarks/results/gpu_check_<device>.csv)")
    args = parser.parse_args(argv)
    sections = tuple(x for x in args.only.split(",") if x)
    if bad := [x for x in sections if x not in SECTIONS]:
        parser.error(f"unknown section(s) {bad}; choose from {tuple(SECTIONS)}")
    # read once, when cuBLAS starts: set before the first section so that the determinism
    # section's deterministic runs get the fixed workspace `deterministic_cuda` asks for
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    meta = _meta(device)
    out = args.out or RESULTS / f"gpu_check_{device.type}{'_quick' if args.quick else ''}.csv"
    rows = run(sections, sizes(args.quick), device, args.data_root, args.threads,
               lambda m: print(m, file=sys.stderr, flush=True),
               lambda so_far: write_csv(so_far, out, meta))
    print(json.dumps(meta))
    print(table(rows))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
