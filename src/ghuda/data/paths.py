"""Where datasets live on disk, and the error raised when one is missing.

The default root is `data/` at the repository root; the environment variable `GHUDA_DATA`
overrides it, and every public function also takes an explicit `root`.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "GHUDA_DATA"
REPO_ROOT = Path(__file__).resolve().parents[3]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk where it was looked for; the message names the fix."""


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root: explicit `root`, else `$GHUDA_DATA`, else `<repo>/data`."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else REPO_ROOT / "data"


def canonical_name(name: str) -> str:
    """Dataset names are accepted with '-' or '_' (`digits-mini` == `digits_mini`)."""
    return name.strip().lower().replace("-", "_")
