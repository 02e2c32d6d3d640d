"""The fixed source train/validation split (90/10, stratified by class, seeded)."""

from __future__ import annotations

import zlib

import numpy as np

VAL_FRACTION = 0.1


def stratified_val_indices(labels: np.ndarray, rng: np.random.Generator,
                           val_fraction: float = VAL_FRACTION) -> np.ndarray:
    """Sorted indices of a per-class `val_fraction` hold-out (rounded, at least one per class
    with two or more images)."""
    val: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = min(idx.size - 1, max(1, round(val_fraction * idx.size)))
        val.append(rng.permutation(idx)[:k])
    return np.sort(np.concatenate(val)).astype(np.int64)


def named_rng(*parts: str | int) -> np.random.Generator:
    """A generator seeded by a stable hash of `parts` (crc32; not Python's salted hash)."""
    return np.random.default_rng([zlib.crc32(str(p).encode()) for p in parts])


def train_val_indices(labels: np.ndarray, *key: str | int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) index arrays of a fixed split keyed by e.g. (dataset, domain)."""
    val = stratified_val_indices(np.asarray(labels), named_rng("source-split", *key))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, val
