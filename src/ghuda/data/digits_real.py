"""Reader of the Digits benchmark files as distributed (REFERENCE section 3).

- MNIST: `mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` (IDX format);
- USPS: `usps/usps.bz2` (train) and `usps/usps.t.bz2` (test), LIBSVM format, 16x16 in [-1, 1],
  labels 1..10 for digits 0..9;
- SVHN: `svhn/{train,test}_32x32.mat` (X: 32 x 32 x 3 x N, y: 1..10 with 10 for digit 0).

All are returned as uint8 N x 32 x 32 x 3 (grey digits replicated to RGB, bilinear resize to
32x32), so one digit backbone serves every domain, digits-mini included.
"""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path

import numpy as np

from ghuda.data.registry import Part

SIZE = 32
_MNIST = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
_USPS = {"train": "usps.bz2", "test": "usps.t.bz2"}
_SVHN = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def _require(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"digits: {path} is missing")
    return path


def _idx(path: Path, magic: int) -> np.ndarray:
    """An IDX array (MNIST format): big-endian header of magic and dims, then uint8 data."""
    try:
        with gzip.open(_require(path), "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"digits: cannot decompress {path}: {e}") from e
    ndim = magic & 0xFF
    header = np.frombuffer(raw[:4 + 4 * ndim], dtype=">u4") if len(raw) >= 4 + 4 * ndim else []
    if len(header) != ndim + 1 or header[0] != magic:
        raise ValueError(f"digits: {path} is not an IDX file with magic {magic}")
    dims = tuple(int(d) for d in header[1:])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"digits: {path} holds {data.size} bytes, header says {dims}")
    return data.reshape(dims)


def _usps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    try:
        with bz2.open(_require(path), "rt") as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                pixels = np.zeros(256, dtype=np.float32)
                try:
                    for item in fields[1:]:
                        k, v = item.split(":")
                        pixels[int(k) - 1] = float(v)
                    labels.append(int(float(fields[0])) - 1)
                except (ValueError, IndexError) as e:
                    raise ValueError(f"digits: {path}:{lineno}: not LIBSVM 'label k:v ...'") from e
                images.append(pixels.reshape(16, 16))
    except (OSError, EOFError) as e:
        raise ValueError(f"digits: cannot decompress {path}: {e}") from e
    grey = np.clip(np.rint((np.stack(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return grey, np.asarray(labels, dtype=np.int64)


def _svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        mat = loadmat(_require(path))
        x, y = mat["X"], mat["y"]
    except (ValueError, KeyError, OSError) as e:
        raise ValueError(f"digits: {path} is not an SVHN .mat file with X and y: {e}") from e
    return np.ascontiguousarray(np.transpose(x, (3, 0, 1, 2))), (y.reshape(-1) % 10).astype(
        np.int64)


def grey_to_rgb32(grey: np.ndarray) -> np.ndarray:
    """uint8 N x h x w -> uint8 N x 32 x 32 x 3 (bilinear, half-pixel centres)."""
    import torch
    import torch.nn.functional as F

    t = torch.tensor(grey, dtype=torch.float32).unsqueeze(1)
    if t.shape[-2:] != (SIZE, SIZE):
        t = F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    out = t.round().clamp(0, 255).to(torch.uint8).squeeze(1).numpy()
    return np.repeat(out[..., None], 3, axis=-1)


def read_digits(root: Path, domain: str, part: str) -> Part:
    """Backend for `ghuda.data.load("digits", ...)`: one domain's official train or test."""
    if part not in ("train", "test"):
        raise ValueError(f"digits parts are 'train' and 'test', not {part!r}")
    if domain == "mnist":
        img_file, lab_file = _MNIST[part]
        grey = _idx(root / "mnist" / img_file, 2051)
        labels = _idx(root / "mnist" / lab_file, 2049).astype(np.int64)
        images = grey_to_rgb32(grey)
    elif domain == "usps":
        grey, labels = _usps(root / "usps" / _USPS[part])
        images = grey_to_rgb32(grey)
    elif domain == "svhn":
        images, labels = _svhn(root / "svhn" / _SVHN[part])
    else:
        raise ValueError(f"digits has no domain {domain!r}")
    if len(images) != len(labels):
        raise ValueError(f"digits/{domain}/{part}: {len(images)} images but {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"digits/{domain}/{part}: labels outside 0..9")
    return Part(labels=labels, images=images)
