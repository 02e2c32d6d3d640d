"""det_mini: deterministic generation, tight boxes inside the image, labels 1..10."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ghuda.extensions.detection import mini

SMALL = {"train": 12, "val": 4, "test": 4}


@pytest.fixture(scope="module")
def full():
    return mini.generate()


def test_same_fingerprint_twice_and_seed_matters():
    a, b = mini.generate(sizes=SMALL), mini.generate(sizes=SMALL)
    assert a.fingerprint == b.fingerprint
    assert torch.equal(a.train.images, b.train.images)
    assert mini.generate(seed=1, sizes=SMALL).fingerprint != a.fingerprint


def test_full_benchmark_shape_boxes_and_labels(full):
    assert {n: len(getattr(full, n)) for n in mini.SPLITS} == mini.SPLITS
    assert len(full.fingerprint) == 64
    for split in (full.train, full.val, full.test):
        assert split.images.shape[1:] == (3, mini.SIZE, mini.SIZE)
        assert split.images.dtype == torch.uint8
        for boxes, labels in zip(split.boxes, split.labels, strict=True):
            assert 1 <= len(labels) <= 3
            assert boxes.shape == (len(labels), 4)
            assert bool(((labels >= 1) & (labels <= mini.NUM_CLASSES)).all())
            assert bool((boxes >= 0).all() and (boxes <= mini.SIZE).all())
            wh = boxes[:, 2:] - boxes[:, :2]
            assert bool((wh >= 3).all() and (wh <= mini.GLYPH_PX[1]).all())
    labels = torch.cat(full.train.labels)
    assert set(labels.tolist()) == set(range(1, 11))


def test_boxes_are_tight_around_the_ink(monkeypatch):
    """On a black background, a lone glyph's box is exactly the box of its ink pixels."""
    monkeypatch.setattr(mini, "_background",
                        lambda rng: np.zeros((3, mini.SIZE, mini.SIZE)))
    data = mini.generate(sizes={"train": 40, "val": 1, "test": 1})
    checked = 0
    for image, boxes in zip(data.train.images, data.train.boxes, strict=True):
        if len(boxes) != 1:
            continue
        ys, xs = np.nonzero(image.numpy().max(axis=0) >= round(255 * mini.INK))
        assert boxes[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        checked += 1
    assert checked >= 5


def test_train_batches_are_deterministic(full):
    a = next(mini.train_batches(full.val, 5, seed=7))
    b = next(mini.train_batches(full.val, 5, seed=7))
    c = next(mini.train_batches(full.val, 5, seed=8))
    assert all(torch.equal(x, y) for x, y in zip(a[0], b[0], strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a[0], c[0], strict=True))
    assert set(a[1][0]) == {"boxes", "labels"}
    assert float(a[0][0].max()) <= 1.0
