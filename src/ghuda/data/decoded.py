"""A decoded, resized uint8 cache of an image-list split (``dataset.decoded_cache``; issue 13).

Every image transform of the released preprocessing (`ghuda.data.transforms`) starts with
the deterministic ``Resize((256, 256))``. The cache stores that step's output once, as uint8
N x H x W x 3 in a ``.npy`` file read through a memory map (DataLoader workers share it through
the page cache), so that training decodes no JPEG and resizes nothing. A cached item is the
very PIL image the transform's Resize would have produced, and a Resize to an image's own
size returns it unchanged, so every tensor, and so every run, is the same with and without
the cache (tests/data/test_decoded.py): a speed switch, not a fidelity deviation.

Files: ``<data root>/.decoded/<dataset>/<split label>-<key>.npy``, where the key hashes the
dataset's manifest, the resize and the split's file list (another dataset version, split or
size is another file). Built in parallel worker processes into a temporary file that is
renamed when complete, so an interrupted build leaves nothing that looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ghuda.data.datasets import ImageListDataset, Transform
from ghuda.data.images import open_rgb

CACHE_DIR = ".decoded"
MAX_BYTES = 16 * 2**30  # VisDA-2017 / DomainNet at 256 px would need 55 / 118 GB: refused


def leading_resize(transform: Transform) -> tuple[int, int] | None:
    """(height, width) of the fixed ``Resize`` that `transform` starts with, else None."""
    from torchvision import transforms as T

    steps = getattr(transform, "transforms", None)
    if not steps or not isinstance(steps[0], T.Resize):
        return None
    size = steps[0].size
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    return None


class _Decode(Dataset):
    """Item i: the split's image i after the transform's leading Resize, as uint8 H x W x 3."""

    def __init__(self, dataset: ImageListDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> np.ndarray:
        rel, _ = self.dataset.samples[i]
        resize = self.dataset.transform.transforms[0]  # type: ignore[attr-defined]
        return np.array(resize(open_rgb(self.dataset.root / rel)), dtype=np.uint8)


class DecodedImageListDataset(ImageListDataset):
    """`ImageListDataset` whose items come from the uint8 cache file `cache_file`."""

    def __init__(self, dataset: ImageListDataset, cache_file: Path) -> None:
        super().__init__(dataset.root, dataset.samples, dataset.class_names, dataset.transform,
                         dataset.name)
        self.cache_file = Path(cache_file)
        self._images: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:  # workers open their own memory map
        return {**self.__dict__, "_images": None}

    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(self.cache_file, mmap_mode="r")
        return self._images

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        return self.transform(Image.fromarray(np.asarray(self.images()[i]))), \
            self.samples[i][1]


def cache_file(dataset: ImageListDataset, cache_root: Path, version: str,
               size: tuple[int, int]) -> Path:
    """Where `dataset`'s cache lives under `cache_root` (module docstring)."""
    key = hashlib.sha256(json.dumps([version, list(size), dataset.samples]).encode()).hexdigest()
    label = dataset.name.replace("/", "_") or "split"
    return cache_root / f"{label}-{key[:16]}.npy"


def decoded(dataset: ImageListDataset, cache_root: Path, version: str, *,
            workers: int = min(8, os.cpu_count() or 1),
            max_bytes: int = MAX_BYTES) -> DecodedImageListDataset:
    """`dataset` read from its uint8 cache, built first when absent (module docstring).

    Raises ValueError when the transform does not start with a fixed Resize (nothing to cache
    exactly) or when the cache would exceed `max_bytes`."""
    size = leading_resize(dataset.transform)
    if size is None:
        raise ValueError(f"dataset.decoded_cache: the transform of {dataset.name or 'a split'} "
                         "does not start with a fixed Resize((h, w)); nothing can be cached "
                         "exactly (set dataset.decoded_cache=false)")
    path = cache_file(dataset, Path(cache_root), version, size)
    shape = (len(dataset), size[0], size[1], 3)
    if not _complete(path, shape):
        need = int(np.prod(shape))
        if need > max_bytes:
            raise ValueError(f"dataset.decoded_cache: {dataset.name} would need "
                             f"{need / 2**30:.1f} GiB at {size[0]}x{size[1]} (limit "
                             f"{max_bytes / 2**30:.0f} GiB); the cache is for small datasets "
                             "(set dataset.decoded_cache=false)")
        _build(dataset, path, shape, workers)
    return DecodedImageListDataset(dataset, path)


def _complete(path: Path, shape: tuple[int, ...]) -> bool:
    if not path.is_file():
        return False
    try:
        arr = np.load(path, mmap_mode="r")
    except (ValueError, OSError):
        return False
    return arr.shape == shape and arr.dtype == np.uint8


def _build(dataset: ImageListDataset, path: Path, shape: tuple[int, ...], workers: int) -> None:
    """Decode every image in `workers` processes into a temporary .npy, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        # its own generator: starting the loader must not draw from the global RNG (the
        # run's model initialisation would then differ between a first and a later run)
        loader = DataLoader(_Decode(dataset), batch_size=None, num_workers=workers,
                            generator=torch.Generator())
        for i, image in enumerate(loader):
            if image.shape != shape[1:]:
                raise ValueError(f"{dataset.root / dataset.samples[i][0]}: decoded to "
                                 f"{tuple(image.shape)}, expected {shape[1:]}")
            out[i] = image
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
