"""Data for the engine: the four UDA splits, deterministic training batches, eval batches.

Sampling is keyed, not iterated: the order of epoch ``e`` of a stream is
``randperm(n, seed=key(seed, stream, e))`` and iteration ``i`` takes batch ``i mod (n // B)`` of
epoch ``i // (n // B)`` (last partial batch dropped, as the released loaders do). A resumed run
therefore needs only the iteration number, no pickled iterator. Datasets held as tensors
(digits-mini) are batched by indexing, with no DataLoader; other datasets are read item by
item (optionally by DataLoader workers), each item's random augmentation seeded by
``key(seed, stream, epoch, position)`` so that it too is independent of workers and resumes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

SOURCE_STREAM, TARGET_STREAM = 0, 1


def load_splits(dataset: dict[str, Any], train_crop: Callable[[str], str] | None = None) -> Any:
    """`ghuda.data.uda_splits` for the config's ``dataset`` section (a `UDASplits`).

    Default transforms: digits are in-memory tensors without augmentation; image datasets get
    the released ImageNet-style train / eval preprocessing (`ghuda.data.transforms`) with the
    method's crop per domain (`train_crop`). ``dataset.source_holdout`` keeps the source
    validation split out of training; ``dataset.decoded_cache`` reads image files through the
    uint8 cache of `ghuda.data.decoded`.
    """
    from ghuda import data

    return data.uda_splits(dataset["name"], dataset["source"], dataset["target"],
                           root=dataset["root"], train_crop=train_crop,
                           source_holdout=dataset["source_holdout"],
                           decoded_cache=dataset["decoded_cache"])


def as_tensors(dataset: Dataset) -> tuple[Tensor, Tensor] | None:
    """(images, labels) when the dataset is held in memory as tensors, else None."""
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, tuple | list) and len(tensors) >= 2 and all(
            isinstance(t, Tensor) for t in tensors[:2]):
        return tensors[0], tensors[1]
    return None


def key(*parts: int) -> int:
    """A 63-bit seed derived from integers (numpy SeedSequence: platform independent)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


class _KeyedItems(Dataset):
    """Reads ``dataset[index]`` with torch/python RNGs seeded from the item's sampling key."""

    def __init__(self, dataset: Dataset, seed: int, stream: int) -> None:
        self.dataset, self.seed, self.stream = dataset, seed, stream

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int, int]) -> Any:
        epoch, position, index = item
        k = key(self.seed, self.stream, epoch, position)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(k)
            state = random.getstate()
            random.seed(k)
            try:
                return self.dataset[index]
            finally:
                random.setstate(state)


class BatchStream:
    """Training batches of one domain, a pure function of the iteration number."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, stream: int,
                 num_workers: int = 0) -> None:
        self.n = len(dataset)  # type: ignore[arg-type]
        if self.n < batch_size:
            raise ValueError(f"train.batch_size {batch_size} exceeds the {self.n} examples of "
                             "a training split")
        self.dataset, self.batch_size, self.seed, self.stream = dataset, batch_size, seed, stream
        self.per_epoch = self.n // batch_size
        self.tensors = as_tensors(dataset)
        self.num_workers = num_workers
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.long)
        self._loader: Iterator[Any] | None = None
        self._next_step = -1

    def _order(self, epoch: int) -> Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(key(self.seed, self.stream, epoch))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def indices(self, step: int) -> Tensor:
        """Dataset indices of the batch of iteration `step`."""
        epoch, pos = divmod(step, self.per_epoch)
        return self._order(epoch)[pos * self.batch_size:(pos + 1) * self.batch_size]

    def get(self, step: int) -> tuple[Tensor, Tensor]:
        """(images, labels) of iteration `step`."""
        idx = self.indices(step)
        if self.tensors is not None:
            x, y = self.tensors
            return x.index_select(0, idx), y.index_select(0, idx)
        if self.num_workers == 0:
            items = _KeyedItems(self.dataset, self.seed, self.stream)
            return _collate([items[key_] for key_ in self.batch_items(step)])
        return self._from_workers(step)

    def batch_items(self, step: int) -> list[tuple[int, int, int]]:
        """The (epoch, position, index) keys of iteration `step`'s items (`_KeyedItems`)."""
        epoch, pos = divmod(step, self.per_epoch)
        first = pos * self.batch_size
        return [(epoch, first + j, int(i)) for j, i in enumerate(self.indices(step))]

    def _from_workers(self, step: int) -> tuple[Tensor, Tensor]:
        """Batches from DataLoader workers that live for the whole run.

        One DataLoader iterates an endless keyed batch sampler (`_EndlessBatches`) from
        `step` on, across epochs, so worker processes start once (and again only when the
        engine asks for a step out of sequence, e.g. after a resume); batches are prefetched
        and, on CUDA, pinned.
        """
        if self._loader is None or step != self._next_step:
            self._loader = iter(DataLoader(
                _KeyedItems(self.dataset, self.seed, self.stream),
                batch_sampler=_EndlessBatches(self, step), num_workers=self.num_workers,
                collate_fn=_collate, pin_memory=torch.cuda.is_available(),
                prefetch_factor=PREFETCH_BATCHES))
        self._next_step = step + 1
        return next(self._loader)


# Batches each worker prepares ahead of the training loop.
PREFETCH_BATCHES = 4


class _EndlessBatches:
    """Batch sampler of `BatchStream.batch_items` for iterations start, start + 1, ..."""

    def __init__(self, stream: BatchStream, start: int) -> None:
        self.stream, self.start = stream, start

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        step = self.start
        while True:
            yield self.stream.batch_items(step)
            step += 1


def _collate(items: list[Any]) -> tuple[Tensor, Tensor]:
    xs, ys = zip(*((it[0], it[1]) for it in items), strict=True)
    return torch.stack(list(xs)), torch.as_tensor(ys, dtype=torch.long)


def eval_batches(dataset: Dataset, batch_size: int, num_workers: int = 0
                 ) -> Iterator[tuple[Tensor, Tensor]]:
    """(images, labels) in dataset order, for evaluation."""
    tensors = as_tensors(dataset)
    if tensors is not None:
        x, y = tensors
        for start in range(0, x.shape[0], batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]
        return
    yield from DataLoader(dataset, batch_size=batch_size, shuffle=False,
                          num_workers=num_workers, collate_fn=_collate)


def subsample(dataset: Dataset, count: int, seed: int) -> list[int]:
    """A fixed random subset of at most `count` indices (features.npz)."""
    n = len(dataset)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(key(seed, 7, n))
    return sorted(torch.randperm(n, generator=g)[:count].tolist())
