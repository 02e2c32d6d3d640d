"""Recipes of the paper datasets: fetch, register a manual download, verify (issue 3, item 2).

A recipe (`recipes/<dataset>.json`) records for every file of a dataset its URL(s), size and
documented checksum where one is known (with its source; `null` where unknown), the entries
the extracted tree must contain, and the image counts to verify (REFERENCE section 3).

    fetch     download every archive into <root>/downloads/<dataset>/ (partial files are
              `*.part` and removed on failure), then register them;
    register  check sizes/checksums, extract into a hidden staging folder next to the
              destination, verify counts and image files, write manifest.json last, then move
              the folder into place in one rename and `dvc add` it (inside a DVC repository);
    verify    re-check a registered dataset against its recipe and manifest.

Nothing appears at <root>/<dataset> unless every step passed: a failure leaves the staging
folder removed and a non-zero exit with a message naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ghuda.data import registry
from ghuda.data.images import CorruptImageError, open_rgb
from ghuda.data.paths import data_root

RECIPES_DIR = Path(__file__).with_name("recipes")
MANIFEST = "manifest.json"
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM")


class FetchError(RuntimeError):
    """A download failed; the message says where to put a manual download and what to run."""


class ChecksumError(ValueError):
    """A file's size or checksum differs from the recipe."""


class VerifyError(ValueError):
    """A dataset tree does not match its recipe (counts, files, images)."""


@dataclass(frozen=True)
class Archive:
    file: str
    urls: list[str]
    size: int | None = None
    checksum: dict | None = None  # {"algorithm", "value", "source"} or None when unknown
    dest: str = "."
    extract: bool = True


@dataclass
class Recipe:
    dataset: str
    title: str
    homepage: str
    archives: list[Archive]
    expect: list[str]
    counts: dict[str, dict[str, int]]
    class_counts: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    manual_sources: list[str] = field(default_factory=list)
    recipe_version: int = 1

    @classmethod
    def load(cls, dataset: str, path: str | os.PathLike[str] | None = None) -> Recipe:
        """The packaged recipe of `dataset`, or the JSON file at `path` (mirrors, tests)."""
        name = registry.spec(dataset).name
        file = Path(path) if path else RECIPES_DIR / f"{name}.json"
        if not file.is_file():
            raise FileNotFoundError(f"no recipe for {name}: {file} does not exist")
        raw = json.loads(file.read_text())
        if raw.get("dataset") != name:
            raise ValueError(f"{file} is a recipe for {raw.get('dataset')!r}, not {name!r}")
        keys = {"dataset", "title", "homepage", "expect", "counts", "class_counts",
                "manual_sources", "recipe_version"}
        return cls(archives=[Archive(**a) for a in raw["archives"]],
                   **{k: v for k, v in raw.items() if k in keys})

    def archive(self, filename: str) -> Archive | None:
        return next((a for a in self.archives if a.file == filename), None)


# ---------------------------------------------------------------- checksums and downloads


def file_digests(path: Path, algorithms: set[str]) -> dict[str, str]:
    """Hex digests of `path` for each algorithm (one read of the file)."""
    hashes = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def check_file(path: Path, archive: Archive | None) -> dict:
    """Size and checksum of one input against the recipe; returns what the manifest records.

    Always records sha256; raises ChecksumError naming the file on any mismatch.
    """
    documented = archive.checksum if archive else None
    algorithms = {"sha256"} | ({documented["algorithm"]} if documented else set())
    digests = file_digests(path, algorithms)
    size = path.stat().st_size
    if archive and archive.size is not None and size != archive.size:
        raise ChecksumError(f"{path}: size {size} bytes, expected {archive.size} "
                            f"(incomplete or different file)")
    matched = None
    if documented:
        got = digests[documented["algorithm"]]
        if got != documented["value"].lower():
            raise ChecksumError(f"{path}: {documented['algorithm']} checksum mismatch: expected "
                                f"{documented['value']}, got {got}")
        matched = True
    return {"file": path.name, "size": size, "sha256": digests["sha256"],
            "documented_checksum": documented, "documented_checksum_matched": matched}


