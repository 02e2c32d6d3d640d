"""GH / GH++ for object detection (issue 16): the harmonized pair of an SSD detector.

The paper extends GH to detection on PASCAL VOC with DSSD (ResNet-50); the authors' released
Detection/ folder holds the detector but no GH block. The harmonized pair here is the
detector's two multibox losses (torchvision's SSD): L1 = "classification" (cross-entropy with
3:1 hard negative mining over the positive anchors' count) and L2 = "box_regression" (smooth-L1
on the positive anchors' encoded offsets, same normalisation). The angle is measured on the
shared parameters (the backbone, including SSD's extra layers); the classification and box
heads each get the harmonizer's w1*g1 + w2*g2 of their own gradients.

Datasets: ``det_mini`` (embedded, offline, CPU: `mini`) and ``voc`` (07+12 trainval -> 07 test:
`voc`). mAP@0.5 through torchmetrics (`metric`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection.ssd import SSD

from ghuda.config import ConfigError
from ghuda.data.fetch import MANIFEST
from ghuda.extensions.base import ExtensionTask, TaskData, register
from ghuda.extensions.detection import mini, voc
from ghuda.extensions.detection.defaults import EMBEDDED_DEFAULTS, PAPER_DEFAULTS
from ghuda.extensions.detection.metric import Map50
from ghuda.extensions.detection.model import (
    BACKBONES,
    IMAGENET_MEAN,
    MIN_IMAGE_SIZE,
    build_ssd,
)
from ghuda.extensions.detection.sets import Batch, DetectionSet

DATASETS = ("det_mini", "voc")

_DEFAULTS = {"det_mini": EMBEDDED_DEFAULTS, "voc": PAPER_DEFAULTS}
_TASK_KEYS = {"det_mini": ("eval_batch_size",),
              "voc": ("eval_batch_size", "train_difficult", "val_images")}


class DetectionTask(ExtensionTask):
    """An SSD detector whose classification and box-regression losses are harmonized."""

    name = "detection"
    metrics = ("map50",)
    primary = "map50"

    def __init__(self, model: SSD, eval_batch_size: int) -> None:
        super().__init__()
        self.model = model
        self.eval_batch_size = eval_batch_size

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """backbone (with SSD's extra layers), cls_head, box_head."""
        parts = {"backbone": self.model.backbone,
                 "cls_head": self.model.head.classification_head,
                 "box_head": self.model.head.regression_head}
        return {g: [p for p in m.parameters() if p.requires_grad] for g, m in parts.items()}

    def pair(self) -> tuple[str, str, tuple[str, ...]]:
        """L1 = classification, L2 = box_regression, measured on the backbone."""
        return "classification", "box_regression", ("backbone",)

    def losses(self, batch: Batch, generator: torch.Generator) -> dict[str, Tensor]:
        """SSD's multibox losses of one batch (train mode; no noise is drawn)."""
        if not self.model.training:
            raise RuntimeError("DetectionTask.losses needs train mode (call task.train())")
        device = next(self.parameters()).device
        images, targets = batch
        out = self.model([im.to(device) for im in images],
                         [{k: v.to(device) for k, v in t.items()} for t in targets])
        return {"classification": out["classification"], "box_regression": out["bbox_regression"]}

    def evaluate(self, data: DetectionSet) -> dict[str, float]:
        """mAP@0.5 (percent) over `data`, `eval_batch_size` images at a time."""
        device = next(self.parameters()).device
        was_training = self.training
        self.eval()
        metric = Map50(self.model.detections_per_img)
        with torch.no_grad():
            for images, targets in data.chunks(self.eval_batch_size):
                metric.update(self.model([im.to(device) for im in images]), targets)
        self.train(was_training)
        return {"map50": metric.compute()}


def _section(config: dict[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    section = config.get(key) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{key}: expected a mapping, got {section!r}")
    for k in section:
        if k not in allowed:
            raise ConfigError(f"{key}.{k}: unknown key; allowed keys: {', '.join(allowed)}")
    return section


def _typed(key: str, value: Any, kind: type, minimum: int | None = None) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {kind.__name__}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}: must be >= {minimum}, got {value!r}")
    return value


@register("detection")
def build(config: dict[str, Any]) -> tuple[DetectionTask, TaskData]:
    """The detection task and its data from a run config (reads data, model, task,
    train.batch_size and seed)."""
    data_cfg = _section(config, "data", ("name", "root"))
    name = data_cfg.get("name", "det_mini")
    if name not in DATASETS:
        raise ConfigError(f"data.name: unknown value {name!r}; allowed values: "
                          f"{', '.join(DATASETS)}")
    root = _typed("data.root", data_cfg.get("root", "data"), str)
    defaults = _DEFAULTS[name]
    given = _section(config, "model", ("backbone", "pretrained", "image_size"))
    model_cfg = {**defaults["model"], **given}
    task_cfg = {**defaults["task"], **_section(config, "task", _TASK_KEYS[name])}
    backbone = model_cfg["backbone"]
    if backbone not in BACKBONES:
        raise ConfigError(f"model.backbone: unknown value {backbone!r}; allowed values: "
                          f"{', '.join(BACKBONES)}")
    # pretrained defaults to the backbone's own default (ImageNet weights for resnet50 only)
    pretrained = _typed("model.pretrained",
                        given.get("pretrained", backbone == "resnet50"), bool)
    size = _typed("model.image_size", model_cfg["image_size"], int, MIN_IMAGE_SIZE[backbone])
    eval_bs = _typed("task.eval_batch_size", task_cfg["eval_batch_size"], int, 1)
    train = config.get("train") or {}
    batch_size = _typed("train.batch_size",
                        train.get("batch_size", defaults["train"]["batch_size"]), int, 1)
    seed = _typed("seed", config.get("seed", 0), int)
    if backbone == "small_cnn" and pretrained:
        raise ConfigError("model.pretrained: small_cnn has no pre-trained weights; allowed "
                          "values: false")
    num_classes = mini.NUM_CLASSES if name == "det_mini" else len(voc.CLASSES)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_ssd(backbone, num_classes, size, pretrained)
    task = DetectionTask(model, eval_bs)
    if name == "det_mini":
        d = mini.generate()
        data = TaskData(
            batches=lambda s: mini.train_batches(d.train, batch_size, s), val=d.val,
            test=d.test,
            describe=f"det_mini: {len(d.train)}/{len(d.val)}/{len(d.test)} train/val/test "
                     f"images {mini.SIZE}px, {mini.NUM_CLASSES} digit classes (sklearn digits), "
                     f"data seed {mini.DATA_SEED}, sha256 {d.fingerprint}")
        return task, data
    train_difficult = _typed("task.train_difficult", task_cfg["train_difficult"], bool)
    val_images = _typed("task.val_images", task_cfg["val_images"], int, 1)
    train_set, val_set, test_set = voc.load(root, val_images)
    digest = hashlib.sha256((Path(root) / voc.NAME / MANIFEST).read_bytes()).hexdigest()
    data = TaskData(
        batches=lambda s: voc.train_batches(train_set, batch_size, s, IMAGENET_MEAN,
                                            train_difficult),
        val=val_set, test=test_set,
        describe=f"voc: 07+12 trainval {len(train_set)} train + {len(val_set)} held-out val, "
                 f"07 test {len(test_set)}, 20 classes; manifest sha256 {digest}")
    return task, data


def fetch(dataset: str, root: str | Path, url: str | None = None) -> Path:
    """Fetch a paper dataset into `root` ("voc"; det_mini is generated in memory)."""
    if dataset != "voc":
        raise ConfigError(f"data.name: {dataset!r} cannot be fetched; allowed values: voc "
                          "(det_mini is generated in memory)")
    return voc.fetch(root, url)
