"""What a run folder's results came from, and the checks before resuming or skipping it.

A run records its configuration three ways (``config.yaml``, the config sha256 in
``metrics.json`` provenance and in the checkpoint) and the data it read once (its fingerprint,
`ghuda.data.fingerprint`, in the same two places). Before a run continues from a checkpoint or
answers "complete", the folder must still describe the command: `check_config` compares the
folder's ``config.yaml`` with the resolved config and names the differing keys; `check_data`
compares a recorded data fingerprint with the data now on disk and names the differing files.
A folder written before fingerprints were recorded has none: that is "not recorded", never a
mismatch, so that existing completed runs are not retrained.

`completed_metrics` and `prepare_folder` are the two looks at a folder that every kind of run
(`ghuda.engine.trainer`, `ghuda.extensions.loop`) takes, under the folder's lock, before it
trains: "is this run already complete?" and "where does it start?".
"""

from __future__ import annotations

from typing import Any

import yaml

from ghuda import config as config_mod
from ghuda.engine import checkpoint as ckpt
from ghuda.runs import RunFolder, RunFolderError

FRESH = "pass --fresh to discard it and train again"


def data_fingerprint(cfg: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint of the data a run of `cfg` reads (its source and target domains)."""
    from ghuda import data

    ds = cfg["dataset"]
    return data.fingerprint(ds["name"], (ds["source"], ds["target"]), ds["root"])


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_config(folder: RunFolder, cfg: dict[str, Any], sha: str,
                 recorded_sha: str | None = None) -> None:
    """Raise RunFolderError when the folder's ``config.yaml`` (if any) differs from `cfg`, or
    its results were recorded under another config sha256 (`recorded_sha`)."""
    differing: list[tuple[str, Any, Any]] = []
    if folder.config.is_file():
        try:
            recorded = yaml.safe_load(folder.config.read_text())
        except (OSError, yaml.YAMLError) as err:
            raise RunFolderError(f"{folder.config} is unreadable ({type(err).__name__}); "
                                 f"{FRESH}") from None
        if not isinstance(recorded, dict):
            raise RunFolderError(f"{folder.config} is not a config mapping; {FRESH}")
        differing = config_mod.differences(recorded, cfg)
    what = "a run" if recorded_sha is None else "a completed run"
    if differing:
        keys = "; ".join(f"{key}: {_short(old)} in the folder, {_short(new)} now"
                         for key, old, new in differing[:5])
        more = f" (and {len(differing) - 5} more keys)" if len(differing) > 5 else ""
        raise RunFolderError(
            f"{folder.out} holds {what} of a different configuration: its config.yaml differs "
            f"from this command's in {keys}{more}. Choose another --out, or {FRESH}.")
    if recorded_sha is not None and recorded_sha != sha:
        raise RunFolderError(
            f"{folder.out} holds a completed run of a different configuration (sha256 "
            f"{str(recorded_sha)[:12]}..., now {sha[:12]}...; its config.yaml was edited to "
            f"match). Choose another --out, or {FRESH}.")


def data_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of what differs between two data fingerprints: the dataset, its manifest, files."""
    out = [] if recorded.get("dataset") == current["dataset"] else ["dataset"]
    if recorded.get("manifest_sha256") != current["manifest_sha256"]:
        out.append("manifest.json")
    old, new = recorded.get("files") or {}, current["files"]
    out.extend(sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name)))
    return out


def check_data(recorded: dict[str, Any] | None, current: dict[str, Any], where: str,
               error: type[Exception] = RunFolderError) -> None:
    """Raise `error` when the data fingerprint recorded in `where` (a file) is not `current`;
    None (recorded before fingerprints existed) passes."""
    if recorded is None:
        return
    differing = data_differences(recorded, current)
    if differing:
        raise error(
            f"{where} was written by a run that read other data: {', '.join(differing)} of "
            f"{current['dataset']} differ from what it recorded. Put that data back (e.g. "
            f"rebuild it as it was), or {FRESH} on the data now in place.")


def completed_metrics(folder: RunFolder, cfg: dict[str, Any], sha: str) -> dict[str, Any] | None:
    """The ``metrics.json`` of a completed run of `cfg` (config hash `sha`) in `folder`, or None
    when it holds no completed run. An unreadable one, or one of another config (also one whose
    ``config.yaml`` was edited to match), is a RunFolderError: never overwritten silently."""
    if not folder.metrics.exists():
        return None
    try:
        metrics = folder.read_metrics()
        recorded = metrics["provenance"]["config_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise RunFolderError(f"{folder.metrics} is unreadable ({err}); delete it or pass "
                             "--fresh") from None
    check_config(folder, cfg, sha, recorded_sha=recorded)
    return metrics


def prepare_folder(folder: RunFolder, cfg: dict[str, Any], sha: str,
                   fresh: bool) -> dict[str, Any] | None:
    """Create `folder` and drop half-written temporaries; with `fresh`, delete its files. Else
    check its ``config.yaml`` against `cfg` and return its checkpoint's state (written for
    config hash `sha`; `ghuda.engine.checkpoint.load`), or None when it has none."""
    folder.out.mkdir(parents=True, exist_ok=True)
    folder.remove_temporaries()
    if fresh:
        for path in folder.all():
            path.unlink(missing_ok=True)
        return None
    check_config(folder, cfg, sha)
    if not folder.checkpoint.exists():
        return None
    return ckpt.load(folder.checkpoint, sha)
