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
  every harmonizer (gh, ghpp, ghpp_exact, pcgrad, agr_sum; direct mode, no statistics, as
  on the engine's non-logging steps) and `three_pass` (gh, released weighted-loss form), each
  in fp32 and in bf16 autocast with channels-last. Configurations run interleaved (round
  robin) so that drift hits all alike; median over repeats, CUDA synchronised per step.
* ``digits``: one short digits-mini run per baseline (harmonizer sum) and DANN with every
  harmonizer, through the engine: its median ms per step and final target accuracy.
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
measured.

``--quick`` shrinks everything (the digit CNN at 32 px for the step table, a tiny ViT on the
Office-31 tree, batch 2-4, 2-3 steps) so that a test can exercise every path on the CPU.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import torch
import yaml
from torch import nn

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SECTIONS = ("step", "loader", "determinism", "digits", "backbone")
HARMONIZERS = ("gh", "ghpp", "ghpp_exact", "pcgrad", "agr_sum")
STEP_CONFIGS = ("plain", "floor", *HARMONIZERS, "three_pass")
BASELINES = ("source_only", "dann", "cdan", "gvb", "mcd", "dwl", "ssrt", "cgdm")
PAPER_BACKBONES = ("resnet50", "resnet101", "vit_b16")


@dataclass
class Row:
    """One CSV row; `ms_per_step` is the median, `note` says what was measured."""

    section: str
    name: str
    precision: str = ""
    dataset: str = ""
    backbone: str = ""
    batch: int = 0
    steps: int = 0
    ms_per_step: float = float("nan")
    ms_q1: float = float("nan")
    ms_q3: float = float("nan")
    vs_plain: float = float("nan")
    vs_floor: float = float("nan")
    acc: float = float("nan")
    status: str = "ok"
    note: str = ""


@dataclass(frozen=True)
class Sizes:
    step_backbone: str
    image: int
    batch: int
    step_repeats: int
    step_warmup: int
    digits_steps: int
    backbone_steps: int
    datasets: tuple[str, ...]
    big_backbones: tuple[str, ...]
    batch_override: int | None
    workers: int | None
    digits_runs: tuple[tuple[str, str], ...]
    backbone_options: str = "{}"
    tree_scale: int = 1
    tree_side: int = 12
    backbone_tree_scale: int = 1
    loader_backbone: str = "resnet50"
    loader_steps: int = 60
    loader_more_workers: tuple[int, ...] = (12,)  # besides the paper's num_workers
    determinism_steps: int = 200


def sizes(quick: bool) -> Sizes:
    digits_runs = (("source_only", "sum"), ("dann", "gh")) if quick else (
        *((m, "sum") for m in BASELINES), *(("dann", h) for h in HARMONIZERS))
    if quick:  # tiny models: a tiny ViT stands in for the paper backbones on 224 px images
        return Sizes("digit_cnn", 32, 4, 2, 1, 3, 2, ("office31", "digits"), ("tiny_vit",), 2,
                     0, digits_runs, "{image_size: 224, patch_size: 32}",
                     loader_backbone="tiny_vit", loader_steps=4, determinism_steps=6,
                     loader_more_workers=())
    return Sizes("resnet50", 224, 32, 20, 5, 100, 20,
                 ("office31", "office_home", "visda2017", "digits", "domainnet"),
                 PAPER_BACKBONES, None, None, digits_runs, tree_scale=16, tree_side=300,
                 backbone_tree_scale=2)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _quartiles(times_ms: list[float]) -> tuple[float, float, float]:
    if len(times_ms) < 2:
        return times_ms[0], times_ms[0], times_ms[0]
    q1, q2, q3 = statistics.quantiles(times_ms, n=4)
    return q2, q1, q3


# ----------------------------------------------------------------------------- step section
class StepBench:
    """A DANN-style model and one training step per configuration."""

    def __init__(self, s: Sizes, device: torch.device, bf16: bool) -> None:
        import ghuda.harmonize as H
        from ghuda.engine.sgd import SGD
        from ghuda.models import build_backbone
        from ghuda.models.heads import discriminator

        torch.manual_seed(0)
        self.backbone = build_backbone(s.step_backbone)
        dim = self.backbone.feature_dim
        self.classifier = nn.Linear(dim, 31)
        self.disc = discriminator(dim, hidden=1024)
        modules = nn.ModuleList([self.backbone, self.classifier, self.disc]).to(device)
        fmt = torch.channels_last if bf16 else torch.contiguous_format
        modules.to(memory_format=fmt)
        gen = torch.Generator().manual_seed(1)
        self.x = torch.randn(2 * s.batch, 3, s.image, s.image, generator=gen).to(
            device, memory_format=fmt)
        self.y = torch.randint(0, 31, (s.batch,), generator=gen).to(device)
        self.domain = torch.cat([torch.ones(s.batch), torch.zeros(s.batch)]).to(device)
        self.batch, self.device, self.bf16 = s.batch, device, bf16
        self.params = list(modules.parameters())
        self.measure = [*self.backbone.parameters(), *self.classifier.parameters()]
        self.optimizer = SGD(self.params, lr=1e-4, momentum=0.9, nesterov=True,
                             weight_decay=5e-4)
        self.harmonizers = {name: H.make(name) for name in HARMONIZERS}
        self.harmonizers["three_pass"] = H.make("gh", mode="weighted_loss")
        self.harmonizers["plain"] = H.make("sum")

    def losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        from ghuda.models.heads import reverse_gradient

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            features = self.backbone(self.x)
            cls = nn.functional.cross_entropy(self.classifier(features[:self.batch]), self.y)
            logits = self.disc(reverse_gradient(features, 1.0)).squeeze(1)
            transfer = nn.functional.binary_cross_entropy_with_logits(logits.float(),
                                                                      self.domain)
        return transfer, cls.float()

    def step(self, config: str) -> None:
        for p in self.params:
            p.grad = None
        transfer, cls = self.losses()
        if config == "floor":
            grads = [torch.autograd.grad(loss, self.params, retain_graph=k == 0,
                                         allow_unused=True)
                     for k, loss in enumerate((transfer, cls))]
            filled = [[torch.zeros_like(p) if g is None else g for g, p in zip(
                gk, self.params, strict=True)] for gk in grads]
            for p, total in zip(self.params, torch._foreach_add(*filled), strict=True):
                p.grad = total
        else:
            self.harmonizers[config].backward(transfer, cls, self.params, self.measure,
                                              with_stats=False)
        self.optimizer.step()
        _sync(self.device)


def step_section(s: Sizes, device: torch.device) -> list[Row]:
    rows = []
    for precision in ("fp32", "bf16+channels_last"):
        bench = StepBench(s, device, bf16=precision != "fp32")
        times: dict[str, list[float]] = {c: [] for c in STEP_CONFIGS}
        for r in range(s.step_warmup + s.step_repeats):
            order = STEP_CONFIGS[r % len(STEP_CONFIGS):] + STEP_CONFIGS[:r % len(STEP_CONFIGS)]
            for config in order:
                start = time.perf_counter()
                bench.step(config)
                if r >= s.step_warmup:
                    times[config].append(1e3 * (time.perf_counter() - start))
        medians = {c: _quartiles(t) for c, t in times.items()}
        for config in STEP_CONFIGS:
            med, q1, q3 = medians[config]
            rows.append(Row("step", config, precision, backbone=s.step_backbone,
                            batch=s.batch, steps=s.step_repeats, ms_per_step=med, ms_q1=q1,
                            ms_q3=q3, vs_plain=med / medians["plain"][0],
                            vs_floor=med / medians["floor"][0],
                            note=f"{s.image} px, {s.batch}+{s.batch} images"))
        del bench
    return rows


# ----------------------------------------------------------------------------- engine runs
def _engine_run(overrides: list[str], out: Path) -> dict:
    from ghuda import config
    from ghuda.engine.trainer import NonFiniteLoss, Trainer

    cfg = config.load(None, overrides)
    try:
        return Trainer(cfg, out, bar=False).run()
    except NonFiniteLoss as err:
        return {"status": "diverged", "note": str(err)}


def _row_from_metrics(row: Row, metrics: dict) -> Row:
    if metrics.get("status") == "diverged" and "cost" not in metrics:
        row.status, row.note = "diverged", metrics.get("note", "")
        return row
    row.ms_per_step = float(metrics["cost"]["step_ms_median"])
    row.acc = float(metrics["protocols"]["last"]["acc"])
    row.status = metrics.get("status", "ok")
    return row


def _device_overrides(device: torch.device, threads: int | None) -> list[str]:
    out = [f"train.device={device}"]
    if threads is not None:
        out.append(f"train.threads={threads}")
    return out


def _digits_root(data_root: Path, scratch: Path) -> Path:
    from ghuda.data import digits_mini

    if (data_root / digits_mini.NAME / "manifest.json").is_file():
        return data_root
    digits_mini.build(scratch / digits_mini.NAME, seed=digits_mini.expected()["seed"])
    return scratch


def digits_section(s: Sizes, device: torch.device, data_root: Path, scratch: Path,
                   threads: int | None) -> list[Row]:
    try:
        root = _digits_root(data_root, scratch)
    except (ImportError, FileNotFoundError) as err:
        return [Row("digits", "all", status="skipped",
                    note=f"digits-mini not under {data_root} and cannot be built here: {err}")]
    from ghuda import methods

    rows = []
    for method, harmonizer in s.digits_runs:
        needs_vit = methods.get(method).requires_backbone == "vit"  # SSRT, as the configs do
        overrides = [f"dataset.root={root}", f"method.name={method}",
                     *(["model.backbone=tiny_vit"] if needs_vit else []),
                     f"harmonizer.name={harmonizer}", f"train.steps={s.digits_steps}",
                     f"train.eval_every={s.digits_steps}", "train.checkpoint_every=0",
                     *_device_overrides(device, threads)]
        metrics = _engine_run(overrides, scratch / "runs" / f"{method}_{harmonizer}")
        rows.append(_row_from_metrics(
            Row("digits", f"{method}+{harmonizer}",
                backbone="tiny_vit" if needs_vit else "digit_cnn",
                dataset="digits_mini", steps=s.digits_steps, batch=32,
                note="engine run: median step (ms), target accuracy (%) after the run"),
            metrics))
    return rows


@cache
def _paper() -> dict:
    """configs/paper.yaml, read once."""
    return yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())


