"""Published numbers (configs/reported.yaml, schema workflow/schemas/reported.schema.yaml).

Each entry names its source; ``value: null`` (or no entry at all) is shown as "not recorded".
Numbers are never filled in by code: only what the file states is shown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ghuda.config import ConfigError
from ghuda.pipeline.config import load_yaml, validate_schema

NOT_RECORDED = "not recorded"
AVG = "avg"


@dataclass(frozen=True)
class Reported:
    value: float | None
    source: str | None
    citation: str | None
    backbone: str | None
    metric: str
    note: str | None = None


class ReportedNumbers:
    """Lookup of published numbers by (dataset, method, variant, task)."""

    def __init__(self, data: dict[str, Any], origin: str = "reported") -> None:
        self.origin = origin
        self.datasets: dict[str, dict[str, Any]] = data.get("datasets") or {}
        self.sources: dict[str, dict[str, Any]] = data["sources"]
        self._entries: dict[tuple[str, str, str, str], Reported] = {}
        for i, e in enumerate(data["entries"]):
            if e["source"] not in self.sources:
                raise ConfigError(f"{origin}: entries/{i} names source {e['source']!r}, which "
                                  f"is not under 'sources' (have {sorted(self.sources)})")
            key = (e["dataset"], e["method"], e["variant"], e["task"])
            if key in self._entries:
                raise ConfigError(f"{origin}: entries/{i} repeats {key}")
            self._entries[key] = Reported(
                value=e["value"], source=e["source"],
                citation=self.sources[e["source"]]["citation"], backbone=e.get("backbone"),
                metric=e.get("metric", "acc"), note=e.get("note"))

    def published(self, dataset: str) -> bool:
        """False when the dataset cannot have published numbers (e.g. digits-mini)."""
        return bool(self.datasets.get(dataset, {}).get("published", True))

    def dataset_note(self, dataset: str) -> str | None:
        return self.datasets.get(dataset, {}).get("note")

    def get(self, dataset: str, method: str, variant: str, task: str) -> Reported | None:
        return self._entries.get((dataset, method, variant, task))

    def value(self, dataset: str, method: str, variant: str, task: str) -> float | None:
        entry = self.get(dataset, method, variant, task)
        return None if entry is None else entry.value

    def entries(self) -> list[tuple[tuple[str, str, str, str], Reported]]:
        return list(self._entries.items())


def load_reported(path: str | os.PathLike[str]) -> ReportedNumbers:
    """Read and validate a reported-numbers file."""
    path = Path(path)
    data = load_yaml(path)
    validate_schema(data, source=str(path), schema="reported.schema.yaml", fill_defaults=False)
    return ReportedNumbers(data, origin=str(path))
