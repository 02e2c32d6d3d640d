"""Where datasets live on disk, and the errors raised when one is missing or unreadable.

The default root is `data/` of the ghuda checkout holding the working directory (the nearest
directory at or above it with `workflow/schemas/config.schema.yaml`), else `./data`; it follows
where a command runs, not where the package is installed. The environment variable
`GHUDA_DATA` overrides it, and every public function also takes an explicit `root`.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "GHUDA_DATA"
CHECKOUT_MARKER = Path("workflow") / "schemas" / "config.schema.yaml"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk where it was looked for; the message names the fix."""


class DatasetCorruptError(ValueError):
    """A dataset file exists but cannot be read; the message names the file and the fix."""


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root: explicit `root`, else `$GHUDA_DATA`, else `data/` of the
    checkout holding the working directory, else `./data`."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    here = Path.cwd()
    for cand in (here, *here.parents):
        if (cand / CHECKOUT_MARKER).is_file():
            return cand / "data"
    return here / "data"


def canonical_name(name: str) -> str:
    """Dataset names are accepted with '-' or '_' (`digits-mini` == `digits_mini`)."""
    return name.strip().lower().replace("-", "_")
