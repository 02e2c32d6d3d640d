"""Run-folder files (docs/run-outputs.md): atomic writes, history.jsonl, provenance, metrics.

Every file is written to a temporary name in the same folder and renamed into place, so a
killed run never leaves a partial file under the final name; ``metrics.json`` is written last.
`History` appends JSON lines and can truncate back to a byte offset recorded in a checkpoint,
so a resumed run rewrites exactly the lines it lost.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
VERSIONED_PACKAGES = ("torch", "torchvision", "numpy", "ghuda")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def finite(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(finite(value), allow_nan=False)


def write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(finite(value), indent=2, allow_nan=False) + "\n")


class History:
    """Append-only ``history.jsonl`` with flush after every record."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        mode = "r+b" if path.exists() else "w+b"
        self._fh = open(path, mode)  # noqa: SIM115 - closed by close()
        size = self._fh.seek(0, os.SEEK_END)
        if size < offset:
            self._fh.close()
            raise RuntimeError(f"{path} has {size} bytes but the checkpoint expects at least "
                               f"{offset}; the run folder was modified. Start over with --fresh")
        self._fh.truncate(offset)
        self._fh.seek(offset)

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write((dumps(record) + "\n").encode())
        self._fh.flush()

    def offset(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()


def read_history(path: Path) -> Iterator[dict[str, Any]]:
    with open(path) as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def provenance(config_sha256: str, device: str, seed: int) -> dict[str, Any]:
    """Git commit and dirty flag of the source tree, versions, host, start time."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status),
            "config_sha256": config_sha256, "versions": versions, "device": device,
            "hostname": socket.gethostname(),
            "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "seed": seed}


def conflict_summary(train_records: list[dict[str, Any]]) -> dict[str, Any]:
    """Conflict statistics over the logged steps (every harmonized pair, and per pair)."""
    per_pair: dict[str, list[dict[str, Any]]] = {}
    logged: set[int] = set()  # steps (a multi-stage method logs several records per step)
    for record in train_records:
        if record.get("pairs"):
            logged.add(record["step"])
        for p in record.get("pairs", []):
            per_pair.setdefault(f"{p['first']}|{p['second']}", []).append(p)

    def summarize(stats: list[dict[str, Any]]) -> dict[str, Any]:
        cos = [s["cos"] for s in stats if s.get("cos") is not None]
        flags = [bool(s["conflict"]) for s in stats if s.get("conflict") is not None]
        return {"fraction_conflicting": sum(flags) / len(flags) if flags else None,
                "mean_cos": sum(cos) / len(cos) if cos else None, "observations": len(cos)}

    everything = summarize([s for stats in per_pair.values() for s in stats])
    return {"pairs": list(per_pair),
            "fraction_conflicting": everything["fraction_conflicting"],
            "mean_cos": everything["mean_cos"], "logged_steps": len(logged),
            "per_pair": {name: summarize(stats) for name, stats in per_pair.items()}}