def _fixture_dataset(dataset: str, scratch: Path, s: Sizes, scale: int | None = None) -> Path:
    """Generate, archive and register a fixture tree of `dataset` (`scale`, default
    `s.tree_scale`, times the test fixture's images per class, `s.tree_side` pixels square);
    returns the data root."""
    from ghuda.data.fetch import register
    from ghuda.data.fixtures import make_archives, make_recipe, make_tree

    scale = s.tree_scale if scale is None else scale
    base = scratch / f"tree_{dataset}_x{scale}"
    if (base / "data").is_dir():  # made by an earlier section
        return base / "data"
    counts, class_counts = make_tree(dataset, base / "tree", scale, s.tree_side)
    archives = make_archives(dataset, base / "tree", base / "dl")
    recipe = make_recipe(dataset, archives, counts, class_counts, "http://127.0.0.1:9/none",
                         base / "recipe.json")
    root = base / "data"
    register(dataset, [base / "dl"], root=root, recipe_file=str(recipe), dvc=False,
             log=lambda *_: None)
    return root


def _paper_run(dataset: str, root: Path, backbone: str, method: str, s: Sizes, steps: int,
               device: torch.device, threads: int | None) -> tuple[list[str], int, int]:
    """Engine overrides for `method` on the first paper task of `dataset` (its fixture tree
    under `root`): the paper batch size and `num_workers`, no pretrained weights, lr 1e-6."""
    paper = _paper()
    spec = paper["datasets"][dataset]
    source, target = spec["tasks"][0].split("->")
    train = spec["methods"][method].get("run", {}).get("train", {})
    batch = s.batch_override or int(train.get("batch_size", 32))
    workers = s.workers if s.workers is not None else int(
        paper["run_defaults"]["train"].get("num_workers", 0))
    overrides = [f"dataset.name={dataset}", f"dataset.source={source}",
                 f"dataset.target={target}", f"dataset.root={root}",
                 f"model.backbone={backbone}", "model.pretrained=false",
                 *([f"model.options={s.backbone_options}"] if backbone == "tiny_vit" else []),
                 f"method.name={method}", f"train.batch_size={batch}", f"train.steps={steps}",
                 # a timing run: from scratch on solid-colour images the paper lr can diverge
                 # (CDAN+E did at step 12 on the H200), and the lr does not change step time
                 "train.lr=1e-6",
                 f"train.eval_every={steps}", "train.checkpoint_every=0",
                 f"train.num_workers={workers}", *_device_overrides(device, threads)]
    return overrides, batch, workers


