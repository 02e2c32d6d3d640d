"""The content of metrics.json (docs/run-outputs.md): run identity, protocols, conflict
summary, cost, provenance. The files themselves are `ghuda.runs`'."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from ghuda import config as config_mod
from ghuda.engine.evaluate import protocol_names, protocols
from ghuda.engine.step import NonFiniteLoss
from ghuda.runs import SCHEMA_VERSION

VERSIONED_PACKAGES = ("torch", "torchvision", "numpy", "ghuda")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_commit() -> str | None:
    """HEAD of the checkout holding ghuda's source, None outside one (run provenance)."""
    return _git("rev-parse", "HEAD")


def machine_description() -> str:
    """CPU model, logical CPU count and OS of this machine (benchmark provenance)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}; {os.cpu_count()} logical CPUs; {platform.system()} {platform.release()}"


def provenance(config_sha256: str, device: str, seed: int, data: dict[str, Any]
               ) -> dict[str, Any]:
    """Git commit and dirty flag of the source tree, versions, host, start time, and the
    fingerprint of the data read (`ghuda.data.fingerprint`)."""
    commit = git_commit()
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
            "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "seed": seed,
            "data": data}


def failure_record(err: NonFiniteLoss, config_sha256: str) -> dict[str, Any]:
    """failure.json's content (and metrics.json's ``failure``) for a non-finite loss."""
    return {"schema": SCHEMA_VERSION, "kind": "non_finite", "iteration": err.iteration,
            "stage": err.stage, "what": err.what, "message": str(err),
            "config_sha256": config_sha256}


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


def run_identity(cfg: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """metrics.json ``run``: what was trained (dataset, task, method, harmonizer, seed...)."""
    ds, t = cfg["dataset"], cfg["train"]
    return {"dataset": ds["name"], "source": ds["source"], "target": ds["target"],
            "task": f"{ds['source']}->{ds['target']}", "method": cfg["method"]["name"],
            "harmonizer": cfg["harmonizer"]["name"],
            "harmonizer_options": cfg["harmonizer"]["options"],
            "variant": config_mod.variant(cfg), "seed": t["seed"],
            "backbone": cfg["model"]["backbone"], "steps": t["steps"],
            "selection_metric": t["selection_metric"], "num_classes": num_classes}


def metrics_document(cfg: dict[str, Any], num_classes: int, history: list[dict[str, Any]],
                     cost: dict[str, Any], prov: dict[str, Any],
                     failure: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole metrics.json of a completed run, or with `failure` of a diverged one:
    status ``diverged``, the failure, no accuracy under any protocol (the final iterate is not
    finite; an earlier evaluation would select a model the run did not end with)."""
    evals = [r for r in history if r["kind"] == "eval"]
    train = [r for r in history if r["kind"] == "train"]
    if failure is None:
        block = protocols(evals, cfg["train"]["selection_metric"])
    else:
        selection = f"none: the run diverged at iteration {failure['iteration']}"
        block = {name: {"acc": None, "mean_class_acc": None, "step": None,
                        "selection": selection} for name in protocol_names()}
    return document(run_identity(cfg, num_classes), block, train, cost, prov, failure)


def document(run: dict[str, Any], protocols_block: dict[str, Any],
             train_records: list[dict[str, Any]], cost: dict[str, Any], prov: dict[str, Any],
             failure: dict[str, Any] | None = None) -> dict[str, Any]:
    """A metrics.json of any run (a UDA method or an extension task): the schema version,
    what was trained, status, the protocols block, the conflict summary
    of the train records, cost, provenance, and the failure of a diverged run."""
    out = {"schema": SCHEMA_VERSION, "run": run,
           "status": "completed" if failure is None else "diverged",
           "protocols": protocols_block, "conflict": conflict_summary(train_records),
           "cost": cost, "provenance": prov}
    if failure is not None:
        out["failure"] = failure
    return out
