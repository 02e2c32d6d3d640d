"""Paper-dataset recipes on fixture trees in each real layout (issue 3, items 2 and 5).

For every dataset: fixture archive -> `register` (checksums, extraction, count verification,
manifest) -> `ghuda.data.load` with the right label for every image. Then the bad inputs: a
corrupt image, a listed file missing, a wrong count, a checksum mismatch, each naming the file
and leaving nothing registered.
"""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pytest
import torch

from ghuda import data
from ghuda.data import registry
from ghuda.data.fetch import ChecksumError, Recipe, VerifyError, register, verify_registered
from ghuda.data.fixtures import (
    decode_class,
    digit_value,
    make_archives,
    make_recipe,
    make_tree,
)
from ghuda.data.images import CorruptImageError

PAPER = ["office31", "office_home", "visda2017", "digits", "domainnet"]
QUIET = {"log": lambda *_: None, "dvc": False}


def _setup(dataset, tmp_path, base_url="http://127.0.0.1:9/none"):
    counts, cc = make_tree(dataset, tmp_path / "tree")
    archives = make_archives(dataset, tmp_path / "tree", tmp_path / "dl")
    recipe = make_recipe(dataset, archives, counts, cc, base_url, tmp_path / "recipe.json")
    return archives, recipe, counts


@pytest.mark.parametrize("dataset", PAPER)
def test_packaged_recipes_are_complete(dataset):
    recipe = Recipe.load(dataset)
    spec = registry.spec(dataset)
    parts = ("train", "test") if spec.official_test else ("all",)
    assert set(recipe.counts) == set(spec.domains)
    for domain in spec.domains:
        assert set(recipe.counts[domain]) == set(parts)
        want = recipe.class_counts.get(domain, {})
        for part, per_class in want.items():
            assert sum(per_class) == recipe.counts[domain][part]
            assert len(per_class) == data.num_classes(dataset)
    for archive in recipe.archives:
        assert archive.urls
        assert all(u.startswith(("http://", "https://")) for u in archive.urls)
        if archive.checksum:
            assert archive.checksum["source"]
            n = {"md5": 32, "sha1": 40, "sha256": 64}[archive.checksum["algorithm"]]
            assert len(archive.checksum["value"]) == n


def test_reference_table_counts():
    """REFERENCE section 3 image counts are what the recipes verify."""
    expect = {"office31": {"amazon": 2817, "dslr": 498, "webcam": 795},
              "office_home": {"Art": 2427, "Clipart": 4365, "Product": 4439,
                              "Real_World": 4357},
              "visda2017": {"synthetic": 152397, "real": 55388}}
    for dataset, domains in expect.items():
        counts = Recipe.load(dataset).counts
        assert {d: c["all"] for d, c in counts.items()} == domains


@pytest.mark.parametrize("dataset", PAPER)
def test_fixture_layout_registers_and_loads_with_right_labels(dataset, tmp_path):
    archives, recipe, counts = _setup(dataset, tmp_path)
    dest = register(dataset, [tmp_path / "dl"], root=tmp_path / "data", recipe_file=recipe,
                    **QUIET)
    assert dest == tmp_path / "data" / registry.spec(dataset).name
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["counts"] == counts
    assert {r["file"] for r in manifest["inputs"]} == {p.name for p in archives}
    assert not list((tmp_path / "data").glob(".*partial*"))
    assert "OK" in verify_registered(dataset, tmp_path / "data", recipe)
    spec = registry.spec(dataset)
    for domain in spec.domains:
        split = "test" if spec.official_test else "all"
        ds = data.load(dataset, domain, split, root=tmp_path / "data")
        assert len(ds) == counts[domain][split]
        for i in range(len(ds)):
            x, y = ds[i]
            assert x.dtype == torch.float32
            if spec.digit_like:
                assert x.shape == (3, 32, 32)
                grey = (x.mean() + 1) * 127.5  # [-1, 1] back to 0..255
                assert abs(grey.item() - digit_value(y)) < 1.5, (domain, i, y)
            else:
                assert x.shape == (3, 224, 224)
                mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
                std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
                rgb = ((x * std + mean) * 255).mean(dim=(1, 2)).numpy()
                assert decode_class(rgb) == y, (domain, i, y, rgb)


def test_uda_splits_official_test_protocol(tmp_path):
    _setup("digits", tmp_path)
    register("digits", [tmp_path / "dl"], root=tmp_path / "data",
             recipe_file=tmp_path / "recipe.json", **QUIET)
    t = data.uda_splits("digits", "svhn", "mnist", root=tmp_path / "data")
    assert len(t.source_train) + len(t.source_val) == 10  # svhn official train
    assert len(t.target_train) == 20  # mnist official train (unlabeled use)
    assert len(t.target_eval) == 10  # mnist official test
    assert len(data.load("digits", "mnist", "all", root=tmp_path / "data")) == 30
    images, labels = t.target_eval.tensors
    assert images.shape == (10, 3, 32, 32)
    assert labels.tolist() == list(range(10))