def download(url: str, target: Path, timeout: float) -> None:
    """Stream `url` to `target` via `target.part`; the .part file is removed on any failure."""
    part = target.with_name(target.name + ".part")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "ghuda-data-fetch"})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as f:
            ctype = response.headers.get("Content-Type", "")
            if ctype.startswith("text/html") and not target.name.endswith((".txt", ".html")):
                raise FetchError(f"{url} returned an HTML page (a login or confirmation page?) "
                                 "instead of the file")
            shutil.copyfileobj(response, f, 1 << 20)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def _manual_help(recipe: Recipe, folder: Path, dest: Path, recipe_file: str | None) -> str:
    sources = "\n".join(f"    - {s}" for s in [recipe.homepage, *recipe.manual_sources])
    files = "\n".join(f"    {folder / a.file}" for a in recipe.archives)
    extra = f" --recipe {recipe_file}" if recipe_file else ""
    return (f"Download the file(s) manually from:\n{sources}\n"
            f"  place them at:\n{files}\n"
            f"  then run:\n    ghuda data register {recipe.dataset} {folder} --dest {dest}{extra}")


def fetch(dataset: str, *, root: str | os.PathLike[str] | None = None,
          dest: str | os.PathLike[str] | None = None, recipe_file: str | None = None,
          mirror: str | None = None, timeout: float = 60.0, dvc: bool = True,
          force: bool = False, log=print) -> Path:
    """Download every archive of the recipe (reusing verified files already in the
    downloads folder), then `register` them. Raises FetchError on a dead link or offline."""
    recipe = Recipe.load(dataset, recipe_file)
    dest = Path(dest) if dest else data_root(root) / recipe.dataset
    with downloads_folder(data_root(root), recipe.dataset) as folder:
        _download_all(recipe, folder, dest, recipe_file, mirror, timeout, log)
    return register(dataset, [folder], root=root, dest=dest, recipe_file=recipe_file, dvc=dvc,
                    force=force, log=log)


