"""Retrieval data in the CSS layout, shared by css_mini and CSS3D.

A split has images, one caption per image (its scene identity: str(label) on CSS3D, the
canonical content string on css_mini) and modifications: a text with parallel lists of source
and target image ids. As released: a test query is one (source, text, target caption) per mod
and per (from, to) pair; a training sample picks a random mod, then a random pair of it.

A training batch is a dict: "source" and "target" (uint8 [B, 3, H, W] tensors) and "texts"
(a list of B strings), which the loop's device move leaves intact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ghuda.data.images import open_rgb


class ImageStore(ABC):
    """Images of one split, read as uint8 [n, 3, H, W] tensors."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of images."""

    @abstractmethod
    def get(self, ids: Sequence[int]) -> Tensor:
        """Images `ids` stacked as uint8 [len(ids), 3, H, W]."""


class ArrayImages(ImageStore):
    """Images held in memory (css_mini)."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def get(self, ids: Sequence[int]) -> Tensor:
        return self.images[torch.as_tensor(ids, dtype=torch.long)]


class FileImages(ImageStore):
    """Images read from their files on each access (CSS3D's PNGs, as the release loads them:
    RGB, no resizing)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def get(self, ids: Sequence[int]) -> Tensor:
        arrays = [np.asarray(open_rgb(self.paths[int(i)])) for i in ids]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class Mod:
    """One modification text and its (from, to) image-id pairs."""

    text: str
    sources: tuple[int, ...]
    targets: tuple[int, ...]


@dataclass(frozen=True)
class Split:
    """Images, captions (scene identity per image) and modifications of one split."""

    name: str
    images: ImageStore
    captions: list[str]
    mods: list[Mod]

    @property
    def pairs(self) -> int:
        return sum(len(m.sources) for m in self.mods)


@dataclass(frozen=True)
class EvalSet:
    """Queries against a gallery: query q composes gallery image `sources[q]` with
    `texts[q]`; its target is any gallery image with caption `targets[q]`."""

    gallery: ImageStore
    captions: list[str]
    sources: list[int]
    texts: list[str]
    targets: list[str]

    def __len__(self) -> int:
        return len(self.sources)


def queries(split: Split, mods: Sequence[Mod] | None = None) -> EvalSet:
    """One query per mod (all of the split's, or `mods`) and per (from, to) pair; the gallery
    is every image of the split."""
    sources, texts, targets = [], [], []
    for mod in split.mods if mods is None else mods:
        for f, t in zip(mod.sources, mod.targets, strict=True):
            sources.append(f)
            texts.append(mod.text)
            targets.append(split.captions[t])
    return EvalSet(split.images, split.captions, sources, texts, targets)


PAIRINGS = ("released", "independent")


def train_batches(split: Split, mods: Sequence[Mod], batch_size: int,
                  seed: int, pairing: str = "independent") -> Iterator[dict[str, Any]]:
    """Training batches forever (numpy Generator seeded by `seed`).

    ``independent``: each sample a random mod, then a random pair of it. ``released``
    (Retrieval/datasets.py 136-159): samples alternate a fresh query (random mod, random
    pair) with a second query on the SAME source image under another mod that has it as a
    source (a fresh query again when there is none), so a batch holds same-source pairs and
    the triplet negatives include the other modification of one's own source image."""
    if pairing not in PAIRINGS:
        raise ValueError(f"pairing {pairing!r}; allowed: {', '.join(PAIRINGS)}")
    rng = np.random.default_rng(seed)
    if pairing == "independent":  # the draws of ghuda's committed css_mini runs, unchanged
        while True:
            picks = [mods[i] for i in rng.integers(len(mods), size=batch_size)]
            pair = [int(rng.integers(len(m.sources))) for m in picks]
            yield {"source": split.images.get([m.sources[k] for m, k in
                                               zip(picks, pair, strict=True)]),
                   "target": split.images.get([m.targets[k] for m, k in
                                               zip(picks, pair, strict=True)]),
                   "texts": [m.text for m in picks]}
    by_source: dict[int, list[tuple[int, int]]] = {}
    for i, m in enumerate(mods):
        for k, src in enumerate(m.sources):
            by_source.setdefault(int(src), []).append((i, k))
    last: tuple[int, int] | None = None  # (mod, pair) of the pending first query
    while True:
        chosen: list[tuple[int, int]] = []
        for _ in range(batch_size):
            second = None
            if last is not None:
                src = int(mods[last[0]].sources[last[1]])
                options = [o for o in by_source.get(src, []) if o[0] != last[0]]
                if options:
                    second = options[int(rng.integers(len(options)))]
            if second is not None:
                chosen.append(second)
                last = None
            else:
                i = int(rng.integers(len(mods)))
                chosen.append((i, int(rng.integers(len(mods[i].sources)))))
                last = chosen[-1]
        picks = [(mods[i], k) for i, k in chosen]
        yield {"source": split.images.get([m.sources[k] for m, k in picks]),
               "target": split.images.get([m.targets[k] for m, k in picks]),
               "texts": [m.text for m, _ in picks]}
