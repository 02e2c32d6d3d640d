"""The run folder as code (docs/run-outputs.md): its files, schema version, writers, readers.

The engine writes a run folder, the report and the theory checks read it; all of them spell its
file names, JSON handling and atomic writes through this module only.

Writes are atomic: a temporary sibling is written, flushed to disk and renamed into place, so a
killed process never leaves a partial file under the final name (``metrics.json`` is written
last by the engine). `History` appends JSON lines and can truncate back to a byte offset
recorded in a checkpoint, so a resumed run rewrites exactly the lines it lost.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

SCHEMA_VERSION = 1
METRICS, HISTORY, CONFIG = "metrics.json", "history.jsonl", "config.yaml"
CHECKPOINT, FEATURES, FAILURE = "checkpoint.pt", "features.npz", "failure.json"
LOCK = "run.lock"
TMP_INFIX = ".tmp"  # atomic writes: .<name>.tmp<pid>

PathLike = str | os.PathLike[str]


class RunFormatError(ValueError):
    """A run folder's file is missing or malformed; the message names the file (and line)."""


class RunFolderError(RuntimeError):
    """The output folder holds a run that this command must not overwrite, or is a file."""


class RunFolderBusy(RunFolderError):
    """Another process holds the run folder's lock."""


class RunFolder:
    """The files of one run folder, and typed readers of them."""

    def __init__(self, out: PathLike) -> None:
        self.out = Path(out)
        self.metrics = self.out / METRICS
        self.history = self.out / HISTORY
        self.config = self.out / CONFIG
        self.checkpoint = self.out / CHECKPOINT
        self.features = self.out / FEATURES
        self.failure = self.out / FAILURE
        self.lock_file = self.out / LOCK

    def all(self) -> tuple[Path, ...]:
        """Every file a run writes (the lock file aside: it outlives them)."""
        return (self.metrics, self.history, self.config, self.checkpoint, self.features,
                self.failure)

    def check_is_folder(self) -> None:
        """The run folder must be a folder (or not exist yet, under an existing folder)."""
        for path in (self.out, *self.out.parents):
            if path.is_dir():
                return
            if path.exists():
                what = "--out" if path == self.out else f"--out {self.out}: its parent"
                raise RunFolderError(f"{what} {path} is an existing file, not a folder; "
                                     "choose a folder path for the run (it is created if "
                                     "missing). Nothing was written.")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder (created if missing) for the block.

        ``flock`` on `LOCK` inside the folder: the OS releases it when the process ends, however
        it ends, so a killed run never leaves a stale lock. A second holder gets `RunFolderBusy`.
        The lock file stays in place (deleting a lock file races with its next opener).
        """
        self.check_is_folder()
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise RunFolderBusy(
                    f"{self.out} is in use by another process (it holds {self.lock_file}); "
                    "wait for that run to end, or choose another --out. Nothing was written."
                ) from None
            yield
        finally:
            os.close(fd)

    def remove_temporaries(self) -> None:
        """Delete temporary files that a killed writer left (`atomic_path`'s); call it only
        while holding the lock, when no writer can be running."""
        for path in self.out.glob(f".*{TMP_INFIX}*"):
            path.unlink(missing_ok=True)

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json (a completed or diverged run)."""
        return read_json(self.metrics)

    def read_history(self) -> Iterator[dict[str, Any]]:
        """history.jsonl records, in order; a malformed line is an error naming it."""
        if not self.history.exists():
            raise FileNotFoundError(f"{self.history}: missing")
        return read_jsonl(self.history)

    def harmonizer(self) -> tuple[str, dict[str, Any]] | None:
        """(name, options) of the run's harmonizer, from metrics.json, else config.yaml."""
        try:
            if self.metrics.is_file():
                info = json.loads(self.metrics.read_text()).get("run", {})
                if "harmonizer" in info:
                    return str(info["harmonizer"]), dict(info.get("harmonizer_options") or {})
            if self.config.is_file():
                h = (yaml.safe_load(self.config.read_text()) or {}).get("harmonizer") or {}
                if "name" in h:
                    return str(h["name"]), dict(h.get("options") or {})
        except (json.JSONDecodeError, yaml.YAMLError, AttributeError) as err:
            raise RunFormatError(f"{self.out}: cannot read the run's harmonizer: {err}"
                                 ) from err
        return None


def find_run_folders(root: PathLike) -> list[Path]:
    """Run folders (those holding a history.jsonl) under `root`, sorted."""
    return sorted({p.parent for p in Path(root).rglob(HISTORY)})


# ------------------------------------------------------------------ atomic writes
@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path` (named after it and the process, so that formats
    that record the file name, e.g. gzip, stay deterministic within a process); on success
    it is synced to disk and replaces `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_INFIX}{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_with(path: PathLike, writer: Callable[[Path], Any]) -> None:
    """Call ``writer(tmp_path)`` and move the result into place atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: PathLike, text: str) -> None:
    """Write `text` atomically (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


# ------------------------------------------------------------------ JSON
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


def write_json(path: PathLike, value: Any) -> None:
    write_text(path, json.dumps(finite(value), indent=2, allow_nan=False) + "\n")


def read_json(path: PathLike) -> dict[str, Any]:
    """Read a JSON object; errors name the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing") from None
    except json.JSONDecodeError as err:
        raise RunFormatError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise RunFormatError(f"{path}: expected a JSON object")
    return data


def read_jsonl(path: PathLike) -> Iterator[dict[str, Any]]:
    """Yield the objects of a JSON-lines file; a malformed line (crash) is an error."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as err:
                raise RunFormatError(f"{path}:{lineno}: not valid JSON: {err}") from None


class History:
    """Append-only ``history.jsonl`` with flush after every record."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        mode = "r+b" if path.exists() else "w+b"
        self._fh = open(path, mode)  # noqa: SIM115 - closed by close()
        size = self._fh.seek(0, os.SEEK_END)
        if size < offset:
            self._fh.close()
            raise RunFolderError(f"{path} has {size} bytes but the checkpoint expects at "
                                 f"least {offset}; the run folder was modified. Start over "
                                 "with --fresh")
        self._fh.truncate(offset)
        self._fh.seek(offset)

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write((dumps(record) + "\n").encode())
        self._fh.flush()

    def offset(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()
