"""Tiny fixture trees in each paper dataset's real layout, their archives and recipes.

Every generated image is a solid colour encoding its class index (`class_colour`), so a test
can check, after archive -> register -> load, that each image arrives with the right label.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from ghuda.data import registry
from ghuda.data.fetch import RECIPES_DIR


def class_colour(idx: int) -> tuple[int, int, int]:
    return (idx % 16) * 16 + 8, (idx // 16) * 10 + 8, 128


def decode_class(rgb_mean: np.ndarray) -> int:
    """Inverse of `class_colour` for a (3,) mean colour in 0..255."""
    return round(float(rgb_mean[0] - 8) / 16) + 16 * round(float(rgb_mean[1] - 8) / 10)


def _image(path: Path, idx: int, side: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (side, side), class_colour(idx))
    img.save(path, format="PNG" if path.suffix == ".png" else "JPEG", quality=95)


def _folder_domain(base: Path, names: tuple[str, ...], per_class: int, stem: str,
                   side: int = 12) -> list[int]:
    for idx, name in enumerate(names):
        for k in range(per_class):
            _image(base / name / f"{stem}_{k:04d}.jpg", idx, side)
    return [per_class] * len(names)


def _list_domain(base: Path, list_file: Path, prefix: str, classes: list[int],
                 names: tuple[str, ...], per_class: int, suffix: str,
                 side: int = 12) -> list[int]:
    lines, counts = [], [0] * len(names)
    for idx in classes:
        for k in range(per_class):
            rel = f"{prefix}{names[idx]}/{names[idx]}_{k:03d}{suffix}"
            _image(base / rel, idx, side)
            lines.append(f"{rel} {idx}")
            counts[idx] += 1
    list_file.parent.mkdir(parents=True, exist_ok=True)
    list_file.write_text("\n".join(lines) + "\n")
    return counts


DN_CLASSES = [0, 1, 66, 67, 308, 344]  # includes the cello/cell_phone and The_* orderings


def make_tree(dataset: str, top: Path, scale: int = 1, side: int = 12) -> tuple[dict, dict]:
    """Write a fixture tree; returns (counts, class_counts) as a recipe records them.

    `scale` multiplies every per-class count and `side` is the images' size in pixels (the
    tests use the tiny defaults; benchmarks/gpu_check.py larger trees of real-sized images).
    """
    names = registry.class_names(dataset)
    counts: dict[str, dict[str, int]] = {}
    cc: dict[str, dict[str, list[int]]] = {}

    def put(domain: str, part: str, per_class: list[int]) -> None:
        counts.setdefault(domain, {})[part] = sum(per_class)
        cc.setdefault(domain, {})[part] = per_class

    if dataset == "office31":
        for d, n in (("amazon", 2), ("dslr", 1), ("webcam", 1)):
            put(d, "all", _folder_domain(top / d / "images", names, n * scale, "frame", side))
    elif dataset == "office_home":
        root = top / "OfficeHomeDataset_10072016"
        for d in ("Art", "Clipart", "Product", "Real_World"):
            folder = root / ("Real World" if d == "Real_World" else d)
            put(d, "all", _folder_domain(folder, names, scale, "img", side))
    elif dataset == "visda2017":
        for d, folder, suffix in (("synthetic", "train", ".png"), ("real", "validation", ".jpg")):
            base = top / folder
            put(d, "all", _list_domain(base, base / "image_list.txt", "", list(range(12)),
                                       names, 2 * scale, suffix, side))
    elif dataset == "domainnet":
        for d in registry.spec("domainnet").domains:
            for part, n in (("train", 2), ("test", 1)):
                put(d, part, _list_domain(top, top / f"{d}_{part}.txt", f"{d}/", DN_CLASSES,
                                          names, n * scale, f"_{part}.jpg", side))
    elif dataset == "digits":
        for part, sizes in (("train", (20, 12, 10)), ("test", (10, 6, 5))):
            for d, n in zip(("mnist", "usps", "svhn"), sizes, strict=True):
                labels = np.arange(n * scale) % 10
                _digit_files(top, d, part, labels)
                put(d, part, np.bincount(labels, minlength=10).tolist())
    else:
        raise ValueError(dataset)
    return counts, cc


def digit_value(label: int) -> int:
    """Grey level of every pixel of a fixture digit of class `label`."""
    return 20 + 20 * int(label)


def _digit_files(top: Path, domain: str, part: str, labels: np.ndarray) -> None:
    folder = top / domain
    folder.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    if domain == "mnist":
        stem = "train" if part == "train" else "t10k"
        images = np.stack([np.full((28, 28), digit_value(y), np.uint8) for y in labels])
        header = np.array([2051, n, 28, 28], dtype=">u4").tobytes()
        (folder / f"{stem}-images-idx3-ubyte.gz").write_bytes(
            gzip.compress(header + images.tobytes(), mtime=0))
        header = np.array([2049, n], dtype=">u4").tobytes()
        (folder / f"{stem}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(header + labels.astype(np.uint8).tobytes(), mtime=0))
    elif domain == "usps":
        v = [digit_value(y) / 127.5 - 1.0 for y in labels]
        lines = [f"{y + 1} " + " ".join(f"{k}:{x:.6f}" for k in range(1, 257))
                 for y, x in zip(labels, v, strict=True)]
        name = "usps.bz2" if part == "train" else "usps.t.bz2"
        (folder / name).write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))
    else:
        from scipy.io import savemat

        x = np.stack([np.full((32, 32, 3), digit_value(y), np.uint8) for y in labels], axis=-1)
        y = np.where(labels == 0, 10, labels).reshape(-1, 1).astype(np.uint8)
        savemat(folder / f"{part}_32x32.mat", {"X": x, "y": y})


def _tar(src: Path, out: Path, members: list[str]) -> Path:
    with tarfile.open(out, "w:gz" if out.name.endswith(".gz") else "w") as tf:
        for m in members:
            tf.add(src / m, arcname=m)
    return out


def _zip(src: Path, out: Path, member: str) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted((src / member).rglob("*")):
            zf.write(p, p.relative_to(src).as_posix())
    return out


def make_archives(dataset: str, tree: Path, out: Path) -> list[Path]:
    """Package a fixture tree as the dataset's real download files (names as in the recipe)."""
    out.mkdir(parents=True, exist_ok=True)
    if dataset == "office31":
        return [_tar(tree, out / "domain_adaptation_images.tar.gz", ["amazon", "dslr", "webcam"])]
    if dataset == "office_home":
        return [_zip(tree, out / "OfficeHomeDataset_10072016.zip", "OfficeHomeDataset_10072016")]
    if dataset == "visda2017":
        return [_tar(tree, out / f"{s}.tar", [s]) for s in ("train", "validation")]
    if dataset == "domainnet":
        files = []
        for d in registry.spec("domainnet").domains:
            files.append(_zip(tree, out / f"{d}.zip", d))
            for part in ("train", "test"):
                files.append(Path(shutil.copy2(tree / f"{d}_{part}.txt", out)))
        return files
    return [Path(shutil.copy2(p, out)) for p in sorted(tree.rglob("*")) if p.is_file()]


def make_recipe(dataset: str, archives: list[Path], counts: dict, class_counts: dict,
                base_url: str, out: Path) -> Path:
    """The packaged recipe with URLs, sizes, checksums and counts of the fixture."""
    recipe = json.loads((RECIPES_DIR / f"{dataset}.json").read_text())
    by_name = {p.name: p for p in archives}
    assert set(by_name) == {a["file"] for a in recipe["archives"]}
    for a in recipe["archives"]:
        data = by_name[a["file"]].read_bytes()
        a["urls"] = [f"{base_url}/{a['file']}"]
        a["size"] = len(data)
        a["checksum"] = {"algorithm": "sha256", "value": hashlib.sha256(data).hexdigest(),
                         "source": "test fixture"}
    recipe["counts"], recipe["class_counts"] = counts, class_counts
    out.write_text(json.dumps(recipe, indent=1))
    return out
