"""Cost of one harmonized optimizer step (issue 2, item 4). Run by hand, not by CI:

    .venv/bin/python benchmarks/harmonizer_step.py [--repeats 10] [--warmup 3] [--threads 2]
        [--only sum,gh] [--models resnet18,digit_cnn] [--device cpu] [--out CSV]

Models: torchvision's ResNet-18 (no weights, 64 px, fc removed) and the project's digit CNN
(32 px), each with a linear classifier and a DANN-style discriminator behind a gradient
reversal layer; batch 32 source + 32 target. One step = zero_grad, forward of both batches,
the two losses (transfer first, classification second: REFERENCE 1.4), the harmonizer's
backward (measure scope: everything but the discriminator, as for CDAN+E), SGD step.

Configurations: `sum` (one backward pass of L1 + L2, no statistics: a loop without
harmonization), `floor` (two ``torch.autograd.grad`` calls and their plain sum written to
``.grad`` with one foreach add: the floor of any two-pass harmonizer), `sum+stats` (the same
update through the two-pass path, with statistics), every two-pass harmonizer of the registry
(agr_rand, agr_sum, gh, ghpp, ghpp_exact, pcgrad, ...), and `gh+weighted_loss` (the released
three-pass procedure). Ratios are to `sum` and to `gh+weighted_loss`. The model and the step
are the benchmark library's (`benchlib.dann_step`, shared with gpu_check.py).

Time: all configurations of a model run in ONE process, interleaved round robin (rotating
start) for `--warmup` untimed and `--repeats` timed rounds, so that load drift on a shared
machine hits every configuration alike. Reported: median wall time (its quartiles and minimum
in the CSV) and median process CPU time (all threads) per step; ratios use the medians. On a
loaded machine with --threads 1, CPU time is the steadier measure of work; wall time is what a
user waits.
Memory: each configuration in a fresh process, after warm-up, two measures.
(1) Tensor bytes (primary; CPU and CUDA): `peak_mb` is the peak of all live torch tensors
    during one step (parameters, optimizer state and data included), `step_mb` the same minus
    the tensors alive before the step (zero_grad'ed), i.e. what the step itself needs:
    activations, gradients, the harmonizer's two task gradients. On CPU these come from the
    profiler's memory timeline (torch.profiler with profile_memory; exact and deterministic:
    every allocation and free of torch's CPU allocator); on CUDA from max_memory_allocated.
(2) Resident set (CPU only; what the OS sees, allocator included): glibc's mmap and trim
    thresholds are pinned at 128 KiB (mallopt) so that freed tensor buffers go back to the OS;
    three times: zero_grad, malloc_trim, record VmRSS, reset the peak through
    ``/proc/self/clear_refs`` (5), run one step, read VmHWM. `rss_step_mb` = median of
    VmHWM - VmRSS (range in `rss_step_range_mb`). It moves by tens of MB from run to run
    (allocator, library pages evicted and re-read on a loaded machine), hence (1) for ratios.
tracemalloc does not see torch's allocations, hence neither measure uses it.

Writes a table to stdout and a CSV (one row per model and configuration; machine, torch
version, device, threads and load average in every row) to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from benchlib.csv_out import write_csv
from benchlib.dann_step import (
    FLOOR,
    DannStep,
    StepConfig,
    StepModel,
    backward_passes,
    two_pass_harmonizers,
)
from benchlib.provenance import date, git_commit, load_average, machine_description
from benchlib.timing import quartiles, rotation


def configs() -> dict[str, StepConfig]:
    """label -> configuration (the floor is no harmonizer)."""
    return {"sum": StepConfig("sum"), "floor": FLOOR, "sum+stats": StepConfig("sum", {}, True),
            **{name: StepConfig(name, {}, True) for name in two_pass_harmonizers()},
            "gh+weighted_loss": StepConfig("gh", {"mode": "weighted_loss"}, True)}


MODELS = ("resnet18", "digit_cnn")
BASELINE, THREE_PASS = "sum", "gh+weighted_loss"
BATCH = 32
# glibc mallopt parameters (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD) for the memory runs
_MALLOPT = {-3: 128 * 1024, -1: 128 * 1024, -2: 0}
RESULTS = Path(__file__).resolve().parent / "results"


# ----------------------------------------------------------------------------- worker
def _proc_status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _rss_step_memory(step, optimizer, steps: int = 3) -> list[float]:
    """Resident-set growth of each of `steps` steps over the state before it, in bytes."""
    from ghuda.engine.memory import release_free_memory

    libc = ctypes.CDLL("libc.so.6")
    for param, value in _MALLOPT.items():
        libc.mallopt(param, value)
    step()  # re-allocate the step's buffers under the pinned thresholds
    peaks = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        release_free_memory()
        state = _proc_status_kb("VmRSS") * 1024
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
        step()
        peaks.append(_proc_status_kb("VmHWM") * 1024 - state)
    return peaks


def _tensor_memory(step, optimizer, cuda: bool) -> tuple[int, int]:
    """(live tensor bytes before one step, peak live tensor bytes during it)."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        return before, torch.cuda.max_memory_allocated()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "timeline.json"
        with warnings.catch_warnings():  # deprecated in favour of a CUDA-only API
            warnings.simplefilter("ignore", FutureWarning)
            prof.export_memory_timeline(str(path), device="cpu")
        _, sizes = json.loads(path.read_text())
    totals = [sum(categories) for categories in sizes]
    return totals[0], max(totals)


