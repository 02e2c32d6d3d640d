"""Reading one image file, with errors that name the file."""

from __future__ import annotations

from pathlib import Path


class CorruptImageError(ValueError):
    """An image file exists but cannot be decoded."""


def open_rgb(path: Path):
    """Open `path` as an RGB PIL image (fully decoded, file closed)."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"image listed in the dataset is missing: {path}")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise CorruptImageError(f"corrupt or unreadable image {path}: {e}") from e
