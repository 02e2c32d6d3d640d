"""CSS3D: the loader on a fixture tree in the real layout, fetch from 127.0.0.1 (issue 16)."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import socket
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ghuda.data.fetch import FetchError, VerifyError
from ghuda.data.paths import DatasetNotFoundError
from ghuda.extensions.retrieval import css3d
from ghuda.extensions.retrieval.sets import queries, train_batches
from ghuda.extensions.retrieval.task import build, fetch

SIDE = 36  # the small CNN's input size


def _colour(split: str, i: int) -> tuple[int, int, int]:
    return (10 * i + 5, 200 if split == "train" else 100, 7)


def make_tree(top: Path, skip_image: str | None = None) -> Path:
    """A CSS3D tree (the npy and the PNGs) under `top`/CSS; returns that folder."""
    tree = top / "CSS"
    (tree / "images").mkdir(parents=True)
    obj = {"shape": "cube", "color": "red", "size": "large", "pos": (0.1, 0.2)}
    data = {
        "train": {"objects_img": [[obj]] * 6, "labels": [0, 0, 1, 2, 3, 3],
                  "mods": [{"from": [0, 2], "to": [2, 4], "to_str": "Add red cube."},
                           {"from": [1], "to": [3], "to_str": "remove cube"},
                           {"from": [4, 5], "to": [0, 1], "to_str": "make it blue"}]},
        "test": {"objects_img": [[obj], [obj, obj], [], [obj]],
                 "mods": [{"from": [0, 1], "to": [1, 2], "to_str": "add blue sphere"},
                          {"from": [3], "to": [0], "to_str": "change cube to sphere"}]},
    }
    np.save(tree / css3d.NPY, np.array(data, dtype=object), allow_pickle=True)
    for split, raw in data.items():
        for i in range(len(raw["objects_img"])):
            name = f"css_{split}_{i:06d}.png"
            if name != skip_image:
                Image.new("RGB", (SIDE, SIDE), _colour(split, i)).save(tree / "images" / name)
    return tree


def make_downloads(top: Path, skip_image: str | None = None) -> Path:
    """CSS.zip and test_queries.txt in `top`/www."""
    tree = make_tree(top / "src", skip_image)
    www = top / "www"
    www.mkdir()
    with zipfile.ZipFile(www / "CSS.zip", "w") as zf:
        for path in sorted(tree.rglob("*")):
            zf.write(path, path.relative_to(tree.parent))
    (www / "test_queries.txt").write_text("0 add blue sphere 1\n")
    return www


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """Base URL of a 127.0.0.1 server holding CSS.zip and test_queries.txt."""
    www = make_downloads(tmp_path / "fixture")
    handler = functools.partial(_QuietHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/CSS.zip"


def test_loader_reads_the_layout(tmp_path):
    splits = css3d.read_tree(make_tree(tmp_path))
    train, test = splits["train"], splits["test"]
    assert train.captions == ["0", "0", "1", "2", "3", "3"]  # str(label)
    assert test.captions == ["0", "1", "2", "3"]  # no labels: str(index)
    assert [m.text for m in train.mods] == ["Add red cube.", "remove cube", "make it blue"]
    assert train.mods[0].sources == (0, 2)
    assert train.mods[0].targets == (2, 4)
    images = test.images.get([3, 1])
    assert images.dtype == torch.uint8
    assert images.shape == (2, 3, SIDE, SIDE)
    assert images[0, :, 0, 0].tolist() == list(_colour("test", 3))
    q = queries(test)
    assert q.sources == [0, 1, 3]
    assert q.texts == ["add blue sphere", "add blue sphere", "change cube to sphere"]
    assert q.targets == ["1", "2", "0"]
    batch = next(train_batches(train, train.mods, 5, seed=0))
    assert batch["source"].shape == (5, 3, SIDE, SIDE)
    assert len(batch["texts"]) == 5
    for k, text in enumerate(batch["texts"]):  # each sample is one (from, to) of its mod
        mod = next(m for m in train.mods if m.text == text)
        src = tuple(batch["source"][k, :, 0, 0].tolist())
        f = next(i for i in mod.sources if _colour("train", i) == src)
        t = mod.targets[mod.sources.index(f)]
        assert tuple(batch["target"][k, :, 0, 0].tolist()) == _colour("train", t)


def test_load_missing_names_the_fetch_command(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="ghuda extension fetch css3d --root"):
        css3d.load(tmp_path)


def test_fetch_from_local_server_then_train_and_evaluate(tmp_path, served):
    root = tmp_path / "data"
    dest = fetch("css3d", root, url=f"{served}/CSS.zip")
    assert dest == root / "css3d"
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["counts"] == {"train": {"images": 6, "mods": 3, "queries": 5},
                                  "test": {"images": 4, "mods": 2, "queries": 3}}
    assert [r["file"] for r in manifest["inputs"]] == ["CSS.zip", "test_queries.txt"]
    assert all(r["documented_size"] is None and r["documented_size_reason"]
               and len(r["sha256"]) == 64 for r in manifest["inputs"])
    assert (dest / "test_queries.txt").is_file()
    assert (dest / css3d.NPY).is_file()
    assert not list(root.glob(".css3d.partial-*"))
    assert (root / "downloads" / "css3d" / "CSS.zip").is_file()
    assert fetch("css3d", root, url="http://127.0.0.1:9/unused") == dest  # already there

    task, data = build({"extension": "retrieval", "seed": 0,
                        "data": {"name": "css3d", "root": str(root)},
                        "model": {"backbone": "small_cnn", "embed_dim": 8,
                                  "pretrained": False},
                        "train": {"batch_size": 3}})
    assert "css3d" in data.describe
    assert len(data.test) == 3
    held = set(data.val.texts)
    assert len(held) == 1  # 5% of the 3 train mods, at least one, held out with all its pairs
    assert len(data.val) == {"Add red cube.": 2, "remove cube": 1, "make it blue": 2}[held.pop()]
    batch = next(data.batches(0))
    assert not set(batch["texts"]) & set(data.val.texts)  # held-out mods are never trained on
    losses = task.losses(batch, torch.Generator().manual_seed(0))
    assert all(torch.isfinite(v) for v in losses.values())
    task.eval()
    metrics = task.evaluate(data.test)
    assert set(metrics) == set(task.metrics)


def test_fetch_offline_names_url_folder_and_command(tmp_path, closed_port):
    root = tmp_path / "data"
    with pytest.raises(FetchError) as err:
        fetch("css3d", root, url=closed_port)
    message = str(err.value)
    assert closed_port in message
    assert str(root / "downloads" / "css3d" / "CSS.zip") in message
    assert f"ghuda extension fetch css3d --root {root}" in message
    assert not root.exists()  # nothing half-written, not even the download folders


def test_manual_download_is_installed_offline(tmp_path, closed_port):
    www = make_downloads(tmp_path / "fixture")
    folder = tmp_path / "data" / "downloads" / "css3d"
    folder.mkdir(parents=True)
    for name in css3d.FILES:
        shutil.copy(www / name, folder / name)
    dest = fetch("css3d", tmp_path / "data", url=closed_port)
    assert (dest / "manifest.json").is_file()


def test_missing_image_registers_nothing(tmp_path, served):
    www = make_downloads(tmp_path / "bad", skip_image="css_test_000002.png")
    root = tmp_path / "data"
    folder = root / "downloads" / "css3d"
    folder.mkdir(parents=True)
    for name in css3d.FILES:
        shutil.copy(www / name, folder / name)
    with pytest.raises(VerifyError, match=r"css_test_000002\.png"):
        fetch("css3d", root, url=f"{served}/CSS.zip")
    assert not (root / "css3d").exists()
    assert not list(root.glob(".css3d.partial-*"))
    assert not list(folder.glob("*.part"))
