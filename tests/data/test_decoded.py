"""The decoded uint8 cache (ghuda.data.decoded): the same tensors as reading the files, built
once, refused where it cannot be exact or would be too large, nothing left by a failed build."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ghuda import data
from ghuda.data import decoded
from ghuda.data.fetch import register
from ghuda.data.fixtures import make_archives, make_recipe, make_tree

QUIET = {"log": lambda *_: None, "dvc": False}


@pytest.fixture
def office31(tmp_path):
    """The Office-31 fixture tree registered under tmp_path/data, every image replaced by
    noise of a random size and aspect (solid colours would hide a wrong crop or resize)."""
    counts, cc = make_tree("office31", tmp_path / "tree")
    archives = make_archives("office31", tmp_path / "tree", tmp_path / "dl")
    recipe = make_recipe("office31", archives, counts, cc, "http://127.0.0.1:9/none",
                         tmp_path / "recipe.json")
    root = tmp_path / "data"
    register("office31", archives, root=root, recipe_file=recipe, **QUIET)
    rng = np.random.default_rng(0)
    for path in sorted((root / "office31").rglob("*.jpg")):
        h, w = rng.integers(20, 90, size=2)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return root


def _items(dataset, count: int) -> list[torch.Tensor]:
    out = []
    for i in range(count):
        torch.manual_seed(i)  # the augmentation's randomness, as the engine seeds per item
        out.append(dataset[i][0])
    return out


def test_cached_items_equal_the_files(office31):
    plain = data.uda_splits("office31", "amazon", "webcam", root=office31)
    cached = data.uda_splits("office31", "amazon", "webcam", root=office31,
                             decoded_cache=True)
    for split in ("source_train", "source_val", "target_train", "target_eval"):
        a, b = getattr(plain, split), getattr(cached, split)
        assert isinstance(b, decoded.DecodedImageListDataset)
        assert torch.equal(a.labels, b.labels)
        for x, y in zip(_items(a, len(a)), _items(b, len(b)), strict=True):
            assert torch.equal(x, y), split


def test_built_once_then_reused_and_workers_read_it(office31):
    split = data.load("office31", "dslr", "all", root=office31, decoded_cache=True)
    files = sorted((office31 / decoded.CACHE_DIR / "office31").glob("*.npy"))
    assert files == [split.cache_file]
    stamp = split.cache_file.stat().st_mtime_ns
    again = data.load("office31", "dslr", "all", root=office31, decoded_cache=True)
    assert again.cache_file == split.cache_file
    assert split.cache_file.stat().st_mtime_ns == stamp
    loader = torch.utils.data.DataLoader(again, batch_size=4, num_workers=2)
    assert sum(len(y) for _, y in loader) == len(again)


def test_a_failed_build_leaves_nothing(office31, monkeypatch):
    real = decoded.open_rgb
    calls = []

    def flaky(path):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(f"disk error reading {path}")
        return real(path)

    monkeypatch.setattr(decoded, "open_rgb", flaky)
    split = data.load("office31", "dslr", "all", root=office31)
    with pytest.raises(OSError, match="disk error"):
        decoded.decoded(split, office31 / decoded.CACHE_DIR / "office31", "v1", workers=0)
    assert not list((office31 / decoded.CACHE_DIR).rglob("*.npy"))


def test_refused_when_inexact_or_too_large(office31):
    from torchvision import transforms as T

    split = data.load("office31", "dslr", "all", root=office31)
    with pytest.raises(ValueError, match="would need .* GiB"):
        decoded.decoded(split, office31 / "cache", "v1", max_bytes=1)
    split.transform = T.Compose([T.ToTensor()])
    with pytest.raises(ValueError, match="does not start with a fixed Resize"):
        decoded.decoded(split, office31 / "cache", "v1")
    assert not (office31 / "cache").exists()


def test_a_run_is_the_same_with_and_without_the_cache(office31, tmp_path):
    """Two engine steps of CDAN+E (tiny ViT) on the noise tree: identical histories."""
    import json

    from ghuda import config
    from ghuda.engine.trainer import Trainer

    def run(cached: bool) -> list[dict]:
        cfg = config.load(None, [
            "dataset.name=office31", "dataset.source=amazon", "dataset.target=webcam",
            f"dataset.root={office31}", f"dataset.decoded_cache={str(cached).lower()}",
            "model.backbone=tiny_vit", "model.options={image_size: 224, patch_size: 32}",
            "method.name=cdan", "train.batch_size=4", "train.steps=2", "train.eval_every=2",
            "train.log_every=1", "train.checkpoint_every=0", "train.device=cpu",
            "train.threads=1"])
        out = tmp_path / f"run_{cached}"
        Trainer(cfg, out, bar=False).run()
        lines = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if "time" not in k and not k.endswith("_s")}
                for r in lines]

    assert run(True) == run(False)
