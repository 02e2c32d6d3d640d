"""det_mini: a small offline detection benchmark built from scikit-learn's handwritten digits.

Each image is a 64x64 RGB canvas with a textured, noisy background (a random base colour, a
smooth low-frequency texture and pixel noise) holding 1-3 handwritten digit glyphs
(`sklearn.datasets.load_digits`, 8x8, upscaled bilinearly to 14-30 px, drawn in a random bright
colour), placed so that their ink boxes overlap by at most 10% IoU. The ground-truth box of a
glyph is the tight box of its ink (upscaled intensity >= 0.25, pixel edges, xyxy); its label
is the digit + 1 (torchvision's convention: 0 is background, so classes 1..10).

The 1797 digit instances are split disjointly (70/10/20%) between train, val and test, so
test glyphs are handwriting never seen in training. Generation is deterministic from
`DATA_SEED` alone (independent of the run seed), in memory, in about a second; `fingerprint`
is the sha256 of every generated array.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ghuda.extensions.detection.sets import Batch, TensorSet, epoch_indices

DATA_SEED = 20240516
SIZE = 64
SPLITS = {"train": 1500, "val": 200, "test": 300}
NUM_CLASSES = 10  # digits; the detector adds background
GLYPH_PX = (14, 30)
MAX_IOU = 0.1
INK = 0.25


@dataclass(frozen=True)
class MiniData:
    """The three splits and the sha256 of their arrays."""

    train: TensorSet
    val: TensorSet
    test: TensorSet
    fingerprint: str


def _background(rng: np.random.Generator) -> np.ndarray:
    base = rng.uniform(0.0, 0.45, size=(3, 1, 1))
    coarse = torch.from_numpy(rng.normal(0.0, 0.12, size=(1, 3, 8, 8)))
    texture = F.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=False)[0]
    noise = rng.normal(0.0, 0.05, size=(3, SIZE, SIZE))
    return base + texture.numpy() + noise


def _glyph(digit: np.ndarray, side: int) -> np.ndarray:
    img = torch.from_numpy(digit / 16.0).view(1, 1, 8, 8)
    return F.interpolate(img, size=(side, side), mode="bilinear", align_corners=False)[0, 0].numpy()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def _image(rng: np.random.Generator, digits: np.ndarray, classes: np.ndarray,
           pool: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    canvas = _background(rng)
    boxes: list[np.ndarray] = []
    labels: list[int] = []
    for _ in range(int(rng.integers(1, 4))):
        k = int(rng.choice(pool))
        side = int(rng.integers(GLYPH_PX[0], GLYPH_PX[1] + 1))
        alpha = _glyph(digits[k], side)
        ys, xs = np.nonzero(alpha >= INK)
        ink = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
        for _try in range(30):
            x0, y0 = (int(v) for v in rng.integers(0, SIZE - side + 1, size=2))
            box = ink + np.array([x0, y0, x0, y0], dtype=np.float64)
            if all(_iou(box, b) <= MAX_IOU for b in boxes):
                break
        else:
            continue
        colour = rng.uniform(0.55, 1.0, size=(3, 1, 1))
        colour[int(rng.integers(3)), 0, 0] = 1.0
        region = canvas[:, y0:y0 + side, x0:x0 + side]
        a = np.clip(alpha, 0.0, 1.0)[None]
        canvas[:, y0:y0 + side, x0:x0 + side] = region * (1 - a) + colour * a
        boxes.append(box)
        labels.append(int(classes[k]) + 1)
    pixels = np.round(np.clip(canvas, 0.0, 1.0) * 255).astype(np.uint8)
    return pixels, np.asarray(boxes, dtype=np.float32), np.asarray(labels, dtype=np.int64)


def generate(seed: int = DATA_SEED, sizes: dict[str, int] | None = None) -> MiniData:
    """Build det_mini deterministically from `seed` (`sizes`: images per split)."""
    from sklearn.datasets import load_digits

    sizes = sizes or SPLITS
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    cut = np.cumsum([int(0.7 * len(order)), int(0.1 * len(order))])
    pools = dict(zip(("train", "val", "test"), np.split(order, cut), strict=True))
    digest = hashlib.sha256()
    splits = {}
    for name in ("train", "val", "test"):
        made = [_image(rng, digits.images, digits.target, pools[name])
                for _ in range(sizes[name])]
        images = np.stack([m[0] for m in made])
        digest.update(name.encode() + images.tobytes())
        for _, boxes, labels in made:
            digest.update(boxes.tobytes() + labels.tobytes())
        splits[name] = TensorSet(torch.from_numpy(images),
                                 [torch.from_numpy(m[1]) for m in made],
                                 [torch.from_numpy(m[2]) for m in made])
    return MiniData(**splits, fingerprint=digest.hexdigest())


def train_batches(data: TensorSet, batch_size: int, seed: int) -> Iterator[Batch]:
    """Training batches forever (seeded epoch permutations; no augmentation: flips and crops
    would change what a digit is)."""
    order = epoch_indices(len(data), seed)
    while True:
        pairs = [data.sample(next(order)) for _ in range(batch_size)]
        yield ([p[0] for p in pairs],
               [{"boxes": p[1]["boxes"], "labels": p[1]["labels"]} for p in pairs])