def paper_backbones(dataset: str) -> list[str]:
    """The backbones configs/paper.yaml trains on `dataset`: the dataset's, then any that a
    method sets."""
    spec = _paper()["datasets"][dataset]
    out = [spec["run"]["model"]["backbone"]]
    for method in spec["methods"].values():
        name = ((method or {}).get("run") or {}).get("model", {}).get("backbone")
        if name and name not in out:
            out.append(name)
    return out


def backbone_section(s: Sizes, device: torch.device, scratch: Path,
                     threads: int | None) -> list[Row]:
    rows = []
    for dataset in s.datasets:
        backbones = [b for b in paper_backbones(dataset)
                     if b in s.big_backbones or dataset == "digits"]
        if dataset != "digits" and not backbones:  # --quick: a tiny stand-in
            backbones = list(s.big_backbones)
        try:
            root = _fixture_dataset(dataset, scratch, s, s.backbone_tree_scale)
        except Exception as err:  # reported in the CSV; the other datasets go on
            rows.append(Row("backbone", "source_only", dataset=dataset, status="skipped",
                            note=f"fixture tree: {type(err).__name__}: {err}"))
            continue
        for backbone in backbones:
            overrides, batch, workers = _paper_run(dataset, root, backbone, "source_only", s,
                                                   s.backbone_steps, device, threads)
            metrics = _engine_run(overrides, scratch / "runs" / f"{dataset}_{backbone}")
            rows.append(_row_from_metrics(
                Row("backbone", "source_only", dataset=dataset, backbone=backbone,
                    batch=batch, steps=s.backbone_steps,
                    note=f"generated {dataset} tree, {workers} workers, engine step "
                         "(data loading included)"), metrics))
    return rows


