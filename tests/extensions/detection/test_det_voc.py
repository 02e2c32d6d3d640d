"""PASCAL VOC: annotation parsing, fetch over 127.0.0.1, verification, loading, batches."""

from __future__ import annotations

import json
import socket

import pytest
import torch
from det_fixtures import COUNTS, OBJECTS, annotation_xml, make_archives, serve

from ghuda.data.fetch import FetchError, VerifyError
from ghuda.data.paths import DatasetNotFoundError
from ghuda.extensions.detection import voc
from ghuda.extensions.detection.task import build

QUIET = {"log": lambda *_: None, "timeout": 5.0}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    www = tmp_path_factory.mktemp("www")
    archives = make_archives(www)
    with serve(www) as url:
        yield url, archives


@pytest.fixture(scope="module")
def fetched(served, tmp_path_factory):
    url, archives = served
    root = tmp_path_factory.mktemp("data")
    voc.fetch(root, url, archives=archives, counts=COUNTS, **QUIET)
    return root


def _leftovers(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.endswith(".part") or p.name.startswith(".voc.partial-"))


def test_parse_annotation(tmp_path):
    objects = [("chair", 3, 4, 20, 25, 0), ("dog", 10, 2, 38, 28, 1)]
    path = tmp_path / "a.xml"
    path.write_text(annotation_xml("x", objects))
    t = voc.parse_annotation(path)
    assert t["boxes"].tolist() == [[2, 3, 20, 25], [9, 1, 38, 28]]
    assert t["labels"].tolist() == [voc.CLASSES.index("chair") + 1, voc.CLASSES.index("dog") + 1]
    assert t["difficult"].tolist() == [False, True]
    path.write_text(annotation_xml("x", [("unicorn", 1, 1, 5, 5, 0)]))
    with pytest.raises(ValueError, match="unicorn"):
        voc.parse_annotation(path)


def test_classes_and_documented_archives():
    assert len(voc.CLASSES) == 20
    assert voc.CLASSES[0] == "aeroplane"
    assert voc.CLASSES[-1] == "tvmonitor"
    assert voc.COUNTS == {"VOC2007/trainval": 5011, "VOC2007/test": 4952,
                          "VOC2012/trainval": 11540}
    for a in voc.ARCHIVES:
        assert a.urls[0].startswith("http://host.robots.ox.ac.uk/pascal/VOC/")
        assert len(a.checksum["value"]) == 32
        assert a.size > 4e8


def test_fetch_installs_verified_tree_and_loads(fetched):
    dest = fetched / "voc"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["counts"] == COUNTS
    assert [r["documented_checksum_matched"] for r in manifest["inputs"]] == [True] * 3
    assert _leftovers(fetched) == []
    assert sorted(p.name for p in (fetched / "downloads" / "voc").iterdir()) == sorted(
        a for a in ("VOCtrainval_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar",
                    "VOCtrainval_11-May-2012.tar"))
    assert voc.fetch(fetched, "http://127.0.0.1:9", **QUIET) == dest  # present: no download

    train, val, test = voc.load(fetched, val_images=2)
    assert (len(train), len(val), len(test)) == (5, 2, 2)
    image, target = test.sample(0)
    assert image.shape == (3, 30, 40)
    assert image.dtype == torch.float32
    assert 0.0 <= float(image.min()) <= float(image.max()) <= 1.0
    first = OBJECTS[("VOC2007", "test")]["000001"]
    assert target["labels"].tolist() == [voc.CLASSES.index(o[0]) + 1 for o in first]
    assert target["difficult"].tolist() == [False, True]
    held = {p for p, _ in val.items}
    assert held.isdisjoint(p for p, _ in train.items)


def test_train_batches_deterministic_and_valid(fetched):
    train, _, _ = voc.load(fetched, val_images=2)
    a = next(voc.train_batches(train, 4, seed=3, fill=[0.5] * 3, train_difficult=False))
    b = next(voc.train_batches(train, 4, seed=3, fill=[0.5] * 3, train_difficult=False))
    assert len(a[0]) == 4
    for (ia, ta), (ib, tb) in zip(zip(*a, strict=True), zip(*b, strict=True), strict=True):
        assert torch.equal(ia, ib)
        assert torch.equal(ta["boxes"], tb["boxes"])
        h, w = ia.shape[-2:]
        boxes = ta["boxes"]
        assert bool((boxes[:, 2:] > boxes[:, :2]).all())
        assert bool((boxes >= 0).all() and (boxes[:, [0, 2]] <= w).all()
                    and (boxes[:, [1, 3]] <= h).all())
        assert set(ta) == {"boxes", "labels"}


def test_builder_on_fixture(fetched):
    cfg = {"extension": "detection", "seed": 0, "data": {"name": "voc", "root": str(fetched)},
           "model": {"backbone": "small_cnn", "image_size": 64},
           "task": {"val_images": 2, "eval_batch_size": 2}, "train": {"batch_size": 2}}
    task, data = build(cfg)
    assert "5 train + 2 held-out val" in data.describe
    assert len(data.test) == 2
    task.train()
    losses = task.losses(next(data.batches(0)), torch.Generator())
    assert all(torch.isfinite(v) for v in losses.values())
    assert 0.0 <= task.evaluate(data.test)["map50"] <= 100.0


def test_missing_dataset_names_the_command(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"python -m ghuda\.extensions\.detection\.voc"):
        voc.load(tmp_path, val_images=2)


def test_offline_fetch_fails_loudly_and_leaves_nothing(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    root = tmp_path / "data"
    with pytest.raises(FetchError) as err:
        voc.fetch(root, url, **QUIET)
    msg = str(err.value)
    assert f"{url}/VOCtrainval_06-Nov-2007.tar" in msg
    assert str(root / "downloads" / "voc" / "VOCtrainval_06-Nov-2007.tar") in msg
    assert f"python -m ghuda.extensions.detection.voc --root {root}" in msg
    assert not root.exists()


def test_bad_checksum_and_bad_counts_leave_nothing_installed(served, tmp_path):
    url, archives = served
    root = tmp_path / "data"
    wrong = [archives[0].__class__(a.file, a.urls, a.size, {**a.checksum, "value": "0" * 32})
             for a in archives]
    with pytest.raises(FetchError, match="md5 checksum mismatch"):
        voc.fetch(root, url, archives=wrong, counts=COUNTS, **QUIET)
    assert not (root / "voc").exists()
    assert _leftovers(root) == []
    assert not root.exists()  # the bad download and the folders made for it are gone

    with pytest.raises(VerifyError, match="VOC2007/test: 2 image ids listed, expected 3"):
        voc.fetch(root, url, archives=archives, counts={**COUNTS, "VOC2007/test": 3}, **QUIET)
    assert not (root / "voc").exists()
    assert _leftovers(root) == []
