"""css_mini: a small CSS-like benchmark generated offline from scikit-learn's digits.

A scene is a 36x36 RGB canvas (dark background) with a 3x3 grid of 12-pixel cells; it holds
1-3 objects, each a handwritten digit glyph (one 8x8 instance of its class from
`sklearn.datasets.load_digits`, drawn at a random offset of 0-4 pixels inside its cell) in
one of a few colours. Its caption is the canonical content string (cell -> digit and colour),
so, as on CSS3D, any image with the same content is a correct retrieval. A modification is
"add <colour> <digit> to <cell>", "remove the object at <cell>" or "make <cell> <colour>";
the target is the modified scene re-rendered with different glyph instances and offsets
(retrieval must match content, not pixels).

Splits are disjoint by content (no source or target content of one split occurs in
another), and each split draws glyphs from its own third of the digit instances. The data is
a deterministic function of `DATA_SEED` (independent of the run seed); `fingerprint` is the
sha256 of its arrays and texts.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import torch

from ghuda.extensions.retrieval.sets import ArrayImages, Mod, Split

DATA_SEED = 0
SIDE, CELL, GLYPH = 36, 12, 8
CELLS = ("top-left", "top-center", "top-right", "middle-left", "middle-center",
         "middle-right", "bottom-left", "bottom-center", "bottom-right")
DIGITS = (0, 1, 4, 7)
COLOURS = {"red": (235, 50, 40), "green": (40, 200, 70), "blue": (60, 100, 250)}
BACKGROUND = 24
# pairs per split (each pair renders a source and a target image)
SIZES = {"train": 4000, "val": 400, "test": 400}

Scene = tuple[tuple[int, str] | None, ...]  # per cell: (digit, colour) or empty


def caption(scene: Scene) -> str:
    """Canonical content string, e.g. 'top-left:3:red|middle-center:0:blue'."""
    return "|".join(f"{CELLS[c]}:{o[0]}:{o[1]}" for c, o in enumerate(scene) if o is not None)


def _random_scene(rng: np.random.Generator) -> Scene:
    cells = rng.choice(len(CELLS), size=int(rng.integers(1, 4)), replace=False)
    scene: list[tuple[int, str] | None] = [None] * len(CELLS)
    for c in cells:
        scene[c] = (int(rng.choice(DIGITS)), str(rng.choice(list(COLOURS))))
    return tuple(scene)


def _modify(scene: Scene, rng: np.random.Generator) -> tuple[str, Scene]:
    """A random applicable modification: (text, modified scene)."""
    full = [c for c, o in enumerate(scene) if o is not None]
    empty = [c for c, o in enumerate(scene) if o is None]
    kinds = ["add", "make"] + (["remove"] if len(full) > 1 else [])
    kind = str(rng.choice(kinds))
    out = list(scene)
    if kind == "add":
        c, digit, colour = int(rng.choice(empty)), int(rng.choice(DIGITS)), str(rng.choice(
            list(COLOURS)))
        out[c] = (digit, colour)
        return f"add {colour} {digit} to {CELLS[c]}", tuple(out)
    c = int(rng.choice(full))
    if kind == "remove":
        out[c] = None
        return f"remove the object at {CELLS[c]}", tuple(out)
    old = scene[c]
    assert old is not None
    colour = str(rng.choice([k for k in COLOURS if k != old[1]]))
    out[c] = (old[0], colour)
    return f"make {CELLS[c]} {colour}", tuple(out)


def _render(scene: Scene, glyphs: dict[int, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """uint8 [3, SIDE, SIDE]: each object a random instance of its digit, randomly offset."""
    canvas = np.full((3, SIDE, SIDE), float(BACKGROUND))
    for c, obj in enumerate(scene):
        if obj is None:
            continue
        pool = glyphs[obj[0]]
        alpha = pool[rng.integers(len(pool))]
        y = (c // 3) * CELL + int(rng.integers(CELL - GLYPH + 1))
        x = (c % 3) * CELL + int(rng.integers(CELL - GLYPH + 1))
        colour = np.asarray(COLOURS[obj[1]], dtype=float)[:, None, None]
        patch = canvas[:, y:y + GLYPH, x:x + GLYPH]
        canvas[:, y:y + GLYPH, x:x + GLYPH] = patch * (1 - alpha) + colour * alpha
    return np.rint(canvas).astype(np.uint8)


def _glyph_pools(rng: np.random.Generator) -> dict[str, dict[int, np.ndarray]]:
    """Per split, per digit: a disjoint third of sklearn's instances as alpha maps in 0..1."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images / 16.0
    pools: dict[str, dict[int, np.ndarray]] = {s: {} for s in SIZES}
    for d in DIGITS:
        idx = rng.permutation(np.flatnonzero(digits.target == d))
        for s, part in zip(SIZES, np.array_split(idx, 3), strict=True):
            pools[s][d] = images[part]
    return pools


@functools.lru_cache(maxsize=2)
def build(seed: int = DATA_SEED) -> tuple[dict[str, Split], str]:
    """The css_mini splits and their sha256 fingerprint (deterministic in `seed`).

    Splits are generated test, val, train; a pair whose source or target content was
    claimed by another split is redrawn. Mods group the pairs by text, as CSS3D's do.
    """
    rng = np.random.default_rng(seed)
    pools = _glyph_pools(rng)
    owner: dict[str, str] = {}
    splits: dict[str, Split] = {}
    digest = hashlib.sha256()
    for name in ("test", "val", "train"):
        images: list[np.ndarray] = []
        captions: list[str] = []
        by_text: dict[str, tuple[list[int], list[int]]] = {}
        while len(images) < 2 * SIZES[name]:
            source = _random_scene(rng)
            text, target = _modify(source, rng)
            keys = (caption(source), caption(target))
            if any(owner.get(k, name) != name for k in keys):
                continue
            for k in keys:
                owner[k] = name
            ids = by_text.setdefault(text, ([], []))
            for scene, key, side in ((source, keys[0], ids[0]), (target, keys[1], ids[1])):
                side.append(len(images))
                images.append(_render(scene, pools[name], rng))
                captions.append(key)
        array = np.stack(images)
        mods = [Mod(t, tuple(f), tuple(to)) for t, (f, to) in by_text.items()]
        digest.update(name.encode() + array.tobytes() + "\n".join(captions).encode())
        for m in mods:
            digest.update(f"{m.text}|{m.sources}|{m.targets}".encode())
        splits[name] = Split(name, ArrayImages(torch.from_numpy(array)), captions, mods)
    return {s: splits[s] for s in SIZES}, digest.hexdigest()