def _model(model: str) -> StepModel:
    """ResNet-18 (no weights, fc removed) at 64 px, or the digit CNN at 32 px."""
    from torch import nn

    def resnet18() -> tuple[nn.Module, int]:
        import torchvision

        backbone = torchvision.models.resnet18(weights=None)
        dim = backbone.fc.in_features
        backbone.fc = nn.Identity()
        return backbone, dim

    def digit_cnn() -> tuple[nn.Module, int]:
        from ghuda.models import DigitCNN

        backbone = DigitCNN()
        return backbone, backbone.feature_dim

    if model == "resnet18":
        return StepModel(resnet18, image=64, classes=31, hidden=1024)
    return StepModel(digit_cnn, image=32, classes=10, hidden=256)


def _bench(model: str, labels: list[str], threads: int, device: str) -> DannStep:
    """The step of `model` with the configurations `labels` (torch SGD, lr 1e-3)."""
    import torch

    torch.set_num_threads(threads)
    table = configs()
    return DannStep(_model(model), BATCH, device, {label: table[label] for label in labels},
                    lambda params: torch.optim.SGD(params, lr=1e-3, momentum=0.9,
                                                   nesterov=True, weight_decay=5e-4))


def time_worker(model: str, labels: list[str], repeats: int, warmup: int, threads: int,
                device: str) -> dict:
    """Step times of every configuration, interleaved in one process (round robin, rotating
    start) so that load drift on a shared machine hits all configurations alike."""
    bench = _bench(model, labels, threads, device)
    for _ in range(warmup):
        for label in labels:
            bench.step(label)
    wall: dict[str, list[float]] = {label: [] for label in labels}
    cpu: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(repeats):
        for label in rotation(labels, r):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            bench.step(label)
            wall[label].append(time.perf_counter() - start_wall)
            cpu[label].append(time.process_time() - start_cpu)
    return {"wall_s": wall, "cpu_s": cpu,
            "n_params": sum(p.numel() for p in bench.params),
            "n_measure": sum(p.numel() for p in bench.measure)}


