"""The data API over digits-mini (issue 3, item 4): names, splits, tensors, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ghuda import data


def test_names_and_classes():
    names = data.datasets()
    expected = {"digits_mini": 10, "office31": 31, "office_home": 65, "visda2017": 12,
                "digits": 10, "domainnet": 345}
    assert [n for n in names if n in expected] == list(expected)  # a new dataset joins
    assert data.domains("digits-mini") == ["synth", "optdigits", "optdigits_m", "mnist"]
    for name, n in expected.items():
        assert data.num_classes(name) == n
    for name in names:  # every registered dataset, listed or not
        assert data.domains(name)
        assert len(set(data.class_names(name))) == data.num_classes(name)
    assert data.class_names("office31")[0] == "back_pack"
    assert data.class_names("visda2017")[-1] == "truck"


def test_splits_partition_the_domain(digits_mini_root):
    kw = {"root": digits_mini_root}
    full = data.load("digits_mini", "synth", "all", **kw)
    train = data.load("digits_mini", "synth", "train", **kw)
    val = data.load("digits_mini", "synth", "val", **kw)
    assert len(train) + len(val) == len(full) == 3000
    assert len(val) == 300
    x_all, _ = full.tensors
    x_tr, y_tr = train.tensors
    x_va, _ = val.tensors
    # no image of val is in train (compare exact rows)
    tr_rows = {bytes(r.numpy().tobytes()) for r in x_tr.flatten(1)}
    assert not any(bytes(r.numpy().tobytes()) in tr_rows for r in x_va.flatten(1))
    assert torch.bincount(y_tr, minlength=10).tolist() == [270] * 10
    assert x_all.dtype == torch.float32
    assert x_all.shape == (3000, 3, 32, 32)
    assert x_all.min() >= -1
    assert x_all.max() <= 1


def test_getitem_matches_tensors_and_custom_transform(digits_mini_root):
    from ghuda.data.transforms import digits

    ds = data.load("digits_mini", "optdigits_m", "val", root=digits_mini_root)
    x, y = ds[5]
    assert isinstance(y, int)
    assert torch.equal(x, ds.tensors[0][5])
    custom = data.load("digits_mini", "optdigits_m", "val", root=digits_mini_root,
                       transform=digits())
    assert torch.allclose(custom[5][0], x, atol=1e-6)
    assert custom.tensors is None  # per-item transform: nothing to batch by index


def test_uda_splits_protocol(digits_mini_root):
    t = data.uda_splits("digits_mini", "synth", "optdigits_m", root=digits_mini_root)
    assert (len(t.source_train), len(t.source_val)) == (2700, 300)
    assert len(t.target_train) == len(t.target_eval) == 1797  # transductive target
    assert t.num_classes == 10
    assert t.class_names == [str(d) for d in range(10)]
    assert torch.equal(t.target_train.tensors[1], t.target_eval.tensors[1])


def test_bad_names_are_rejected(digits_mini_root):
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'.*digits_mini"):
        data.load("mnist", "x", "all")
    with pytest.raises(ValueError, match="no domain 'svhn'; choose from synth"):
        data.load("digits_mini", "svhn", "all", root=digits_mini_root)
    with pytest.raises(ValueError, match="no split 'test'"):
        data.load("digits_mini", "synth", "test", root=digits_mini_root)
    with pytest.raises(ValueError, match="same domain"):
        data.uda_splits("digits_mini", "synth", "synth", root=digits_mini_root)


def test_missing_dataset_names_path_and_command(tmp_path, monkeypatch):
    with pytest.raises(data.DatasetNotFoundError,
                       match=r"digits_mini/manifest\.json does not exist.*ghuda data build"):
        data.load("digits_mini", "synth", "all", root=tmp_path)
    monkeypatch.setenv("GHUDA_DATA", str(tmp_path / "elsewhere"))
    assert data.data_root() == tmp_path / "elsewhere"
    with pytest.raises(data.DatasetNotFoundError, match=r"elsewhere/office31.*ghuda data fetch"):
        data.load("office31", "amazon", "all")


def test_fixed_split_is_stable_function_of_labels():
    from ghuda.data.splits import train_val_indices

    labels = np.repeat(np.arange(5), 20)
    a = train_val_indices(labels, "office31", "amazon")
    b = train_val_indices(labels, "office31", "amazon")
    c = train_val_indices(labels, "office31", "webcam")
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    assert np.bincount(labels[a[1]]).tolist() == [2] * 5


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=300))
def test_split_property_stratified_disjoint_complete(labels):
    from ghuda.data.splits import train_val_indices

    labels = np.asarray(labels)
    train, val = train_val_indices(labels, "any", "domain")
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.union1d(train, val), np.arange(labels.size))
    for c in np.unique(labels):
        n = int((labels == c).sum())
        want = min(n - 1, max(1, round(0.1 * n)))
        assert int((labels[val] == c).sum()) == want  # every class keeps a training image


def test_source_holdout_switch(digits_mini_root):
    whole = data.uda_splits("digits_mini", "synth", "optdigits_m", root=digits_mini_root,
                            source_holdout=False)
    assert len(whole.source_train) == 3000  # the whole source, as released
    assert len(whole.source_val) == 300  # still evaluated, now inside the training data


def test_train_crop_per_domain(tmp_path):
    from torchvision import transforms as T

    from ghuda.data.transforms import imagenet_train

    kinds = {type(t) for t in imagenet_train(kind="random_crop").transforms}
    assert T.RandomCrop in kinds
    assert T.RandomResizedCrop not in kinds
    with pytest.raises(ValueError, match="unknown training crop 'centre'"):
        imagenet_train(kind="centre")
