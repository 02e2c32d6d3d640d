"""Pair statistics logged by training runs (docs/run-outputs.md: history.jsonl).

A run logs, per step and per harmonized pair, ``cos``, ``norm1``, ``norm2``, ``w1`` and ``w2``
— not the gradients. The properties of GH and GH++ depend only on the geometry of span(g1, g2),
so a 2-D pair with the same angle and norms is an exact stand-in: the shipped harmonizers are
re-run on it. The logged weights are also compared with the closed form of the run's own
harmonizer (from metrics.json ``run.harmonizer``, else config.yaml ``harmonizer.name``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ghuda.runs import RunFolder, RunFormatError, find_run_folders
from ghuda.theory import reference
from ghuda.theory.geometry import Pairs, make_pairs, rounding_tolerance, tolerance_text
from ghuda.theory.result import CheckResult, Spec, not_run, summarise

WEIGHT_TOL, WEIGHT_POWER = 1e-9, 2  # GH++ weights come from theta = acos(cos)
WEIGHT_SPEC = Spec(key="L", statement="logged w1, w2 equal the closed form of the run's "
                   "harmonizer (docs/theory.md)", unit="rel",
                   tolerance=tolerance_text(WEIGHT_TOL, WEIGHT_POWER))


@dataclass
class Logged:
    """All logged pairs of the runs found, one entry per (run, step, pair)."""

    runs: list[Path] = field(default_factory=list)
    run_index: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)
    cos: list[float] = field(default_factory=list)
    norm1: list[float] = field(default_factory=list)
    norm2: list[float] = field(default_factory=list)
    w1: list[float] = field(default_factory=list)
    w2: list[float] = field(default_factory=list)
    harmonizer: list[tuple[str, dict[str, object]] | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cos)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(getattr(self, k), dtype=np.float64)
                for k in ("cos", "norm1", "norm2", "w1", "w2")}


def find_runs(dirs: list[Path]) -> list[Path]:
    """Run folders (those holding a history.jsonl) under each directory, sorted."""
    for d in dirs:
        if not d.is_dir():
            raise FileNotFoundError(f"--runs {d}: no such directory")
    return sorted({run for d in dirs for run in find_run_folders(d)})


_PAIR_KEYS = ("cos", "norm1", "norm2")


def load(runs: list[Path]) -> Logged:
    """Read every train record's pairs; a malformed line is an error naming file and line."""
    out = Logged(runs=list(runs))
    for k, run in enumerate(runs):
        folder = RunFolder(run)
        harmonizer, path = folder.harmonizer(), folder.history
        for lineno, rec in enumerate(folder.read_history(), start=1):
            if rec.get("kind") != "train":
                continue
            for pair in rec.get("pairs") or []:
                missing = [key for key in _PAIR_KEYS if not isinstance(pair.get(key), int | float)]
                if missing:
                    raise RunFormatError(f"{path}:{lineno}: pair lacks numeric {missing} "
                                         "(docs/run-outputs.md)")
                out.run_index.append(k)
                out.step.append(int(rec.get("step", -1)))
                out.harmonizer.append(harmonizer)
                for key in _PAIR_KEYS:
                    getattr(out, key).append(float(pair[key]))
                for key in ("w1", "w2"):
                    value = pair.get(key)
                    getattr(out, key).append(np.nan if value is None else float(value))
    return out


def conflicting_pairs(logged: Logged, cap: int, seed: int) -> tuple[Pairs, str]:
    """2-D stand-ins of the conflicting logged pairs (nonzero norms); at most `cap`, sampled."""
    a = logged.arrays()
    keep = np.flatnonzero((a["cos"] < 0) & (a["norm1"] > 0) & (a["norm2"] > 0))
    note = f"{keep.size} conflicting of {len(logged)} logged pairs in {len(logged.runs)} run(s)"
    if keep.size > cap:
        keep = np.sort(np.random.default_rng(seed).choice(keep, cap, replace=False))
        note += f"; {cap} sampled"
    theta = np.degrees(np.arccos(np.clip(a["cos"][keep], -1.0, 1.0)))
    return make_pairs(theta, a["norm1"][keep], a["norm2"][keep], dim=2, seed=seed), note


def weights_part(logged: Logged, why_empty: str) -> CheckResult:
    """Logged (w1, w2) against the closed form of each run's harmonizer."""
    part = "logged runs"
    if not len(logged):
        return not_run(WEIGHT_SPEC, part, "logged w1, w2", why_empty)
    a = logged.arrays()
    idx, skipped = [], set()
    formulas = []
    for i, h in enumerate(logged.harmonizer):
        formula = None if h is None else reference.weights_for(*h)
        if formula is None or np.isnan(a["w1"][i]) or a["norm1"][i] == 0 or a["norm2"][i] == 0:
            skipped.add("unknown" if h is None else h[0])
            continue
        idx.append(i)
        formulas.append(formula)
    if not idx:
        return not_run(WEIGHT_SPEC, part, "runs", "no logged pair has weights with a closed form"
                       f" (harmonizers: {sorted(skipped)})")
    v = np.empty(len(idx))
    ref = np.empty((len(idx), 2))
    for j, (i, formula) in enumerate(zip(idx, formulas, strict=True)):
        ref[j] = [float(r) for r in formula(a["cos"][i], a["norm1"][i], a["norm2"][i])]
        v[j] = max(abs(a["w1"][i] - ref[j, 0]) / max(1.0, abs(ref[j, 0])),
                   abs(a["w2"][i] - ref[j, 1]) / max(1.0, abs(ref[j, 1])))
    sin = np.sqrt(np.maximum(0.0, 1.0 - a["cos"][idx] ** 2))
    tol = rounding_tolerance(WEIGHT_TOL, sin, WEIGHT_POWER)

    def describe(j: int) -> str:
        i = idx[j]
        name, options = logged.harmonizer[i]  # type: ignore[misc]
        return (f"{logged.runs[logged.run_index[i]]} step {logged.step[i]} ({name} {options}): "
                f"logged w = ({a['w1'][i]:.6g}, {a['w2'][i]:.6g}), formula "
                f"({ref[j, 0]:.6g}, {ref[j, 1]:.6g})")

    names = sorted({logged.harmonizer[i][0] for i in idx})  # type: ignore[index]
    note = f"harmonizers {', '.join(names)}" + (
        f"; skipped pairs of {sorted(skipped)} (no closed form or no weights)" if skipped else "")
    bad_runs = sorted({str(logged.runs[logged.run_index[idx[j]]])
                       for j in np.flatnonzero(v > tol)})
    if bad_runs:
        note += f"; mismatching run(s): {', '.join(bad_runs[:5])}" + (
            f" and {len(bad_runs) - 5} more" if len(bad_runs) > 5 else "")
    return summarise(WEIGHT_SPEC, part, "logged w1, w2", v, tol, describe, note=note)