def memory_worker(model: str, label: str, warmup: int, threads: int, device: str) -> dict:
    """Step memory of one configuration in this fresh process (MB)."""
    bench = _bench(model, [label], threads, device)
    for _ in range(warmup):
        bench.step(label)
    step = lambda: bench.step(label)  # noqa: E731
    cuda = bench.device.type == "cuda"
    rss = [] if cuda else _rss_step_memory(step, bench.optimizer)
    before, peak = _tensor_memory(step, bench.optimizer, cuda)
    return {"peak_mb": peak / 2**20, "step_mb": (peak - before) / 2**20,
            "rss_step_mb": [r / 2**20 for r in rss]}


# ----------------------------------------------------------------------------- driver
@dataclass
class Row:
    model: str
    config: str
    backward_passes: int
    wall_median_ms: float
    wall_q1_ms: float
    wall_q3_ms: float
    wall_min_ms: float
    cpu_median_ms: float
    cpu_min_ms: float
    steps: int
    peak_mb: float
    step_mb: float
    rss_step_mb: float
    rss_step_range_mb: str
    n_params: int
    n_measure: int
    time_vs_sum: float = float("nan")
    time_vs_three_pass: float = float("nan")
    cpu_vs_sum: float = float("nan")
    cpu_vs_three_pass: float = float("nan")
    peak_vs_sum: float = float("nan")
    step_mem_vs_sum: float = float("nan")