def _cached_batches(trainer: object) -> None:
    """Make the trainer's two streams return their first batch, pinned, at every step: the
    engine step with the input pipeline taken out (compute and host-to-device copy only)."""
    for stream in (trainer.src, trainer.tgt):  # type: ignore[attr-defined]
        x, y = stream.get(0)
        if torch.cuda.is_available():
            x, y = x.pin_memory(), y.pin_memory()
        stream.get = lambda step, x=x, y=y: (x, y)


LOADER_NOTES = {"data": "{} workers per stream, JPEG decoded per item",
                "decoded": "{} workers per stream, read from the decoded uint8 cache",
                "cached": "first batch cached in pinned memory: compute only"}


def loader_section(s: Sizes, device: torch.device, scratch: Path,
                   threads: int | None) -> list[Row]:
    """CDAN+E on the Office-31 fixture tree: the engine step with its input pipeline
    (persistent workers, pinned memory, prefetch) against the same step on cached batches."""
    from ghuda import config
    from ghuda.engine.trainer import Trainer

    root = _fixture_dataset("office31", scratch, s)
    overrides, batch, workers = _paper_run("office31", root, s.loader_backbone, "cdan", s,
                                           s.loader_steps, device, threads)
    runs = {"data": workers, "decoded": workers,
            **{f"data_w{w}": w for w in s.loader_more_workers}, "cached": 0}
    medians, status = {}, {}
    for name, n_workers in runs.items():
        cfg = config.load(None, [*overrides, f"train.num_workers={n_workers}",
                                 f"dataset.decoded_cache={str(name == 'decoded').lower()}"])
        trainer = Trainer(cfg, scratch / "runs" / f"loader_{name}", bar=False)
        trainer.setup()
        if name == "cached":
            _cached_batches(trainer)
        metrics = trainer.run()
        medians[name] = float(metrics["cost"]["step_ms_median"])
        status[name] = metrics.get("status", "ok")
    return [Row("loader", f"cdan+{name}", dataset="office31", backbone=s.loader_backbone,
                batch=batch, steps=s.loader_steps, ms_per_step=ms, status=status[name],
                vs_plain=ms / medians["cached"],
                note=f"{LOADER_NOTES.get(name, LOADER_NOTES['data']).format(runs[name])}; "
                     "vs_plain = x the cached step")
            for name, ms in medians.items()]


