"""Shared fixtures.

`digits_mini_root`: a data root holding a complete digits-mini (pass it as `root=` to
`ghuda.data.load` / `uda_splits`). Reuses the repository's `data/digits_mini` when its manifest
matches the recorded checksum and every file matches the manifest; otherwise builds it once per
session into a temporary directory (about 4 s).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ghuda.data import digits_mini


def _usable(root: Path) -> bool:
    path = root / digits_mini.NAME
    try:
        ok = digits_mini.manifest_sha256(path) == digits_mini.expected()["manifest_sha256"]
        return ok and bool(digits_mini.verify(path))
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def digits_mini_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo_data = Path(__file__).resolve().parents[1] / "data"
    if _usable(repo_data):
        return repo_data
    root = tmp_path_factory.mktemp("data")
    digits_mini.build(root / digits_mini.NAME, seed=digits_mini.expected()["seed"])
    return root