def _run_worker(args: argparse.Namespace, *worker_args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, *worker_args, "--repeats", str(args.repeats),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--device", args.device]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {' '.join(worker_args)} failed (exit {done.returncode}):\n"
                         f"{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ratio(rows: dict[tuple[str, str], Row], row: Row, base: str, field: str) -> float:
    other = rows.get((row.model, base))
    return float("nan") if other is None else getattr(row, field) / getattr(other, field)


def measure(args: argparse.Namespace) -> list[Row]:
    """Time each model's configurations in one worker, then the memory of each in its own."""
    rows, table = [], configs()
    for model in args.models:
        print(f"  {model}: timing {', '.join(args.only)} ...", file=sys.stderr, flush=True)
        timing = _run_worker(args, "--time-worker", model, ",".join(args.only))
        for label in args.only:
            print(f"  {model}: memory of {label} ...", file=sys.stderr, flush=True)
            memory = _run_worker(args, "--memory-worker", model, label)
            wall = [1e3 * t for t in timing["wall_s"][label]]
            cpu = [1e3 * t for t in timing["cpu_s"][label]]
            median, q1, q3 = quartiles(wall)
            rss = memory["rss_step_mb"]
            rows.append(Row(model, label, backward_passes(table[label]), median, q1, q3,
                            min(wall), statistics.median(cpu), min(cpu), len(wall),
                            memory["peak_mb"], memory["step_mb"],
                            statistics.median(rss) if rss else float("nan"),
                            f"{min(rss):.1f}-{max(rss):.1f}" if rss else "",
                            timing["n_params"], timing["n_measure"]))
    by_key = {(r.model, r.config): r for r in rows}
    for r in rows:
        r.time_vs_sum = _ratio(by_key, r, BASELINE, "wall_median_ms")
        r.time_vs_three_pass = _ratio(by_key, r, THREE_PASS, "wall_median_ms")
        r.cpu_vs_sum = _ratio(by_key, r, BASELINE, "cpu_median_ms")
        r.cpu_vs_three_pass = _ratio(by_key, r, THREE_PASS, "cpu_median_ms")
        r.peak_vs_sum = _ratio(by_key, r, BASELINE, "peak_mb")
        r.step_mem_vs_sum = _ratio(by_key, r, BASELINE, "step_mb")
    return rows


def _table(rows: list[Row]) -> str:
    head = (f"{'model':9s} {'config':16s} {'pass':>4s} {'wall ms':>8s} {'cpu ms':>7s} "
            f"{'x sum':>11s} {'x 3-pass':>11s} {'peak MB':>8s} {'step MB':>8s} "
            f"{'x sum':>11s} {'RSS step MB':>11s}")
    lines = [head, f"{'':31s}{'(wall / cpu)':>41s}{'(peak / step)':>29s}", "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.model:9s} {r.config:16s} {r.backward_passes:4d} {r.wall_median_ms:8.1f} "
            f"{r.cpu_median_ms:7.1f} {r.time_vs_sum:5.2f}/{r.cpu_vs_sum:<5.2f} "
            f"{r.time_vs_three_pass:5.2f}/{r.cpu_vs_three_pass:<5.2f} {r.peak_mb:8.1f} "
            f"{r.step_mb:8.1f} {r.peak_vs_sum:5.2f}/{r.step_mem_vs_sum:<5.2f} "
            f"{r.rss_step_mb:11.1f}")
    return "\n".join(lines)


def _targets(rows: list[Row]) -> list[str]:
    """The issue's targets for ResNet-18, as PASS/MISS lines."""
    gh = next((r for r in rows if r.model == "resnet18" and r.config == "gh"), None)
    if gh is None:
        return []
    checks = [("gh wall time <= 0.8 x three-pass", gh.time_vs_three_pass, 0.8),
              ("gh cpu time  <= 0.8 x three-pass", gh.cpu_vs_three_pass, 0.8),
              ("gh wall time <= 1.8 x sum", gh.time_vs_sum, 1.8),
              ("gh cpu time  <= 1.8 x sum", gh.cpu_vs_sum, 1.8),
              ("gh peak memory <= 1.3 x sum", gh.peak_vs_sum, 1.3),
              ("gh step memory (above the model state) <= 1.3 x sum", gh.step_mem_vs_sum, 1.3)]
    return [f"{'PASS' if value <= limit else 'MISS'}  {text}: {value:.2f}"
            for text, value, limit in checks if value == value]


def _labels(text: str, allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    labels = [x for x in text.split(",") if x]
    bad = [x for x in labels if x not in allowed]
    if bad or not labels:
        raise argparse.ArgumentTypeError(f"unknown {what} {bad or text!r}; choose from "
                                         f"{', '.join(allowed)}")
    return labels


def _device(text: str) -> str:
    if text != "cpu" and not re.fullmatch(r"cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"device must be cpu or cuda[:i], got {text!r}")
    return text


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=_positive, default=10,
                        help="timed steps per configuration (10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (3)")
    parser.add_argument("--threads", type=_positive, default=2, help="torch threads (2)")
    labels = list(configs())
    parser.add_argument("--only", type=lambda s: _labels(s, labels, "configuration"),
                        default=labels, help=f"comma list of {', '.join(labels)}")
    parser.add_argument("--models", type=lambda s: _labels(s, MODELS, "model"),
                        default=list(MODELS), help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--device", type=_device, default="cpu", help="cpu or cuda[:i] (cpu)")
    parser.add_argument("--out", type=Path, default=None,
                        help="CSV path (benchmarks/results/harmonizer_step_<device>.csv)")
    parser.add_argument("--time-worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    if args.time_worker:
        model, labels = args.time_worker
        print(json.dumps(time_worker(model, labels.split(","), args.repeats, args.warmup,
                                     args.threads, args.device)))
        return 0
    if args.memory_worker:
        print(json.dumps(memory_worker(*args.memory_worker, args.warmup, args.threads,
                                       args.device)))
        return 0

    import torch

    if args.device != "cpu" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")
    meta = {"machine": machine_description(), "torch": torch.__version__, "device": args.device,
            "git": git_commit(), "threads": str(args.threads), "load_avg_1m": load_average(),
            "date": date(), "batch": f"{BATCH}+{BATCH}"}
    rows = measure(args)
    meta["load_avg_1m"] += f"->{load_average()}"
    out = args.out or RESULTS / f"harmonizer_step_{args.device.replace(':', '')}.csv"
    write_csv(out, list(meta) + list(Row.__dataclass_fields__),
              ({**meta, **asdict(r)} for r in rows))
    print("\n".join(f"{k}: {v}" for k, v in meta.items()))
    print(_table(rows))
    print("\n".join(_targets(rows)))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