def _retar_without(archive, member_suffix, replace_bytes=None):
    """Rewrite a tar.gz dropping (or replacing the bytes of) the first member ending so."""
    import io

    out = archive.with_name("edited-" + archive.name)
    target = None
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            if target is None and m.isfile() and m.name.endswith(member_suffix):
                target = m.name
                if replace_bytes is None:
                    continue
                m.size = len(replace_bytes)
                dst.addfile(m, io.BytesIO(replace_bytes))
                continue
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    out.replace(archive)
    return target


def _unpinned(recipe_path):
    """Drop the fixture's checksums/sizes so an edited archive reaches verification."""
    raw = json.loads(recipe_path.read_text())
    for a in raw["archives"]:
        a["checksum"], a["size"] = None, None
    recipe_path.write_text(json.dumps(raw))


def test_corrupt_image_is_named_and_nothing_registered(tmp_path):
    archives, recipe, _ = _setup("office31", tmp_path)
    bad = _retar_without(archives[0], "frame_0001.jpg", b"this is not a jpeg")
    _unpinned(recipe)
    with pytest.raises(VerifyError, match=r"frame_0001\.jpg is not a JPEG/PNG/BMP image"):
        register("office31", archives, root=tmp_path / "data", recipe_file=recipe, **QUIET)
    assert bad.endswith("frame_0001.jpg")
    assert not (tmp_path / "data" / "office31").exists()
    assert list((tmp_path / "data").iterdir()) == []  # staging folder removed too