@contextmanager
def downloads_folder(root: Path, dataset: str) -> Iterator[Path]:
    """``<root>/downloads/<dataset>/``, created with a ``.gitignore`` in ``downloads/`` (the
    archives are a local cache); a FetchError or Ctrl-C inside removes the folders this call
    created again when nothing was downloaded into them."""
    folder = root / "downloads" / dataset
    made = [d for d in (root, folder.parent, folder) if not d.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder.parent / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# downloaded archives: a local cache, never committed\n*\n")
    try:
        yield folder
    except (FetchError, KeyboardInterrupt):
        _remove_empty(made, ignore)
        raise


def _remove_empty(made: list[Path], ignore: Path) -> None:
    """Remove the download folders this fetch created if nothing was downloaded into them."""
    for d in reversed(made):
        if d == ignore.parent and [p.name for p in d.iterdir()] == [ignore.name]:
            ignore.unlink()
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


def _download_all(recipe: Recipe, folder: Path, dest: Path, recipe_file: str | None,
                  mirror: str | None, timeout: float, log) -> None:
    """Download and check every archive of `recipe` into `folder` (FetchError if one fails)."""
    for archive in recipe.archives:
        target = folder / archive.file
        if target.is_file():
            try:
                check_file(target, archive)
                log(f"{archive.file}: already downloaded and verified")
                continue
            except ChecksumError as e:
                log(f"{archive.file}: discarding a previous download ({e})")
                target.unlink()
        urls = ([f"{mirror.rstrip('/')}/{archive.file}"] if mirror else []) + archive.urls
        errors = []
        for url in urls:
            try:
                log(f"{archive.file}: downloading {url}")
                download(url, target, timeout)
                check_file(target, archive)
                break
            except (OSError, urllib.error.URLError, FetchError, ChecksumError) as e:
                target.unlink(missing_ok=True)
                errors.append(f"    {url}: {e}")
        else:
            raise FetchError(f"could not download {archive.file} for {recipe.title}:\n"
                             + "\n".join(errors) + "\n  "
                             + _manual_help(recipe, folder, dest, recipe_file))


def get(dataset: str, *, root: str | os.PathLike[str] | None = None,
        recipe_file: str | None = None, timeout: float = 60.0, log=print) -> Path:
    """Make `<root>/<dataset>` present the cheapest way: already there; `dvc pull` of its
    committed `<dataset>.dvc` (the team remote); building digits-mini; else `fetch`."""
    s = registry.spec(dataset)
    dest = data_root(root) / s.name
    if (dest / MANIFEST).is_file():
        log(f"{s.title}: present at {dest}")
        return dest
    if s.name == "digits_mini":
        from ghuda.data import digits_mini

        digits_mini.build(dest)
        return dest
    pointer = dest.with_name(dest.name + ".dvc")
    repo = dvc_repo_of(dest.parent) if pointer.is_file() else None
    if repo is not None:
        log(f"{s.title}: dvc pull {pointer}")
        proc = subprocess.run([sys.executable, "-m", "dvc", "pull", "-q", str(pointer)],
                              cwd=repo, capture_output=True, text=True, check=False)
        if proc.returncode == 0 and (dest / MANIFEST).is_file():
            return dest
        log(f"dvc pull failed ({proc.stderr.strip() or 'no manifest'}); fetching instead")
    return fetch(s.name, root=root, recipe_file=recipe_file, timeout=timeout, log=log)


# ---------------------------------------------------------------- register


def safe_extract(path: Path, out: Path) -> None:
    """Extract the tar or zip archive `path` into `out`, refusing members that would land
    outside it; ValueError names an archive that is neither (e.g. a saved HTML error page)."""
    out.mkdir(parents=True, exist_ok=True)
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tf:
            tf.extractall(out, filter="data")  # refuses absolute paths, '..', devices
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            root = out.resolve()
            for name in zf.namelist():
                if not (out / name).resolve().is_relative_to(root):
                    raise ValueError(f"{path}: member {name!r} would extract outside {out}")
            zf.extractall(out)
    else:
        raise ValueError(f"{path} is neither a tar nor a zip archive (an HTML error page "
                         "saved under the archive's name?)")


def _inputs(recipe: Recipe, paths: list[Path]) -> list[Path]:
    """Files given, with a folder standing for the recipe's files found in it."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = [p / a.file for a in recipe.archives if (p / a.file).is_file()]
            if not found:
                raise FileNotFoundError(f"{p} holds none of {[a.file for a in recipe.archives]}")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist")
    return files


def locate_tree(top: Path, expect: list[str]) -> Path:
    """The folder under `top` (itself or a descendant, shallowest first) holding `expect`."""
    queue = [top]
    while queue:
        d = queue.pop(0)
        if all((d / e).exists() for e in expect):
            return d
        queue += sorted(p for p in d.iterdir() if p.is_dir())
    raise VerifyError(f"the extracted files hold no folder with all of {expect}")


def register(dataset: str, paths: list[str | os.PathLike[str]], *,
             root: str | os.PathLike[str] | None = None,
             dest: str | os.PathLike[str] | None = None, recipe_file: str | None = None,
             dvc: bool = True, force: bool = False, deep: bool = False, log=print) -> Path:
    """Check, extract, verify and install archives as `<root>/<dataset>` (atomically)."""
    recipe = Recipe.load(dataset, recipe_file)
    dest = Path(dest) if dest else data_root(root) / recipe.dataset
    if (dest / MANIFEST).is_file() and not force:
        raise FileExistsError(f"{dest} is already registered (use --force to replace it)")
    files = _inputs(recipe, [Path(p) for p in paths])
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        records = []
        for path in files:
            archive = recipe.archive(path.name)
            if archive is None:
                log(f"{path.name}: not a file of the recipe; its checksum cannot be checked")
            elif archive.checksum is None:
                log(f"{path.name}: no documented checksum; recording its sha256")
            records.append(check_file(path, archive))
            target = staging / "x" / (archive.dest if archive else ".")
            if archive is not None and not archive.extract:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
            else:
                log(f"{path.name}: extracting")
                safe_extract(path, target)
        tree = locate_tree(staging / "x", recipe.expect)
        try:
            summary = verify_tree(recipe, tree, deep=deep)
        except VerifyError as e:
            sources = ", ".join(str(p) for p in files)
            raise VerifyError(f"{e}\n  (in the files extracted from {sources}; "
                              f"nothing was registered)") from e
        manifest = {"dataset": recipe.dataset, "recipe_version": recipe.recipe_version,
                    "inputs": records, **summary}
        (tree / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tree, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"registered {recipe.title} at {dest}: " + _counts_line(summary["counts"]))
    if dvc:
        dvc_track(dest, log)
    return dest


def _counts_line(counts: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{d} " + "/".join(f"{n}" for n in parts.values())
                     for d, parts in counts.items())


def dvc_repo_of(path: Path) -> Path | None:
    """The DVC repository (folder holding `.dvc/`) containing `path`, if any."""
    for d in [path.resolve(), *path.resolve().parents]:
        if (d / ".dvc").is_dir():
            return d
    return None


def dvc_track(dest: Path, log=print) -> None:
    """`dvc add` the dataset folder so `dvc push` / `dvc pull` share it (docs/data.md)."""
    repo = dvc_repo_of(dest)
    if repo is None:
        log(f"{dest} is not inside a DVC repository: not tracked by DVC")
        return
    proc = subprocess.run([sys.executable, "-m", "dvc", "add", "-q", str(dest.resolve())],
                          cwd=repo, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"`dvc add {dest}` failed (the data itself is registered and "
                           f"verified):\n{proc.stderr.strip()}")
    rel = dest.resolve().relative_to(repo)
    log(f"tracked by DVC: commit {rel}.dvc and {rel.parent / '.gitignore'}, then `dvc push`")


# ---------------------------------------------------------------- verify


def _check_image(path: Path, where: str, deep: bool) -> None:
    if not path.is_file():
        raise VerifyError(f"{where}: listed image {path} is missing")
    if deep:
        try:
            open_rgb(path)
        except CorruptImageError as e:
            raise VerifyError(f"{where}: {e}") from e
        return
    with open(path, "rb") as f:
        head = f.read(8)
    if not head.startswith(_MAGIC):
        raise VerifyError(f"{where}: {path} is not a JPEG/PNG/BMP image (corrupt or truncated)")


def verify_tree(recipe: Recipe, tree: Path, deep: bool = False) -> dict:
    """Read every domain/part as `load` would and compare with the recipe; returns counts.

    Checks: total count per domain and part (REFERENCE section 3), per-class counts where the
    recipe records them, every listed image present and an image (`deep`: fully decoded).
    """
    s = registry.spec(recipe.dataset)
    read = registry.reader(s)
    names = registry.class_names(s.name)
    parts = ("train", "test") if s.official_test else ("all",)
    counts: dict[str, dict[str, int]] = {}
    class_counts: dict[str, dict[str, list[int]]] = {}
    for domain in s.domains:
        for part in parts:
            where = f"{s.name}/{domain}/{part}"
            try:
                p = read(tree, domain, part)
            except (FileNotFoundError, ValueError) as e:
                raise VerifyError(f"{where}: {e}") from e
            expected = recipe.counts.get(domain, {}).get(part)
            location = p.base or tree / domain
            if expected is None:
                raise VerifyError(f"{where}: the recipe records no image count")
            if len(p.labels) != expected:
                raise VerifyError(f"{where}: found {len(p.labels)} images under {location}, "
                                  f"expected {expected}")
            per_class = np.bincount(p.labels, minlength=len(names)).tolist()
            want = recipe.class_counts.get(domain, {}).get(part)
            if want is not None and per_class != want:
                c = next(i for i, (a, b) in enumerate(zip(per_class, want, strict=True)) if a != b)
                raise VerifyError(f"{where}: class {names[c]!r} has {per_class[c]} images under "
                                  f"{location}, expected {want[c]}")
            for rel, _ in p.samples or []:
                _check_image(p.base / rel, where, deep)
            counts.setdefault(domain, {})[part] = len(p.labels)
            class_counts.setdefault(domain, {})[part] = per_class
    return {"counts": counts, "class_counts": class_counts,
            "verified": "counts, per-class counts, "
                        + ("every image decoded" if deep else "image files present (headers)")}


def verify_registered(dataset: str, root: str | os.PathLike[str] | None = None,
                      recipe_file: str | None = None, deep: bool = False) -> str:
    """Verify `<root>/<dataset>` against its recipe and its own manifest; returns a summary."""
    from ghuda.data.api import require

    path = require(dataset, root)
    recipe = Recipe.load(dataset, recipe_file)
    summary = verify_tree(recipe, path, deep=deep)
    recorded = json.loads((path / MANIFEST).read_text()).get("counts")
    if recorded != summary["counts"]:
        raise VerifyError(f"{path / MANIFEST}: recorded counts {recorded} differ from the tree "
                          f"{summary['counts']}")
    return f"{recipe.title} at {path}: OK ({_counts_line(summary['counts'])})"
