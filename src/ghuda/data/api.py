"""One data API for every dataset (issue 3, item 4; REFERENCE section 3).

Splits:
- "train" / "val": the fixed, stratified 90/10 split used for a *source* domain (recorded in
  the manifest for digits-mini; a seeded function of the sorted image list otherwise). For
  datasets with an official train/test split (Digits, DomainNet) it splits the official train.
- "all": the whole domain (the transductive target; for Digits / DomainNet train + test).
- "trainval": the whole official train part, "test": the official test part (Digits,
  DomainNet only).

`uda_splits` applies the standard protocol: target_train is the target's unlabeled training
data ("all", or the whole official train, "trainval"), target_eval is "all" (transductive) or
the official "test" where the dataset has one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ghuda.data import registry
from ghuda.data.datasets import ArrayImageDataset, ImageListDataset
from ghuda.data.paths import DatasetNotFoundError, data_root
from ghuda.data.registry import DatasetSpec, Part
from ghuda.data.splits import train_val_indices
from ghuda.data.transforms import Transform

MANIFEST = "manifest.json"  # written last by every build/register: its presence = complete
Root = str | os.PathLike[str] | None


def datasets() -> list[str]:
    """Names of all known datasets."""
    return list(registry.SPECS)


def domains(dataset: str) -> list[str]:
    return list(registry.spec(dataset).domains)


def class_names(dataset: str) -> list[str]:
    return list(registry.class_names(dataset))


def num_classes(dataset: str) -> int:
    return len(registry.class_names(dataset))


def dataset_dir(dataset: str, root: Root = None) -> Path:
    """`<data root>/<name>`, whether or not it exists."""
    return data_root(root) / registry.spec(dataset).name


def require(dataset: str, root: Root = None) -> Path:
    """The dataset's directory; DatasetNotFoundError naming the path and the command if absent."""
    s = registry.spec(dataset)
    path = data_root(root) / s.name
    if not (path / MANIFEST).is_file():
        raise DatasetNotFoundError(
            f"{s.title} is not available: {path / MANIFEST} does not exist. "
            f"Get it with: {s.obtain.format(dir=path)}   (data root: {data_root(root)}; "
            "to use another: `--set dataset.root=DIR` for ghuda train, `--root DIR` for "
            "ghuda data, or the environment variable $GHUDA_DATA)")
    return path


def _read_part(s: DatasetSpec, path: Path, domain: str, split: str) -> tuple[Part, np.ndarray]:
    """The official part holding `split` and the indices of `split` inside it."""
    read = registry.reader(s)
    if split == "all" and s.official_test:
        train, test = read(path, domain, "train"), read(path, domain, "test")
        return _concat(train, test), np.arange(len(train.labels) + len(test.labels))
    part = read(path, domain, "test" if split == "test" else
                ("train" if s.official_test else "all"))
    if split in ("all", "test", "trainval"):
        return part, np.arange(len(part.labels))
    if part.val_indices is not None:
        val = part.val_indices
        train = np.setdiff1d(np.arange(len(part.labels)), val)
    else:
        train, val = train_val_indices(part.labels, s.name, domain)
    return part, (train if split == "train" else val)


def _concat(a: Part, b: Part) -> Part:
    labels = np.concatenate([a.labels, b.labels])
    if a.images is not None and b.images is not None:
        return Part(labels=labels, images=np.concatenate([a.images, b.images]))
    if a.base != b.base:
        raise ValueError(f"cannot join parts under different roots {a.base} and {b.base}")
    return Part(labels=labels, samples=[*a.samples, *b.samples], base=a.base)