def test_truncated_jpeg_caught_by_deep_verify_and_by_the_loader(tmp_path):
    archives, recipe, _ = _setup("office31", tmp_path)
    good = (tmp_path / "tree" / "amazon" / "images" / "bike" / "frame_0000.jpg").read_bytes()
    _retar_without(archives[0], "bike/frame_0000.jpg", good[: len(good) // 2])
    _unpinned(recipe)
    with pytest.raises(VerifyError, match=r"corrupt or unreadable image .*bike/frame_0000\.jpg"):
        register("office31", archives, root=tmp_path / "data", recipe_file=recipe, deep=True,
                 **QUIET)
    # a shallow register accepts the header; the loader then names the file
    register("office31", archives, root=tmp_path / "data", recipe_file=recipe, **QUIET)
    ds = data.load("office31", "amazon", "all", root=tmp_path / "data")
    index = next(i for i, (rel, _) in enumerate(ds.samples) if rel == "bike/frame_0000.jpg")
    with pytest.raises(CorruptImageError, match=r"bike/frame_0000\.jpg"):
        ds[index]


def test_missing_listed_file_is_named(tmp_path):
    archives, recipe, _ = _setup("visda2017", tmp_path)
    validation = next(p for p in archives if p.name == "validation.tar")
    dropped = _retar_without(validation, "truck_001.jpg")
    _unpinned(recipe)
    with pytest.raises(VerifyError, match=r"listed image .*truck/truck_001\.jpg is missing"):
        register("visda2017", archives, root=tmp_path / "data", recipe_file=recipe, **QUIET)
    assert dropped.endswith("truck_001.jpg")
    assert not (tmp_path / "data" / "visda2017").exists()


def test_wrong_count_is_named(tmp_path):
    archives, recipe, _ = _setup("office31", tmp_path)
    _retar_without(archives[0], "webcam/images/mug/frame_0000.jpg")
    _unpinned(recipe)
    with pytest.raises(VerifyError, match=r"office31/webcam/all: found 30 images under "
                                          r".*webcam/images, expected 31"):
        register("office31", archives, root=tmp_path / "data", recipe_file=recipe, **QUIET)
    assert not (tmp_path / "data" / "office31").exists()


def test_wrong_class_count_is_named(tmp_path):
    archives, recipe, _ = _setup("office31", tmp_path)
    raw = json.loads(recipe.read_text())
    raw["class_counts"]["dslr"]["all"][3] += 1  # bookcase
    raw["counts"]["dslr"]["all"] += 1
    recipe.write_text(json.dumps(raw))
    with pytest.raises(VerifyError, match=r"dslr/all: found 31 images"):
        register("office31", archives, root=tmp_path / "data", recipe_file=recipe, **QUIET)
    raw["counts"]["dslr"]["all"] -= 1
    raw["class_counts"]["dslr"]["all"][4] -= 1  # bottle, keeping the total
    recipe.write_text(json.dumps(raw))
    with pytest.raises(VerifyError, match=r"class 'bookcase' has 1 images under .*dslr/images"):
        register("office31", archives, root=tmp_path / "data", recipe_file=recipe, **QUIET)


def test_checksum_mismatch_is_named_and_nothing_registered(tmp_path):
    _, recipe, _ = _setup("domainnet", tmp_path)
    raw = json.loads(recipe.read_text())
    entry = next(a for a in raw["archives"] if a["file"] == "sketch.zip")
    entry["checksum"]["value"] = "0" * 64
    recipe.write_text(json.dumps(raw))
    with pytest.raises(ChecksumError, match=r"sketch\.zip: sha256 checksum mismatch: expected "
                                            r"0{64}, got [0-9a-f]{64}"):
        register("domainnet", [tmp_path / "dl"], root=tmp_path / "data", recipe_file=recipe,
                 **QUIET)
    assert not (tmp_path / "data" / "domainnet").exists()


def test_size_mismatch_and_wrong_label_in_list(tmp_path):
    _, recipe, _ = _setup("domainnet", tmp_path)
    raw = json.loads(recipe.read_text())
    next(a for a in raw["archives"] if a["file"] == "real_test.txt")["size"] += 1
    recipe.write_text(json.dumps(raw))
    with pytest.raises(ChecksumError, match=r"real_test\.txt: size \d+ bytes, expected \d+"):
        register("domainnet", [tmp_path / "dl"], root=tmp_path / "data", recipe_file=recipe,
                 **QUIET)
    listing = tmp_path / "dl" / "real_test.txt"
    listing.write_text(listing.read_text().replace("airplane_000_test.jpg 1",
                                                   "airplane_000_test.jpg 2"))
    _unpinned(recipe)
    with pytest.raises(VerifyError, match=r"real_test\.txt:2: label 2 does not match class "
                                          r"folder 'airplane'"):
        register("domainnet", [tmp_path / "dl"], root=tmp_path / "data", recipe_file=recipe,
                 **QUIET)


def test_corrupt_digit_file_is_named(tmp_path):
    _setup("digits", tmp_path)
    (tmp_path / "dl" / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
    _unpinned(tmp_path / "recipe.json")
    with pytest.raises(VerifyError, match=r"cannot decompress .*t10k-images-idx3-ubyte\.gz"):
        register("digits", [tmp_path / "dl"], root=tmp_path / "data",
                 recipe_file=tmp_path / "recipe.json", **QUIET)


def test_register_refuses_to_overwrite_and_unknown_inputs(tmp_path):
    _setup("office31", tmp_path)
    kw = {"root": tmp_path / "data", "recipe_file": tmp_path / "recipe.json", **QUIET}
    register("office31", [tmp_path / "dl"], **kw)
    with pytest.raises(FileExistsError, match="already registered"):
        register("office31", [tmp_path / "dl"], **kw)
    register("office31", [tmp_path / "dl"], force=True, **kw)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        register("office31", [tmp_path / "nope.tar"], force=True, **kw)


def test_class_orders_are_fixed():
    assert data.class_names("office_home")[:3] == ["Drill", "Exit_Sign", "Bottle"]
    names = data.class_names("domainnet")
    assert names.index("cello") == 66
    assert names.index("cell_phone") == 67
    assert names.index("The_Eiffel_Tower") == 308
    assert names[-1] == "zigzag"
    assert np.array_equal(np.argsort(data.class_names("office31")), np.arange(31))


def test_zip_member_escaping_the_folder_is_refused(tmp_path):
    import zipfile

    from ghuda.data.fetch import safe_extract

    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match=r"evil\.zip: member '\.\./outside\.txt' would extract"):
        safe_extract(bad, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()
    html = tmp_path / "page.tar.gz"
    html.write_text("<html>Google Drive - virus scan warning</html>")
    with pytest.raises(ValueError, match=r"page\.tar\.gz is neither a tar nor a zip"):
        safe_extract(html, tmp_path / "out")


def test_train_crops_follow_the_method_per_domain(tmp_path):
    from torchvision import transforms as T

    archives, recipe, _ = _setup("office31", tmp_path)
    register("office31", archives, root=tmp_path / "data", recipe_file=recipe, **QUIET)
    crops = {"amazon": "random_crop", "webcam": "random_resized_crop"}
    t = data.uda_splits("office31", "amazon", "webcam", root=tmp_path / "data",
                        train_crop=crops.__getitem__)
    src = {type(x) for x in t.source_train.transform.transforms}
    tgt = {type(x) for x in t.target_train.transform.transforms}
    assert T.RandomCrop in src and T.RandomResizedCrop not in src
    assert T.RandomResizedCrop in tgt
    assert t.source_train[0][0].shape == t.target_train[0][0].shape == (3, 224, 224)
