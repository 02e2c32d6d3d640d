"""Readers of the image datasets' standard on-disk layouts (REFERENCE section 3).

Layouts under the dataset directory (what the official archives extract to):
- Office-31: `<domain>/images/<class>/*.jpg` (domain_adaptation_images.tar.gz);
- Office-Home: `<Domain>/<Class>/*.jpg`, the Real_World domain in a folder named `Real World`
  (official zip) or `Real_World` (common mirrors);
- VisDA-2017: `train/` (synthetic) and `validation/` (real), each with the official
  `image_list.txt` ("relative/path label" lines);
- DomainNet: `<domain>/<class>/*.jpg` plus the official `<domain>_train.txt` / `_test.txt`.

Folder datasets are labelled by the repository's class order (`classes/*.txt`); list datasets
by the official list, cross-checked against the class folder of every path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ghuda.data.registry import Part, class_names

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
OFFICE_HOME_DIRS = {"Real_World": ("Real World", "Real_World")}
VISDA_DIRS = {"synthetic": "train", "real": "validation"}


def _folder_part(base: Path, names: tuple[str, ...], where: str) -> Part:
    """Every image under `base/<class>/`, classes in repository order, files sorted."""
    if not base.is_dir():
        raise FileNotFoundError(f"{where}: domain folder {base} does not exist")
    index = {n: i for i, n in enumerate(names)}
    extra = sorted(p.name for p in base.iterdir() if p.is_dir() and p.name not in index)
    if extra:
        raise ValueError(f"{where}: unexpected class folder(s) {extra} in {base}")
    samples: list[tuple[str, int]] = []
    for name in names:
        folder = base / name
        if not folder.is_dir():
            raise FileNotFoundError(f"{where}: class folder {folder} is missing")
        files = sorted(p.name for p in folder.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        samples += [(f"{name}/{f}", index[name]) for f in files]
    labels = np.fromiter((y for _, y in samples), dtype=np.int64, count=len(samples))
    return Part(labels=labels, samples=samples, base=base)


def _list_part(base: Path, list_file: Path, names: tuple[str, ...], where: str) -> Part:
    """Samples of an official image list; each label must match its path's class folder."""
    if not list_file.is_file():
        raise FileNotFoundError(f"{where}: image list {list_file} does not exist")
    index = {n: i for i, n in enumerate(names)}
    samples: list[tuple[str, int]] = []
    for lineno, line in enumerate(list_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise ValueError(f"{list_file}:{lineno}: expected 'path label', got {line!r}")
        rel, label = fields[0], int(fields[1])
        folder = Path(rel).parent.name
        if index.get(folder) != label:
            raise ValueError(f"{list_file}:{lineno}: label {label} does not match class folder "
                             f"{folder!r} (class order: src/ghuda/data/classes)")
        samples.append((rel, label))
    labels = np.fromiter((y for _, y in samples), dtype=np.int64, count=len(samples))
    return Part(labels=labels, samples=samples, base=base)


def _only_all(dataset: str, part: str) -> None:
    if part != "all":
        raise ValueError(f"{dataset} has no official {part!r} part")


def read_office31(root: Path, domain: str, part: str) -> Part:
    _only_all("office31", part)
    return _folder_part(root / domain / "images", class_names("office31"), f"office31/{domain}")


def read_office_home(root: Path, domain: str, part: str) -> Part:
    _only_all("office_home", part)
    candidates = [root / d for d in OFFICE_HOME_DIRS.get(domain, (domain,))]
    base = next((c for c in candidates if c.is_dir()), candidates[0])
    return _folder_part(base, class_names("office_home"), f"office_home/{domain}")


def read_visda2017(root: Path, domain: str, part: str) -> Part:
    _only_all("visda2017", part)
    base = root / VISDA_DIRS[domain]
    return _list_part(base, base / "image_list.txt", class_names("visda2017"),
                      f"visda2017/{domain}")


def read_domainnet(root: Path, domain: str, part: str) -> Part:
    if part not in ("train", "test"):
        raise ValueError(f"domainnet parts are 'train' and 'test', not {part!r}")
    return _list_part(root, root / f"{domain}_{part}.txt", class_names("domainnet"),
                      f"domainnet/{domain}/{part}")