def load(dataset: str, domain: str, split: str, *, root: Root = None,
         transform: Transform | None = None, decoded_cache: bool = False) -> Dataset:
    """A torch Dataset of `(float image C x H x W, int label)` for one domain and split.

    `transform` maps a PIL RGB image to a tensor; None selects the dataset's default (digits:
    3 x 32 x 32 in [-1, 1], held in memory, with `.tensors`; images: the eval transform).
    `decoded_cache` reads image files through the uint8 cache of `ghuda.data.decoded` (same
    tensors; built on first use).
    """
    s = registry.spec(dataset)
    registry.check_domain(s, domain)
    if split not in registry.splits(s):
        raise ValueError(f"{s.name} has no split {split!r}; choose from "
                         f"{', '.join(registry.splits(s))}")
    path = require(s.name, root)
    part, idx = _read_part(s, path, domain, split)
    names = registry.class_names(s.name)
    label = f"{s.name}/{domain}/{split}"
    if part.images is not None:
        return ArrayImageDataset(part.images[idx], part.labels[idx], names, transform, label)
    if transform is None:
        from ghuda.data.transforms import imagenet_eval

        transform = imagenet_eval()
    images = ImageListDataset(part.base, [part.samples[i] for i in idx], names, transform, label)
    if not decoded_cache:
        return images
    from ghuda.data import decoded

    return decoded.decoded(images, data_root(root) / decoded.CACHE_DIR / s.name,
                           data_version(s.name, root))


@dataclass
class UDASplits:
    """Everything one adaptation task needs (REFERENCE section 3: transductive protocol)."""

    source_train: Dataset
    source_val: Dataset
    target_train: Dataset
    target_eval: Dataset
    num_classes: int
    class_names: list[str]


def uda_splits(dataset: str, source: str, target: str, *, root: Root = None,
               train_transform: Transform | None = None,
               eval_transform: Transform | None = None,
               train_crop: Callable[[str], str] | None = None,
               source_holdout: bool = True, decoded_cache: bool = False) -> UDASplits:
    """Source train/val, unlabeled target train and target evaluation sets of a task.

    Image datasets without an explicit `train_transform` train with `imagenet_train` whose crop
    kind is ``train_crop(domain)`` (default RandomResizedCrop). ``source_holdout=False`` trains
    on the whole source domain, as the released code does (REFERENCE 1.5b); the validation
    split is then part of the training data and `source_val` no longer measures held-out data.
    ``decoded_cache`` reads image files through `ghuda.data.decoded` (same tensors, faster).
    """
    s = registry.spec(dataset)
    if source == target:
        raise ValueError(f"source and target are the same domain {source!r}")
    target_train_split = "trainval" if s.official_test else "all"
    target_eval_split = "test" if s.official_test else "all"

    def train_tf(domain: str) -> Transform | None:
        if train_transform is not None or s.digit_like:
            return train_transform
        from ghuda.data.transforms import imagenet_train

        return imagenet_train(kind=train_crop(domain) if train_crop else "random_resized_crop")

    source_train_split = "train" if source_holdout else target_train_split
    opts = {"root": root, "decoded_cache": decoded_cache}
    return UDASplits(
        source_train=load(s.name, source, source_train_split, transform=train_tf(source),
                          **opts),
        source_val=load(s.name, source, "val", transform=eval_transform, **opts),
        target_train=load(s.name, target, target_train_split, transform=train_tf(target),
                          **opts),
        target_eval=load(s.name, target, target_eval_split, transform=eval_transform, **opts),
        num_classes=num_classes(s.name),
        class_names=class_names(s.name),
    )


def data_version(dataset: str, root: Root = None) -> str:
    """sha256 of the dataset's manifest: changes exactly when the registered content does.

    Pipelines depend on the manifest through Snakemake's `ancient()` (so `dvc pull`, which
    rewrites timestamps, never triggers retraining) and pass this value as a rule parameter
    (so a genuinely different dataset does).
    """
    from ghuda.data.checksums import sha256_file

    return sha256_file(require(dataset, root) / MANIFEST)


def fingerprint(dataset: str, domains: Iterable[str], root: Root = None) -> dict[str, object]:
    """What a run of `domains` reads: the dataset, its manifest's sha256 and, where the
    manifest records a file and sha256 per domain (digits-mini), the sha256 of each of those
    files as they are on disk now (cached, `ghuda.data.checksums`). Image-folder datasets
    record their content in the manifest itself, so its checksum is their fingerprint."""
    from ghuda.data.checksums import cached_sha256

    path = require(dataset, root)
    entries = json.loads((path / MANIFEST).read_text()).get("domains")
    files = {}
    for domain in domains:
        entry = entries.get(domain) if isinstance(entries, dict) else None
        if isinstance(entry, dict) and {"file", "sha256"} <= set(entry):
            files[entry["file"]] = cached_sha256(path / entry["file"])
    return {"dataset": registry.spec(dataset).name, "manifest_sha256": data_version(dataset, root),
            "files": files}
