"""The two torch Datasets behind `ghuda.data.load`.

- `ArrayImageDataset`: images held in memory as one uint8 array (digits-mini, MNIST, USPS,
  SVHN). With the default transform the whole domain is pre-converted once to a float tensor
  in [-1, 1], so `__getitem__` is an index and `.tensors` hands the engine everything for
  batching by index without a DataLoader.
- `ImageListDataset`: (path, label) pairs read from disk with PIL (Office-31, Office-Home,
  VisDA-2017, DomainNet).

Both yield `(float image tensor C x H x W, int label)` and expose `labels` (int64 tensor),
`class_names` and `num_classes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ghuda.data.transforms import Transform, uint8_to_unit_range


class ArrayImageDataset(Dataset):
    """In-memory images (uint8 N x H x W x 3) with int labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                 transform: Transform | None = None, name: str = "") -> None:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"{name}: expected uint8 N x H x W x 3 images, got "
                             f"{images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{name}: {len(images)} images but {len(labels)} labels")
        self.name = name
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.raw = images
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.transform = transform
        self.images = uint8_to_unit_range(images) if transform is None else None

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.images is not None:
            return self.images[i], int(self.labels[i])
        from PIL import Image

        return self.transform(Image.fromarray(self.raw[i])), int(self.labels[i])

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(float32 N x 3 x H x W in [-1, 1], int64 N): the whole split for batching by index,
        as in `torch.utils.data.TensorDataset`; None under a custom (per-item) transform."""
        return None if self.images is None else (self.images, self.labels)


class ImageListDataset(Dataset):
    """Images read from `root / relpath` with PIL (RGB), labelled by the list."""

    tensors = None  # read per item: nothing to batch by index

    def __init__(self, root: Path, samples: Sequence[tuple[str, int]],
                 class_names: Sequence[str], transform: Transform, name: str = "") -> None:
        self.root = Path(root)
        self.samples = list(samples)
        self.name = name
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.labels = torch.as_tensor([y for _, y in self.samples], dtype=torch.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from ghuda.data.images import open_rgb

        rel, label = self.samples[i]
        return self.transform(open_rgb(self.root / rel)), label

