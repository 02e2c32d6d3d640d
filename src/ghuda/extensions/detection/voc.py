"""PASCAL VOC 2007 + 2012 detection: fetch, verify, load (the paper's detection setting).

Train on VOC07 trainval + VOC12 trainval, test on VOC07 test; 20 classes in the standard order
(labels 1..20, 0 is background). 'difficult' objects stay in the annotations (a `difficult`
flag); evaluation ignores them (`metric`), training uses them as Caffe SSD's VOC recipe does
(``task.train_difficult``).

`fetch` downloads the three archives into ``<root>/downloads/voc/`` (``*.part`` files removed on
failure; files already there and matching size + md5 are reused), extracts them into a hidden
staging folder, verifies every listed id has its JPEG and a parsable XML and the image counts,
writes ``manifest.json`` last and renames the tree to ``<root>/voc`` in one step. It reuses the
dataset fetcher's helpers (`ghuda.data.fetch`). Run ``python -m ghuda.extensions.detection.voc
--root <root>`` to fetch, or to install archives placed by hand in the downloads folder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import tempfile
import urllib.error
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ghuda.data.fetch import (
    MANIFEST,
    Archive,
    ChecksumError,
    FetchError,
    VerifyError,
    check_file,
    download,
    downloads_folder,
    safe_extract,
)
from ghuda.data.images import open_rgb
from ghuda.data.paths import DatasetNotFoundError
from ghuda.extensions.detection.sets import Batch, DetectionSet, Target, epoch_indices

NAME = "voc"
CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
           "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
           "train", "tvmonitor")
_MD5_SOURCE = "torchvision 0.29.1 torchvision/datasets/voc.py DATASET_YEAR_DICT"
# sizes: the Content-Length host.robots.ox.ac.uk serves (as in public wget / Keras download logs)
ARCHIVES = [
    Archive("VOCtrainval_06-Nov-2007.tar",
            ["http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar"],
            460032000, {"algorithm": "md5", "value": "c52e279531787c972589f7e41ab4ae64",
                        "source": _MD5_SOURCE}),
    Archive("VOCtest_06-Nov-2007.tar",
            ["http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar"],
            451020800, {"algorithm": "md5", "value": "b6e924de25625d8de591ea690078ad9f",
                        "source": _MD5_SOURCE}),
    Archive("VOCtrainval_11-May-2012.tar",
            ["http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar"],
            1999639040, {"algorithm": "md5", "value": "6cd6e144f989b92b3379bac3b3de84fd",
                         "source": _MD5_SOURCE}),
]
# (year, ImageSets/Main list) -> images; the VOC devkit documentation's counts
COUNTS = {"VOC2007/trainval": 5011, "VOC2007/test": 4952, "VOC2012/trainval": 11540}
TRAIN_LISTS = ("VOC2007/trainval", "VOC2012/trainval")
TEST_LISTS = ("VOC2007/test",)


# ---------------------------------------------------------------- annotations and loading


def parse_annotation(path: Path) -> Target:
    """Boxes (xyxy, VOC's 1-based inclusive pixels -> [xmin-1, xmax]), labels 1..20, difficult."""
    root = ET.parse(path).getroot()
    boxes, labels, difficult = [], [], []
    for obj in root.iter("object"):
        name = obj.findtext("name", "").strip()
        if name not in CLASSES:
            raise ValueError(f"{path}: unknown class {name!r}")
        bb = obj.find("bndbox")
        if bb is None:
            raise ValueError(f"{path}: object {name!r} has no bndbox")
        x1, y1, x2, y2 = (float(bb.findtext(k, "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([x1 - 1, y1 - 1, x2, y2])
        labels.append(CLASSES.index(name) + 1)
        difficult.append(obj.findtext("difficult", "0").strip() == "1")
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "difficult": torch.tensor(difficult, dtype=torch.bool)}


def read_ids(devkit: Path, listing: str) -> list[str]:
    """Image ids of ``<devkit>/<year>/ImageSets/Main/<split>.txt`` (`listing` = "year/split")."""
    year, split = listing.split("/")
    path = devkit / year / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


class VOCSet(DetectionSet):
    """VOC images read from disk, with their parsed annotations."""

    def __init__(self, items: list[tuple[Path, Target]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def raw(self, index: int) -> tuple[Tensor, Target]:
        """Image `index` as uint8 CHW (RGB) and its target."""
        from torchvision.transforms.v2.functional import pil_to_tensor

        path, target = self.items[index]
        return pil_to_tensor(open_rgb(path)), target

    def sample(self, index: int) -> tuple[Tensor, Target]:
        image, target = self.raw(index)
        return image.float() / 255.0, target


def _items(devkit: Path, listings: tuple[str, ...]) -> list[tuple[Path, Target]]:
    items = []
    for listing in listings:
        year = devkit / listing.split("/")[0]
        for i in read_ids(devkit, listing):
            items.append((year / "JPEGImages" / f"{i}.jpg",
                          parse_annotation(year / "Annotations" / f"{i}.xml")))
    return items


def load(root: str | os.PathLike[str], val_images: int,
         split_seed: int = 0) -> tuple[VOCSet, VOCSet, VOCSet]:
    """(train, val, test): 07+12 trainval less `val_images` held out (a fixed seeded choice),
    those held-out images, and VOC07 test."""
    dest = Path(root) / NAME
    if not (dest / MANIFEST).is_file():
        raise DatasetNotFoundError(
            f"PASCAL VOC is not at {dest} (no {MANIFEST}); fetch it with:\n"
            f"    python -m ghuda.extensions.detection.voc --root {root}")
    devkit = dest / "VOCdevkit"
    trainval = _items(devkit, TRAIN_LISTS)
    if not 0 < val_images < len(trainval):
        raise ValueError(f"val_images must be in 1..{len(trainval) - 1}, got {val_images}")
    held = set(np.random.default_rng(split_seed).choice(len(trainval), val_images,
                                                        replace=False).tolist())
    train = [it for k, it in enumerate(trainval) if k not in held]
    val = [it for k, it in enumerate(trainval) if k in held]
    return VOCSet(train), VOCSet(val), VOCSet(_items(devkit, TEST_LISTS))


def train_batches(data: VOCSet, batch_size: int, seed: int, fill: list[float],
                  train_difficult: bool) -> Iterator[Batch]:
    """Augmented batches forever, deterministic for `seed`: torchvision's SSD recipe
    (photometric distortion, zoom-out filled with the mean, IoU crop, horizontal flip)."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    augment = v2.Compose([
        v2.RandomPhotometricDistort(p=0.5),
        v2.RandomZoomOut(fill={tv_tensors.Image: [round(255 * m) for m in fill], "others": 0}),
        v2.RandomIoUCrop(), v2.RandomHorizontalFlip(p=0.5), v2.SanitizeBoundingBoxes()])
    order = epoch_indices(len(data), seed)
    for step in itertools.count():
        images, targets = [], []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1_000_003 + step)
            for _ in range(batch_size):
                image, t = data.raw(next(order))
                keep = torch.ones_like(t["difficult"]) if train_difficult else ~t["difficult"]
                boxes = tv_tensors.BoundingBoxes(t["boxes"][keep], format="XYXY",
                                                 canvas_size=tuple(image.shape[-2:]))
                out = augment({"image": tv_tensors.Image(image), "boxes": boxes,
                               "labels": t["labels"][keep]})
                images.append(out["image"].as_subclass(Tensor).float() / 255.0)
                targets.append({"boxes": out["boxes"].as_subclass(Tensor),
                                "labels": out["labels"]})
        yield images, targets


# ---------------------------------------------------------------- fetch and verify


def verify_tree(devkit: Path, counts: dict[str, int]) -> dict[str, int]:
    """Check every listed id has a JPEG and a parsable XML, and the counts; returns counts."""
    found = {}
    for listing, expected in counts.items():
        year = devkit / listing.split("/")[0]
        try:
            ids = read_ids(devkit, listing)
        except FileNotFoundError as e:
            raise VerifyError(str(e)) from e
        if len(ids) != expected:
            raise VerifyError(f"{listing}: {len(ids)} image ids listed, expected {expected}")
        for i in ids:
            jpg, xml = year / "JPEGImages" / f"{i}.jpg", year / "Annotations" / f"{i}.xml"
            if not jpg.is_file() or not jpg.read_bytes()[:3] == b"\xff\xd8\xff":
                raise VerifyError(f"{listing}: {jpg} is missing or not a JPEG")
            try:
                parse_annotation(xml)
            except (OSError, ET.ParseError, ValueError) as e:
                raise VerifyError(f"{listing}: annotation {xml} unreadable: {e}") from e
        found[listing] = len(ids)
    return found


def _help(root: Path, folder: Path) -> str:
    files = "\n".join(f"    {folder / a.file}" for a in ARCHIVES)
    return (f"  Download the archives manually (http://host.robots.ox.ac.uk/pascal/VOC/ or a "
            f"mirror) and place them at:\n{files}\n  then run:\n"
            f"    python -m ghuda.extensions.detection.voc --root {root}")


def fetch(root: str | os.PathLike[str], url: str | None = None, *,
          archives: list[Archive] | None = None, counts: dict[str, int] | None = None,
          timeout: float = 60.0, log=print) -> Path:
    """Download, verify and install VOC 2007 + 2012 at ``<root>/voc`` (see the module doc).

    `url`: a mirror folder replacing the official URLs; `archives` / `counts` override the
    documented files and image counts (tests). Raises FetchError when a download fails.
    """
    root = Path(root)
    dest = root / NAME
    if (dest / MANIFEST).is_file():
        log(f"PASCAL VOC: present at {dest}")
        return dest
    if dest.exists():
        raise FileExistsError(f"{dest} exists without {MANIFEST}: move it away and fetch again")
    archives = archives or ARCHIVES
    with downloads_folder(root, NAME) as folder:
        records = [_get(archive, folder, url, timeout, log, root) for archive in archives]
    staging = Path(tempfile.mkdtemp(prefix=f".{NAME}.partial-", dir=root))
    try:
        for archive in archives:
            log(f"{archive.file}: extracting")
            safe_extract(folder / archive.file, staging / "x")
        found = verify_tree(staging / "x" / "VOCdevkit", counts or COUNTS)
        manifest = {"dataset": NAME, "inputs": records, "counts": found,
                    "verified": "counts, every listed JPEG present, every XML parsed"}
        (staging / "x" / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(staging / "x", dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"PASCAL VOC installed at {dest}: {found}")
    return dest


def _get(archive: Archive, folder: Path, url: str | None, timeout: float, log,
         root: Path) -> dict:
    """Download one archive (or reuse a verified copy); returns its manifest record."""
    target = folder / archive.file
    if target.is_file():
        try:
            return check_file(target, archive)
        except ChecksumError as e:
            log(f"{archive.file}: discarding a previous download ({e})")
            target.unlink()
    source = f"{url.rstrip('/')}/{archive.file}" if url else archive.urls[0]
    log(f"{archive.file}: downloading {source}")
    try:
        download(source, target, timeout)
        return check_file(target, archive)
    except (OSError, urllib.error.URLError, FetchError, ChecksumError) as e:
        target.unlink(missing_ok=True)
        raise FetchError(f"could not download {archive.file} from {source}: {e}\n"
                         + _help(root, folder)) from e


def main(argv: list[str] | None = None) -> None:
    """Command line: fetch (or install manually placed archives of) PASCAL VOC."""
    parser = argparse.ArgumentParser(prog="python -m ghuda.extensions.detection.voc",
                                     description="fetch PASCAL VOC 2007 + 2012 into <root>/voc")
    parser.add_argument("--root", default="data", help="data root (default: data)")
    parser.add_argument("--url", default=None, help="a mirror folder holding the archives")
    args = parser.parse_args(argv)
    try:
        fetch(args.root, args.url)
    except (FetchError, VerifyError, ChecksumError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
