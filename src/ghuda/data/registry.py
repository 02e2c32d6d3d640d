"""The datasets ghuda knows: names, domains, class order, splits (REFERENCE section 3).

Each dataset lives in `<data root>/<name>/` and has a backend function
`read(root: Path, domain: str, part: str) -> Part`, where `part` is "all" or, for datasets with
an official train/test split, "train" / "test". Class order is fixed in `classes/<file>.txt`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from ghuda.data.paths import canonical_name

CLASSES_DIR = Path(__file__).with_name("classes")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    domains: tuple[str, ...]
    classes_file: str
    backend: str  # "module:function", function(root, domain, part) -> Part
    official_test: bool  # the dataset ships train/test splits per domain (evaluate on "test")
    digit_like: bool  # 32x32 digits: default transform scales to [-1, 1]
    obtain: str  # the one command that builds or fetches it ({dir}: the dataset directory)


@dataclass
class Part:
    """One domain's images of one official part, before the train/val split is applied.

    Either `images` (uint8 N x H x W x 3, in memory) or `samples` ((relpath, label) pairs under
    `base`) is set. `val_indices`, when given, is the recorded source validation split.
    """

    labels: np.ndarray
    images: np.ndarray | None = None
    samples: list[tuple[str, int]] | None = None
    base: Path | None = None
    val_indices: np.ndarray | None = field(default=None)


def _fetch(name: str) -> str:
    return f"ghuda data fetch {name} --dest {{dir}}"


SPECS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("digits_mini", "digits-mini (embedded)",
                ("synth", "optdigits", "optdigits_m", "mnist"), "digits.txt",
                "ghuda.data.digits_mini:read", False, True,
                "ghuda data build digits-mini --out {dir}   (`dvc repro` builds data/)"),
    DatasetSpec("office31", "Office-31", ("amazon", "dslr", "webcam"), "office31.txt",
                "ghuda.data.folders:read_office31", False, False, _fetch("office31")),
    DatasetSpec("office_home", "Office-Home", ("Art", "Clipart", "Product", "Real_World"),
                "office_home.txt", "ghuda.data.folders:read_office_home", False, False,
                _fetch("office_home")),
    DatasetSpec("visda2017", "VisDA-2017", ("synthetic", "real"), "visda2017.txt",
                "ghuda.data.folders:read_visda2017", False, False, _fetch("visda2017")),
    DatasetSpec("digits", "Digits (MNIST, USPS, SVHN)", ("mnist", "usps", "svhn"), "digits.txt",
                "ghuda.data.digits_real:read_digits", True, True, _fetch("digits")),
    DatasetSpec("domainnet", "DomainNet", ("clipart", "infograph", "painting", "quickdraw",
                                           "real", "sketch"), "domainnet.txt",
                "ghuda.data.folders:read_domainnet", True, False, _fetch("domainnet")),
)}


def spec(dataset: str) -> DatasetSpec:
    """The spec of `dataset` ('-' and '_' interchangeable); ValueError lists the known names."""
    name = canonical_name(dataset)
    if name not in SPECS:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {', '.join(SPECS)}")
    return SPECS[name]


def check_domain(s: DatasetSpec, domain: str) -> str:
    if domain not in s.domains:
        raise ValueError(f"{s.name} has no domain {domain!r}; choose from {', '.join(s.domains)}")
    return domain


def splits(s: DatasetSpec) -> tuple[str, ...]:
    """Splits `load` accepts: train/val (fixed source split), all, and, where the dataset has
    an official train/test split, trainval (the whole official train) and test."""
    return ("train", "val", "all", "trainval", "test") if s.official_test else (
        "train", "val", "all")


@cache
def class_names(dataset: str) -> tuple[str, ...]:
    """Class names in label order, read from the repository's fixed class list."""
    s = spec(dataset)
    names = tuple(ln.strip() for ln in (CLASSES_DIR / s.classes_file).read_text().splitlines()
                  if ln.strip())
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate class names in {CLASSES_DIR / s.classes_file}")
    return names


def reader(s: DatasetSpec) -> Callable[[Path, str, str], Part]:
    """The dataset's `read(root, domain, part) -> Part` (imported on first use)."""
    module, func = s.backend.split(":")
    return getattr(importlib.import_module(module), func)
