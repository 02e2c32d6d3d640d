"""`ghuda data info`: what each dataset is, its sizes, sources, and whether it is on disk."""

from __future__ import annotations

import json
import os

from ghuda.data import registry
from ghuda.data.api import MANIFEST, dataset_dir


def _sizes(name: str, root: str | os.PathLike[str] | None) -> dict[str, dict[str, int]]:
    """Per-domain counts: the local manifest when present, else the recipe's expectations."""
    manifest = dataset_dir(name, root) / MANIFEST
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        if name == "digits_mini":
            return {d: {"all": e["count"]} for d, e in data["domains"].items()}
        return data["counts"]
    if name == "digits_mini":
        return {}
    from ghuda.data.fetch import Recipe

    return Recipe.load(name).counts


def describe(dataset: str | None = None, root: str | os.PathLike[str] | None = None) -> str:
    names = [registry.spec(dataset).name] if dataset else list(registry.SPECS)
    lines = []
    for name in names:
        s = registry.spec(name)
        path = dataset_dir(name, root)
        status = "present" if (path / MANIFEST).is_file() else "missing"
        lines.append(f"{s.name}: {s.title}, {len(registry.class_names(name))} classes, "
                     f"{status} at {path}")
        for domain, parts in _sizes(name, root).items():
            lines.append(f"  {domain:<12} " + ", ".join(f"{p} {n}" for p, n in parts.items()))
        if name != "digits_mini":
            from ghuda.data.fetch import Recipe

            for a in Recipe.load(name).archives:
                ck = (f"{a.checksum['algorithm']} known ({a.checksum['source']})" if a.checksum
                      else "checksum unknown")
                lines.append(f"  file {a.file}: {a.urls[0]}; {ck}")
        if status == "missing":
            lines.append(f"  get it: {s.obtain.format(dir=path)}")
    return "\n".join(lines)
