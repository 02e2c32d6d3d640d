"""GH / GH++ for image retrieval with text feedback (issue 16): the task and its builder.

The harmonized pair of the released script (Retrieval/maincss_convharmonic.py): L1 "clean"
= the soft-triplet loss of (query image, text, target); L2 "noisy" = the same loss with the
query image replaced by its Gaussian-noised copy (eps = 0.3). Each loss recomputes the target
features (two forward passes of the target batch), draws its own triplets, and the angle is
measured on every parameter of the model. Metric: Recall@K (K in 1, 5, 10, 50, 100).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ghuda.config import ConfigError
from ghuda.extensions.base import ExtensionTask, TaskData, register
from ghuda.extensions.retrieval import css3d, css_mini
from ghuda.extensions.retrieval.defaults import EMBEDDED_DEFAULTS, PAPER_DEFAULTS
from ghuda.extensions.retrieval.losses import (
    NOISE_SPACES,
    RECALL_KS,
    TRIPLET_GRADS,
    imagenet_normalize,
    noised,
    recall_at_k,
    sample_triplets,
    soft_triplet_loss,
)
from ghuda.extensions.retrieval.model import (
    Compose,
    ImageEncoder,
    Normalization,
    SmallCNN,
    TextEncoder,
    Vocab,
    resnet18_trunk,
)
from ghuda.extensions.retrieval.sets import PAIRINGS, EvalSet, Split, queries, train_batches

DATASETS = ("css_mini", "css3d")
BACKBONES = ("small_cnn", "resnet18")

DATA_KEYS = {"name": DATASETS, "root": None}
MODEL_KEYS = {"backbone": BACKBONES, "embed_dim": None, "pretrained": (True, False)}
TASK_KEYS = {"noise_eps": None, "noise_space": NOISE_SPACES, "triplet_grad": TRIPLET_GRADS,
             "triplets_per_anchor": None, "pairing": PAIRINGS}
VAL_FRACTION, VAL_SEED = 0.05, 0


class RetrievalTask(ExtensionTask):
    """TIRG last-conv trained with the soft-triplet loss on clean and noised queries."""

    name = "retrieval"
    metrics = tuple(f"recall@{k}" for k in RECALL_KS)
    primary = "recall@1"

    def __init__(self, image: ImageEncoder, text: TextEncoder, compose: Compose, *,
                 noise_eps: float, noise_space: str, triplet_grad: str,
                 triplets_per_anchor: int) -> None:
        super().__init__()
        self.image, self.text, self.compose = image, text, compose
        self.norm = Normalization()
        self.noise_eps, self.noise_space = noise_eps, noise_space
        self.triplet_grad, self.triplets_per_anchor = triplet_grad, triplets_per_anchor

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {g: list(getattr(self, g).parameters())
                for g in ("image", "text", "compose", "norm")}

    def pair(self) -> tuple[str, str, tuple[str, ...]]:
        return "clean", "noisy", tuple(self.param_groups())

    def query_features(self, images: Tensor, texts: list[str]) -> Tensor:
        """compose(normalised source images, texts): pooled and projected by fc."""
        return self.image.head(self.compose(self.image.trunk(images), self.text(texts)))

    def _device(self) -> torch.device:
        return self.norm.scale.device

    def _triplet(self, images: Tensor, texts: list[str], targets: Tensor,
                 generator: torch.Generator) -> Tensor:
        query = self.norm(self.query_features(images, texts))
        target = self.norm(self.image(imagenet_normalize(targets)))
        triplets = sample_triplets(len(texts), self.triplets_per_anchor, generator)
        return soft_triplet_loss(query, target, triplets, self.triplet_grad)

    def losses(self, batch: dict[str, Any], generator: torch.Generator) -> dict[str, Tensor]:
        """{"clean": L1, "noisy": L2} of one batch (uint8 "source", "target"; "texts")."""
        source = batch["source"].to(self._device()).float() / 255.0
        target = batch["target"].to(self._device()).float() / 255.0
        texts = list(batch["texts"])
        clean = self._triplet(imagenet_normalize(source), texts, target, generator)
        noisy_source = noised(source, self.noise_eps, self.noise_space, generator)
        return {"clean": clean, "noisy": self._triplet(noisy_source, texts, target, generator)}

    @torch.no_grad()
    def evaluate(self, data: EvalSet, chunk: int = 256) -> dict[str, float]:
        """Recall@K (percent) of every query against the whole gallery, its source excluded."""
        device = self._device()

        def pixels(ids: list[int]) -> Tensor:
            return imagenet_normalize(data.gallery.get(ids).to(device).float() / 255.0)

        gallery = torch.cat([self.image(pixels(list(range(s, min(s + chunk, len(data.gallery))))))
                             for s in range(0, len(data.gallery), chunk)])
        query = torch.cat([self.query_features(pixels(data.sources[s:s + chunk]),
                                               data.texts[s:s + chunk])
                           for s in range(0, len(data), chunk)])
        recall = recall_at_k(query, gallery, data.captions, data.targets, data.sources)
        return {f"recall@{k}": v for k, v in recall.items()}


def _section(config: Mapping[str, Any], section: str, allowed: dict[str, Any],
             defaults: Mapping[str, Any]) -> dict[str, Any]:
    raw = config.get(section) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{section}: expected a mapping, got {type(raw).__name__}")
    for key, value in raw.items():
        if key not in allowed:
            raise ConfigError(f"{section}.{key}: unknown key; allowed keys: "
                              f"{', '.join(sorted(allowed))}")
        choices = allowed[key]
        if choices is not None and (value not in choices or isinstance(value, bool)
                                    != isinstance(choices[0], bool)):
            raise ConfigError(f"{section}.{key}: {value!r} is not allowed; allowed values: "
                              f"{', '.join(map(str, choices))}")
    return {**defaults, **raw}


def _check(ok: bool, key: str, value: Any, what: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {value!r} {what}")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _splits(name: str, root: str | Path) -> tuple[Split, list, EvalSet, EvalSet, str]:
    """(train split, training mods, val set, test set, describe) of dataset `name`."""
    if name == "css_mini":
        splits, fingerprint = css_mini.build()
        train, val, test = splits["train"], splits["val"], splits["test"]
        describe = (f"css_mini (data seed {css_mini.DATA_SEED}, sha256 {fingerprint}): "
                    f"train {len(train.images)} images / {train.pairs} pairs, val {val.pairs} "
                    f"queries / {len(val.images)} gallery, test {test.pairs} queries / "
                    f"{len(test.images)} gallery")
        return train, train.mods, queries(val), queries(test), describe
    splits = css3d.load(root)
    train, test = splits["train"], splits["test"]
    order = np.random.default_rng(VAL_SEED).permutation(len(train.mods))
    held = set(order[:max(1, round(VAL_FRACTION * len(train.mods)))].tolist())
    val_mods = [m for i, m in enumerate(train.mods) if i in held]
    mods = [m for i, m in enumerate(train.mods) if i not in held]
    val = queries(train, val_mods)
    describe = (f"css3d ({css3d.dataset_dir(root)}): train {len(train.images)} images / "
                f"{sum(len(m.sources) for m in mods)} pairs, val {len(val)} queries (held-out "
                f"train mods) / {len(train.images)} gallery, test {test.pairs} queries / "
                f"{len(test.images)} gallery")
    return train, mods, val, queries(test), describe


@register("retrieval")
def build(config: Mapping[str, Any]) -> tuple[RetrievalTask, TaskData]:
    """The retrieval task and its data from a run config (reads data, model, task,
    train.batch_size and seed; defaults: EMBEDDED_DEFAULTS for css_mini, PAPER_DEFAULTS for
    css3d). Bad keys or values raise ConfigError naming the key and the allowed values."""
    data = _section(config, "data", DATA_KEYS, EMBEDDED_DEFAULTS["data"])
    defaults = EMBEDDED_DEFAULTS if data["name"] == "css_mini" else PAPER_DEFAULTS
    model = _section(config, "model", MODEL_KEYS, defaults["model"])
    task = _section(config, "task", TASK_KEYS, defaults["task"])
    _check(isinstance(data["root"], str | Path), "data.root", data["root"], "must be a path")
    _check(_positive_int(model["embed_dim"]), "model.embed_dim", model["embed_dim"],
           "must be a positive integer")
    eps = task["noise_eps"]
    _check(isinstance(eps, int | float) and not isinstance(eps, bool) and eps >= 0,
           "task.noise_eps", eps, "must be a non-negative number")
    _check(_positive_int(task["triplets_per_anchor"]), "task.triplets_per_anchor",
           task["triplets_per_anchor"], "must be a positive integer")
    batch_size = (config.get("train") or {}).get("batch_size", defaults["train"]["batch_size"])
    _check(_positive_int(batch_size) and batch_size >= 2, "train.batch_size", batch_size,
           "must be an integer >= 2 (the soft-triplet loss needs negatives)")
    seed = config.get("seed", 0)
    _check(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", seed,
           "must be a non-negative integer")

    train, mods, val, test, describe = _splits(data["name"], data["root"])
    dim = model["embed_dim"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trunk = (SmallCNN() if model["backbone"] == "small_cnn"
                 else resnet18_trunk(model["pretrained"]))
        module = RetrievalTask(ImageEncoder(trunk, dim),
                               TextEncoder(Vocab([m.text for m in mods]), dim),
                               Compose(trunk.channels, dim), noise_eps=float(eps),
                               noise_space=task["noise_space"],
                               triplet_grad=task["triplet_grad"],
                               triplets_per_anchor=task["triplets_per_anchor"])

    def batches(run_seed: int) -> Iterator[dict[str, Any]]:
        return train_batches(train, mods, batch_size, run_seed, task["pairing"])

    describe += (f"; model {model['backbone']} (pretrained {model['pretrained']}), embed "
                 f"{dim}, vocab {len(module.text.vocab)}")
    return module, TaskData(batches=batches, val=val, test=test, describe=describe)


def fetch(dataset: str, root: str | Path = "data", url: str | None = None) -> Path:
    """Download and register a paper dataset of this task ("css3d"; css_mini is generated in
    memory and needs no fetch). `url`: CSS.zip's URL (a mirror; test_queries.txt is read
    from the same folder)."""
    if dataset != "css3d":
        raise ValueError(f"{dataset!r}: only css3d is fetched (css_mini is generated in "
                         "memory)")
    return css3d.fetch(root, url=url)