def _history_digest(run: Path) -> str:
    import hashlib

    return hashlib.sha256((run / "history.jsonl").read_bytes()).hexdigest()[:16]


def determinism_section(s: Sizes, device: torch.device, data_root: Path, scratch: Path,
                        threads: int | None) -> list[Row]:
    """DANN + GH on digits-mini twice with the same seed, with and without
    ``train.deterministic``: are the two histories (losses, statistics, accuracies) equal?"""
    try:
        root = _digits_root(data_root, scratch)
    except (ImportError, FileNotFoundError) as err:
        return [Row("determinism", "all", status="skipped", note=str(err))]
    rows = []
    for flag in ("false", "true"):
        runs, metrics = [], []
        for k in range(2):
            out = scratch / "runs" / f"determinism_{flag}_{k}"
            metrics.append(_engine_run(
                [f"dataset.root={root}", "method.name=dann", "harmonizer.name=gh",
                 f"train.steps={s.determinism_steps}", f"train.eval_every={s.determinism_steps}",
                 "train.checkpoint_every=0", f"train.deterministic={flag}",
                 *_device_overrides(device, threads)], out))
            runs.append(out)
        digests = [_history_digest(r) for r in runs]
        accs = [float(m["protocols"]["last"]["acc"]) for m in metrics]
        row = _row_from_metrics(Row("determinism", f"dann+gh deterministic={flag}",
                                    backbone="digit_cnn", dataset="digits_mini",
                                    steps=s.determinism_steps, batch=32), metrics[0])
        row.status = "identical" if digests[0] == digests[1] else "differ"
        row.note = (f"same seed twice: last acc {accs[0]:.2f} / {accs[1]:.2f}; history "
                    f"sha256 {digests[0]} / {digests[1]}; ms/step of the first run")
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- driver
def _meta(device: torch.device) -> dict:
    try:
        git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        git = ""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    return {"device": f"{device} ({name})", "torch": torch.__version__,
            "python": platform.python_version(), "git": git,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_csv(rows: list[Row], out: Path, meta: dict) -> None:
    """All rows so far, replacing `out` at once (nothing is written for no rows)."""
    if not rows:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    records = [{**asdict(r), **meta} for r in rows]
    partial = out.with_name(out.name + ".partial")
    with open(partial, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        for rec in records:
            writer.writerow({k: round(v, 4) if isinstance(v, float) else v
                             for k, v in rec.items()})
    partial.replace(out)


def table(rows: list[Row]) -> str:
    lines = [f"{'section':8s} {'name':22s} {'precision':18s} {'dataset':11s} {'backbone':10s} "
             f"{'ms/step':>9s} {'x plain':>7s} {'x floor':>7s} {'acc':>6s} status"]
    for r in rows:
        lines.append(f"{r.section:8s} {r.name:22s} {r.precision:18s} {r.dataset:11s} "
                     f"{r.backbone:10s} {r.ms_per_step:9.1f} {r.vs_plain:7.2f} "
                     f"{r.vs_floor:7.2f} {r.acc:6.1f} {r.status}")
    return "\n".join(lines)


def run(sections: tuple[str, ...], s: Sizes, device: torch.device, data_root: Path,
        threads: int | None, log: Callable[[str], None],
        after_section: Callable[[list[Row]], None] = lambda rows: None) -> list[Row]:
    """Run `sections` in order; `after_section` gets the rows so far after each (the driver
    writes the CSV then, so a run stopped by a time limit keeps what it measured)."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ghuda-gpu-check-") as tmp:
        scratch = Path(tmp)
        for section in sections:
            start = time.perf_counter()
            if section == "step":
                rows += step_section(s, device)
            elif section == "digits":
                rows += digits_section(s, device, data_root, scratch, threads)
            elif section == "backbone":
                rows += backbone_section(s, device, scratch, threads)
            elif section == "loader":
                rows += loader_section(s, device, scratch, threads)
            else:
                rows += determinism_section(s, device, data_root, scratch, threads)
            log(f"gpu_check: {section} done in {time.perf_counter() - start:.0f} s")
            after_section(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
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
        parser.error(f"unknown section(s) {bad}; choose from {SECTIONS}")
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
