"""Contact sheets of digits-mini: one grid per domain (rows = classes) so the shift is visible."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def sheet(images: np.ndarray, labels: np.ndarray, per_class: int = 12) -> np.ndarray:
    """Tile the first `per_class` images of every class into one uint8 HxWx3 array."""
    classes = np.unique(labels)
    h, w = images.shape[1:3]
    grid = np.full((len(classes) * (h + 2), per_class * (w + 2), 3), 255, dtype=np.uint8)
    for r, c in enumerate(classes):
        for k, i in enumerate(np.flatnonzero(labels == c)[:per_class]):
            grid[r * (h + 2) + 1:r * (h + 2) + 1 + h, k * (w + 2) + 1:k * (w + 2) + 1 + w] = \
                images[i]
    return grid


def write_contact_sheets(root: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                         per_class: int = 12) -> list[Path]:
    """Write `digits_mini_<domain>.{png,pdf}` and `digits_mini_all.{png,pdf}` to `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ghuda.data.digits_mini import DOMAINS, load_arrays

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sheets = {d: sheet(*load_arrays(root, d), per_class=per_class) for d in DOMAINS}
    written: list[Path] = []
    panels = [(f"digits_mini_{d}", {d: s}) for d, s in sheets.items()]
    panels.append(("digits_mini_all", sheets))
    for stem, group in panels:
        fig, axes = plt.subplots(1, len(group), figsize=(3.6 * len(group), 3.4), squeeze=False)
        for ax, (domain, grid) in zip(axes[0], group.items(), strict=True):
            ax.imshow(grid, interpolation="nearest")
            ax.set_title(f"digits-mini: {domain}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks(np.arange(10) * (grid.shape[0] / 10) + grid.shape[0] / 20,
                          labels=[str(c) for c in range(10)], fontsize=7)
        fig.tight_layout()
        for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
            path = out_dir / f"{stem}.{ext}"
            tmp = path.with_name(f".{path.name}.tmp")
            fig.savefig(tmp, dpi=150, format=ext, metadata=meta)
            os.replace(tmp, path)
            written.append(path)
        plt.close(fig)
    return written
