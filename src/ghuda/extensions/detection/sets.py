"""Detection evaluation sets and batches shared by det_mini and PASCAL VOC.

A sample is an image (float CHW tensor in 0..1) and a target dict with "boxes" (float [N, 4],
xyxy in pixels), "labels" (int64 [N], 1..C; 0 is torchvision's background) and "difficult"
(bool [N]; all False on det_mini). A training batch is ``(images, targets)``: two lists.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

Target = dict[str, Tensor]
Batch = tuple[list[Tensor], list[Target]]


class DetectionSet(ABC):
    """An indexable set of (image, target) samples."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of images."""

    @abstractmethod
    def sample(self, index: int) -> tuple[Tensor, Target]:
        """Image `index` (float CHW in 0..1) and its target."""

    def chunks(self, batch_size: int) -> Iterator[Batch]:
        """The whole set in order, `batch_size` images at a time (evaluation)."""
        for start in range(0, len(self), batch_size):
            pairs = [self.sample(i) for i in range(start, min(start + batch_size, len(self)))]
            yield [p[0] for p in pairs], [p[1] for p in pairs]


class TensorSet(DetectionSet):
    """Images held in memory as one uint8 tensor [N, 3, H, W] with per-image targets."""

    def __init__(self, images: Tensor, boxes: list[Tensor], labels: list[Tensor]) -> None:
        self.images, self.boxes, self.labels = images, boxes, labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def sample(self, index: int) -> tuple[Tensor, Target]:
        return self.images[index].float() / 255.0, {
            "boxes": self.boxes[index], "labels": self.labels[index],
            "difficult": torch.zeros(len(self.labels[index]), dtype=torch.bool)}


def epoch_indices(n: int, seed: int) -> Iterator[int]:
    """Sample indices forever: a fresh seeded permutation of range(n) per epoch."""
    rng = np.random.default_rng(seed)
    while True:
        yield from rng.permutation(n).tolist()
