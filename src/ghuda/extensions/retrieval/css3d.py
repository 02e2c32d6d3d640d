"""CSS3D (TIRG's CSS dataset): loader and fetch.

Layout of CSS.zip (storage.googleapis.com/image_retrieval_css/CSS.zip): a numpy pickle
`css_toy_dataset_novel2_small.dup.npy` holding a dict with keys 'train' and 'test', each with
'objects_img' (one entry per image), optionally 'labels', and 'mods' (dicts with 'from' and
'to', parallel lists of image ids, and 'to_str', the modification text); images are
`images/css_{split}_{id:06d}.png`. An image's caption is str(its label) where 'labels'
exists, else str(its index). test_queries.txt, from the same folder, is kept next to them.

`fetch` downloads both into `<root>/downloads/css3d/` (partial files `*.part`, removed on
failure), extracts into a hidden staging folder, verifies (the npy loads, every referenced
image exists), writes manifest.json last and renames the folder to `<root>/css3d`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np

from ghuda.data.fetch import (
    MANIFEST,
    FetchError,
    VerifyError,
    check_file,
    download,
    downloads_folder,
    locate_tree,
    safe_extract,
)
from ghuda.data.paths import DatasetCorruptError, DatasetNotFoundError, data_root
from ghuda.extensions.retrieval.sets import FileImages, Mod, Split
from ghuda.runs import write_json

NAME = "css3d"
NPY = "css_toy_dataset_novel2_small.dup.npy"
URL = "https://storage.googleapis.com/image_retrieval_css/CSS.zip"
FILES = ("CSS.zip", "test_queries.txt")
SPLITS = ("train", "test")
UNKNOWN_SIZE = ("not documented: the dataset page gives no size or checksum of this file; "
                "the manifest records the sha256 of the copy that was fetched")


def dataset_dir(root: str | os.PathLike[str] | None) -> Path:
    """Where CSS3D lives: `<root>/css3d`."""
    return data_root(root) / NAME


def image_path(tree: Path, split: str, index: int) -> Path:
    return tree / "images" / f"css_{split}_{index:06d}.png"


def _read_npy(path: Path) -> dict[str, Any]:
    try:
        # latin1: the released file may be a Python 2 pickle
        raw = np.load(path, allow_pickle=True, encoding="latin1").item()
    except (OSError, ValueError, EOFError) as err:
        raise VerifyError(f"{path}: cannot be read as the CSS numpy pickle ({err})") from None
    missing = [s for s in SPLITS if not isinstance(raw, dict) or s not in raw]
    if missing:
        raise VerifyError(f"{path}: no split {missing[0]!r} (expected keys 'train', 'test')")
    return raw


def _split(tree: Path, name: str, raw: dict[str, Any]) -> Split:
    """One split of the pickle as a `Split`; VerifyError on inconsistent ids."""
    n = len(raw["objects_img"])
    labels = raw.get("labels")
    if labels is not None and len(labels) != n:
        raise VerifyError(f"{name}: {len(labels)} labels for {n} images")
    captions = [str(labels[i]) if labels is not None else str(i) for i in range(n)]
    mods = []
    for k, m in enumerate(raw["mods"]):
        sources, targets = [int(i) for i in m["from"]], [int(i) for i in m["to"]]
        if len(sources) != len(targets):
            raise VerifyError(f"{name}: mod {k} has {len(sources)} 'from' and {len(targets)} "
                              "'to' ids")
        bad = [i for i in sources + targets if not 0 <= i < n]
        if bad:
            raise VerifyError(f"{name}: mod {k} refers to image {bad[0]}, of {n}")
        mods.append(Mod(str(m["to_str"]), tuple(sources), tuple(targets)))
    paths = [image_path(tree, name, i) for i in range(n)]
    return Split(name, FileImages(paths), captions, mods)


def read_tree(tree: Path) -> dict[str, Split]:
    """Both splits of a CSS3D tree, checking that every image file exists."""
    raw = _read_npy(tree / NPY)
    try:
        splits = {s: _split(tree, s, raw[s]) for s in SPLITS}
    except (KeyError, TypeError) as err:
        raise VerifyError(f"{tree / NPY}: not in the CSS layout (missing {err})") from None
    for split in splits.values():
        missing = [p for p in split.images.paths if not p.is_file()]
        if missing:
            raise VerifyError(f"{split.name}: {len(missing)} listed images are missing, e.g. "
                              f"{missing[0]}")
    return splits


def load(root: str | os.PathLike[str] | None) -> dict[str, Split]:
    """The registered CSS3D splits at `<root>/css3d` (error naming the fetch command when
    absent)."""
    tree = dataset_dir(root)
    if not (tree / MANIFEST).is_file():
        raise DatasetNotFoundError(f"CSS3D is not registered at {tree} (no {MANIFEST}); run:\n"
                                   f"    ghuda extension fetch css3d --root {data_root(root)}")
    try:
        return read_tree(tree)
    except VerifyError as err:
        raise DatasetCorruptError(f"{tree}: {err}; delete it and fetch again") from None


def _help(urls: dict[str, str], folder: Path, root: Path) -> str:
    files = "\n".join(f"    {folder / f}   (from {u})" for f, u in urls.items())
    return (f"  Download the files manually and place them at:\n{files}\n"
            f"  then run:\n    ghuda extension fetch css3d --root {root}")


def fetch(root: str | os.PathLike[str] | None, url: str | None = None,
          timeout: float = 60.0) -> Path:
    """Download (unless already in the downloads folder), verify and install CSS3D at
    `<root>/css3d`; returns that folder. `url` replaces CSS.zip's URL (test_queries.txt is
    read from its folder). FetchError, naming the URL, the folder and the command, when a
    download fails; VerifyError when the files are not CSS3D."""
    root = data_root(root)
    dest = root / NAME
    if (dest / MANIFEST).is_file():
        return dest
    zip_url = url or URL
    urls = dict(zip(FILES, (zip_url, f"{zip_url.rsplit('/', 1)[0]}/{FILES[1]}"), strict=True))
    with downloads_folder(root, NAME) as folder:
        for name, file_url in urls.items():
            if (folder / name).is_file():
                continue
            try:
                download(file_url, folder / name, timeout)
            except (OSError, urllib.error.URLError, FetchError) as err:
                raise FetchError(f"could not download {name} from {file_url}: {err}\n"
                                 + _help(urls, folder, root)) from None
    return install(folder, dest)


def install(folder: Path, dest: Path) -> Path:
    """Extract `folder`/CSS.zip into a hidden staging folder, verify, write the manifest last
    and move the tree to `dest` in one rename; nothing is left behind on failure."""
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        inputs = [{**check_file(folder / f, None), "documented_size": None,
                   "documented_size_reason": UNKNOWN_SIZE} for f in FILES]
        try:
            safe_extract(folder / FILES[0], staging / "x")
        except (ValueError, OSError) as err:
            raise VerifyError(f"{folder / FILES[0]}: {err}; delete it and fetch again") from None
        tree = locate_tree(staging / "x", [NPY, "images"])
        splits = read_tree(tree)
        shutil.copy2(folder / FILES[1], tree / FILES[1])
        counts = {s.name: {"images": len(s.images), "mods": len(s.mods), "queries": s.pairs}
                  for s in splits.values()}
        write_json(tree / MANIFEST, {"dataset": NAME, "inputs": inputs, "counts": counts,
                                     "verified": "npy loads, mod ids in range, every "
                                                 "image file present"})
        if dest.exists():  # an unregistered leftover (no manifest): replaced
            shutil.rmtree(dest)
        os.replace(tree, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
