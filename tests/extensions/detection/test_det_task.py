"""The detection task: torchvision's SSD losses, parameter groups, gradients, training, the
mAP wrapper and the builder's config errors."""

from __future__ import annotations

import copy

import pytest
import torch

from ghuda.config import ConfigError
from ghuda.extensions.base import BUILDERS
from ghuda.extensions.detection import EMBEDDED_DEFAULTS, FIDELITY, PAPER_DEFAULTS
from ghuda.extensions.detection.metric import Map50
from ghuda.extensions.detection.model import build_ssd
from ghuda.extensions.detection.task import DetectionTask, build


@pytest.fixture(scope="module")
def built():
    torch.manual_seed(0)
    return build({"extension": "detection", "seed": 0, **copy.deepcopy(EMBEDDED_DEFAULTS)})


@pytest.fixture(scope="module")
def batch(built):
    return next(built[1].batches(0))


def test_registered_and_declared(built):
    task, data = built
    assert BUILDERS["detection"] is build
    assert task.name == "detection"
    assert task.metrics == ("map50",)
    assert task.primary == "map50"
    assert task.pair() == ("classification", "box_regression", ("backbone",))
    assert "sha256" in data.describe
    assert all(len(row) == 4 for row in FIDELITY)
    assert PAPER_DEFAULTS["model"]["backbone"] == "resnet50"


def test_param_groups_disjoint_and_complete(built):
    task, _ = built
    groups = task.param_groups()
    assert set(groups) == {"backbone", "cls_head", "box_head"}
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in task.parameters() if p.requires_grad}


def test_torchvision_ssd_training_keys(batch):
    model = build_ssd("small_cnn", 10, 64, False).train()
    out = model(*batch)
    assert set(out) == {"bbox_regression", "classification"}


def test_losses_finite_and_each_reaches_the_backbone(built, batch):
    task, _ = built
    task.train()
    losses = task.losses(batch, torch.Generator().manual_seed(0))
    assert set(losses) == {"classification", "box_regression"}
    groups = task.param_groups()
    for name, loss in losses.items():
        assert loss.ndim == 0
        assert torch.isfinite(loss), name
        for group in ("backbone", "cls_head" if name == "classification" else "box_head"):
            grads = torch.autograd.grad(loss, groups[group], retain_graph=True,
                                        allow_unused=True)
            assert any(g is not None and g.abs().sum() > 0 for g in grads), (name, group)
    other = torch.autograd.grad(losses["box_regression"], groups["cls_head"], allow_unused=True)
    assert all(g is None for g in other)


def test_losses_need_train_mode(built, batch):
    task, _ = built
    task.eval()
    with pytest.raises(RuntimeError, match="train mode"):
        task.losses(batch, torch.Generator())
    task.train()


def test_a_few_sgd_steps_lower_the_loss(batch):
    torch.manual_seed(0)
    task = DetectionTask(build_ssd("small_cnn", 10, 64, False), eval_batch_size=8).train()
    opt = torch.optim.SGD(task.parameters(), lr=0.01, momentum=0.9)
    images, targets = batch
    small = (images[:4], targets[:4])
    history = []
    for _ in range(8):
        losses = task.losses(small, torch.Generator())
        total = losses["classification"] + losses["box_regression"]
        history.append(total.item())
        opt.zero_grad()
        total.backward()
        opt.step()
    assert history[-1] < 0.7 * history[0]


def test_evaluate_returns_map50_in_range(built):
    task, data = built
    sub = copy.copy(data.val)
    sub.images = data.val.images[:16]
    was = task.training
    assert 0.0 <= task.evaluate(sub)["map50"] <= 100.0
    assert task.training == was


def _target(boxes, labels, difficult=None):
    boxes = torch.tensor(boxes, dtype=torch.float32)
    return {"boxes": boxes, "labels": torch.tensor(labels),
            "difficult": torch.tensor(difficult or [False] * len(labels))}


def test_map50_perfect_wrong_class_and_difficult():
    targets = [_target([[2, 2, 20, 30], [30, 10, 50, 40]], [1, 4]),
               _target([[5, 5, 25, 25]], [7])]
    perfect = [{"boxes": t["boxes"], "labels": t["labels"],
                "scores": torch.ones(len(t["labels"]))} for t in targets]
    m = Map50()
    m.update(perfect, targets)
    assert m.compute() == pytest.approx(100.0)
    wrong = [{**p, "labels": p["labels"] % 10 + 1} for p in perfect]
    m = Map50()
    m.update(wrong, targets)
    assert m.compute() == pytest.approx(0.0, abs=1e-6)
    # an undetected 'difficult' object is ignored, as in VOC
    with_difficult = [_target([[2, 2, 20, 30], [40, 40, 60, 60]], [1, 2], [False, True])]
    m = Map50()
    m.update([{"boxes": with_difficult[0]["boxes"][:1], "labels": torch.tensor([1]),
               "scores": torch.ones(1)}], with_difficult)
    assert m.compute() == pytest.approx(100.0)
    with pytest.raises(ValueError, match="undefined"):
        Map50().compute()


def test_resnet50_ssd_forward():
    torch.manual_seed(0)
    model = build_ssd("resnet50", 20, 257, pretrained=False).train()
    target = {"boxes": torch.tensor([[10.0, 20.0, 120.0, 200.0]]), "labels": torch.tensor([3])}
    with torch.no_grad():
        out = model([torch.rand(3, 200, 240)], [target])
    assert set(out) == {"bbox_regression", "classification"}
    assert all(torch.isfinite(v) for v in out.values())


@pytest.mark.parametrize(("section", "value", "match"), [
    ("data", {"name": "coco"}, r"data\.name: unknown value 'coco'; allowed values: det_mini, voc"),
    ("data", {"name": "det_mini", "split": 1}, r"data\.split: unknown key; allowed keys: name"),
    ("model", {"backbone": "vgg16"}, r"model\.backbone: unknown value 'vgg16'; allowed values"),
    ("model", {"depth": 3}, r"model\.depth: unknown key; allowed keys: backbone"),
    ("model", {"pretrained": True}, r"model\.pretrained: small_cnn has no pre-trained"),
    ("model", {"image_size": "64"}, r"model\.image_size: expected int"),
    ("model", {"backbone": "resnet50", "image_size": 256}, r"model\.image_size: must be >= 257"),
    ("task", {"val_images": 3}, r"task\.val_images: unknown key; allowed keys: eval_batch_size"),
    ("task", {"eval_batch_size": 0}, r"task\.eval_batch_size: must be >= 1"),
    ("train", {"batch_size": True}, r"train\.batch_size: expected int"),
    ("seed", "zero", r"seed: expected int"),
])
def test_builder_rejects_bad_config(section, value, match):
    cfg = {"extension": "detection", "seed": 0, "data": {"name": "det_mini"},
           "train": {"batch_size": 4}, section: value}
    with pytest.raises(ConfigError, match=match):
        build(cfg)
