"""File checksums checked at load, cheaply: sha256 cached per file, keyed by its stat.

A dataset's manifest records the sha256 of each of its files; `verified_sha256` checks a file
against it every time the file is read. Hashing is paid once per file version: the digest is
cached in ``<data root>/.checksums/<dataset>.json`` under the file's size, mtime and ctime
(any write, copy or rename over the file changes one of them), so later loads cost one
``stat``. The cache lives outside the dataset folder (a DVC output) and is only an
accelerator: an unwritable data root or a damaged cache file just means hashing again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CACHE_DIR = ".checksums"


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _cache_file(dataset_dir: Path) -> Path:
    return dataset_dir.parent / CACHE_DIR / f"{dataset_dir.name}.json"


def _read_cache(cache: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_sha256(path: Path) -> str:
    """sha256 of `path` (a file directly inside a dataset folder), from the cache when the
    file's size, mtime and ctime are those recorded with it, else hashed and cached."""
    cache = _cache_file(path.parent)
    entries = _read_cache(cache)
    stamp = _stamp(path)
    entry = entries.get(path.name)
    if isinstance(entry, dict) and entry.get("stat") == stamp and "sha256" in entry:
        return str(entry["sha256"])
    digest = sha256_file(path)
    entries[path.name] = {"stat": stamp, "sha256": digest}
    tmp = cache.with_name(f".{cache.name}.tmp{os.getpid()}")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, cache)
    except OSError:  # a read-only data root: no cache, same answer
        tmp.unlink(missing_ok=True)
    return digest
