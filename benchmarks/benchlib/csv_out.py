"""CSV output of the benchmarks: written whole, then moved into place."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def write_csv(path: Path, fields: list[str], records: Iterable[Mapping[str, Any]]) -> None:
    """`records` under the header `fields`, floats rounded to 4 decimals; `path` is replaced
    at once (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for record in records:
            writer.writerow({k: round(v, 4) if isinstance(v, float) else v
                             for k, v in record.items()})
    os.replace(tmp, path)
