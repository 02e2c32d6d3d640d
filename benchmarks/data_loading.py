"""Input pipeline throughput of the engine's training streams (issue 13). Run by hand:

    .venv/bin/python benchmarks/data_loading.py [--images 248] [--steps 40] [--batch 36]
        [--workers 0,2] [--model resnet18] [--size 224] [--out CSV]

A generated tree of JPEG images (300 x 300, Office-31's size class; no download) is read
through `ghuda.engine.data.BatchStream` with the released training transform (Resize 256,
random crop 224, flip), at each worker count: images per second of the data alone, and the
time per step of data + one forward/backward of the model (`--model none` skips it), next to
the model's step on a batch already in memory; each read from the JPEG files and from the
decoded uint8 cache (`dataset.decoded_cache`, `ghuda.data.decoded`: no decode, no resize).
Epochs are short (images / batch steps), as on Office-31's dslr and webcam, so the cost of
starting DataLoader workers every epoch (the engine before its persistent endless sampler)
shows up here.

Writes a table to stdout and a CSV (machine, torch version, device in every row) to
benchmarks/results/data_loading_<device>.csv.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchlib.csv_out import write_csv
from benchlib.provenance import machine_description
from benchlib.timing import sync
from PIL import Image

from ghuda.data import decoded
from ghuda.data.datasets import ImageListDataset
from ghuda.data.transforms import imagenet_train
from ghuda.engine.data import BatchStream

RESULTS = Path(__file__).resolve().parent / "results"


def make_tree(root: Path, images: int, classes: int = 31) -> list[tuple[str, int]]:
    """`images` random JPEGs under root/<class>/, Office-31's folder layout."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(images):
        label = i % classes
        rel = f"c{label:02d}/img{i:05d}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(root / rel)
        samples.append((rel, label))
    return samples


def model_step(name: str, device: torch.device) -> torch.nn.Module | None:
    if name == "none":
        return None
    import torchvision

    return getattr(torchvision.models, name)(weights=None).to(device)


def time_steps(stream: BatchStream, steps: int, model: torch.nn.Module | None,
               device: torch.device) -> float:
    """Seconds per step of `steps` iterations (after one warm-up step)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3) if model is not None else None

    def one(step: int) -> None:
        x, y = stream.get(step)
        if model is not None:
            x, y = x.to(device, non_blocking=True), y.to(device)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        sync(device)

    one(0)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        one(step)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=248)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=36)
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    model = model_step(args.model, device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        samples = make_tree(root, args.images)
        dataset = ImageListDataset(root, samples, [str(c) for c in range(31)],
                                   imagenet_train(kind="random_crop"), "bench")
        if model is not None:
            x = torch.randn(args.batch, 3, 224, 224, device=device)
            y = torch.zeros(args.batch, dtype=torch.long, device=device)
            resident = BatchStream(torch.utils.data.TensorDataset(x.cpu(), y.cpu()),
                                   args.batch, 0, 0)
            compute = time_steps(resident, args.steps, model, device)
            rows.append({"workers": "-", "what": "model only (batch in memory)",
                         "ms_per_step": compute * 1e3, "images_per_s": args.batch / compute})
        start = time.perf_counter()
        cached = decoded.decoded(dataset, root / decoded.CACHE_DIR, "bench")
        print(f"decoded cache of {len(dataset)} images built in "
              f"{time.perf_counter() - start:.1f} s")
        for workers in map(int, args.workers.split(",")):
            for source, ds in (("files", dataset), ("decoded cache", cached)):
                data = time_steps(BatchStream(ds, args.batch, 0, 0, workers), args.steps,
                                  None, device)
                rows.append({"workers": workers, "what": f"data only, {source}",
                             "ms_per_step": data * 1e3, "images_per_s": args.batch / data})
                if model is not None:
                    both = time_steps(BatchStream(ds, args.batch, 0, 0, workers), args.steps,
                                      model, device)
                    rows.append({"workers": workers,
                                 "what": f"data + {args.model} step, {source}",
                                 "ms_per_step": both * 1e3,
                                 "images_per_s": args.batch / both})
    meta = {"machine": machine_description(), "torch": torch.__version__,
            "device": str(device), "images": args.images, "batch": args.batch,
            "steps_per_epoch": args.images // args.batch}
    print(f"{'workers':>7}  {'what':<44} {'ms/step':>9} {'images/s':>9}")
    for row in rows:
        print(f"{row['workers']!s:>7}  {row['what']:<44} {row['ms_per_step']:9.1f} "
              f"{row['images_per_s']:9.1f}")
    out = args.out or RESULTS / f"data_loading_{device.type}.csv"
    write_csv(out, [*rows[0], *meta], ({**row, **meta} for row in rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
