"""Random-sampling, adversarial and logged-run parts of the pair-level property checks.

`sampled_part` evaluates a property on a fixed set of cases (random pairs or pairs rebuilt from
training logs); `adversarial_part` searches for its worst case with scipy's differential
evolution over (theta, log10 |g2|/|g1|, log10 |g1|, log10 dim <= 3[, t]), then polishes the best
point with bounded Nelder-Mead. Every evaluation of the search counts as a case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ghuda.theory.geometry import Outputs, Pairs, Subject, evaluate, make_pairs
from ghuda.theory.properties import Property
from ghuda.theory.result import CheckResult, Spec, not_run, summarise
from ghuda.theory.subjects import label, missing_note

# The properties are rotation invariant; the random part covers dimensions up to 10^4, the
# search goes up to 10^3 (each evaluation builds a random frame of that dimension).
MAX_LOG_DIM = 3.0
# Angle bounds of the search, as close to the ends as the random sampling goes (1e-4 deg): nearer
# to 180 deg, float64 cannot resolve theta = acos(cos) (the allowance 64 eps/sin^2 exceeds 1e-3).
# The exact ends are the degenerate cases of `degenerate_part`.
THETA_BOUNDS = {"conflict": (90.0 + 1e-4, 180.0 - 1e-4), "aligned": (0.0, 90.0 - 1e-4)}


@dataclass(frozen=True)
class SearchBudget:
    """Differential-evolution generations and population factor, Nelder-Mead evaluations."""

    generations: int = 8
    popsize: int = 6
    polish_evals: int = 40


def violations(prop: Property, outs: list[Outputs]) -> tuple[np.ndarray, np.ndarray]:
    """(violation, tolerance) per case; NaN violation where any harmonizer failed."""
    failed = np.logical_or.reduce([o.failed for o in outs])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        v = prop.violation(*outs)
        tol = prop.tolerance(outs[0])
    return np.where(failed, np.nan, v), tol


def _errors_note(outs: list[Outputs]) -> str:
    errors = [e for o in outs for e in o.errors]
    failed = int(np.logical_or.reduce([o.failed for o in outs]).sum())
    if not failed:
        return ""
    return f"{failed} case(s) raised or returned non-finite values" + (
        f" (e.g. {errors[0]})" if errors else "")


@dataclass(frozen=True)
class Sampled:
    """A sampled part with the per-case data behind it (for explaining a failure)."""

    result: CheckResult
    outs: list[Outputs]
    violation: np.ndarray
    tolerance: np.ndarray


def sampled(prop: Property, outputs: dict[str, Outputs], part: str,
            subjects: dict[str, Subject]) -> Sampled:
    """The property on precomputed outputs (same cases for every harmonizer it needs)."""
    why = missing_note(prop.subjects, subjects)
    if why:
        empty = np.zeros(0)
        return Sampled(not_run(prop.spec, part, label(prop.subjects, subjects), why), [],
                       empty, empty)
    outs = [outputs[k] for k in prop.subjects]
    v, tol = violations(prop, outs)
    result = summarise(prop.spec, part, label(prop.subjects, subjects), v, tol,
                       outs[0].describe, note=_errors_note(outs))
    return Sampled(result, outs, v, tol)


def sampled_part(prop: Property, outputs: dict[str, Outputs], part: str,
                 subjects: dict[str, Subject]) -> CheckResult:
    return sampled(prop, outputs, part, subjects).result


def adversarial_part(prop: Property, subjects: dict[str, Subject], seed: int,
                     budget: SearchBudget) -> CheckResult:
    """Worst case of `prop` found by scipy.optimize (differential evolution + Nelder-Mead)."""
    part = "adversarial"
    why = missing_note(prop.subjects, subjects)
    if why:
        return not_run(prop.spec, part, label(prop.subjects, subjects), why)
    takes_t = any(subjects[k].takes_t for k in prop.subjects)
    bounds = [THETA_BOUNDS[prop.domain], (-3.0, 3.0), (-4.0, 4.0), (np.log10(2.0), MAX_LOG_DIM)]
    bounds += [(0.0, 1.0)] if takes_t else []
    records: list[tuple[float, float, str]] = []

    def objective(x: np.ndarray) -> float:
        pairs = make_pairs(theta_deg=x[0], norm1=10.0 ** x[2], norm2=10.0 ** (x[2] + x[1]),
                           dim=round(10.0 ** x[3]), t=x[4] if takes_t else 0.5, seed=seed)
        outs = [evaluate(subjects[k], pairs) for k in prop.subjects]
        v, tol = violations(prop, outs)
        records.append((float(v[0]), float(tol[0]), outs[0].describe(0)))
        score = prop.search(*outs)[0] if prop.search is not None else v[0] / tol[0]
        return -1e300 if not np.isfinite(score) else -float(score)

    best = optimize.differential_evolution(
        objective, bounds, seed=seed, maxiter=budget.generations, popsize=budget.popsize,
        tol=0.0, atol=-1.0, polish=False, init="sobol")  # atol < 0: run every generation
    optimize.minimize(objective, best.x, method="Nelder-Mead", bounds=bounds,
                      options={"maxfev": budget.polish_evals})
    v = np.array([r[0] for r in records])
    tol = np.array([r[1] for r in records])
    return summarise(prop.spec, part, label(prop.subjects, subjects), v, tol,
                     lambda i: records[i][2])


def evaluate_all(keys: set[str], subjects: dict[str, Subject], pairs: Pairs
                 ) -> dict[str, Outputs]:
    """Outputs of every available harmonizer in `keys` on the same pairs."""
    return {k: evaluate(subjects[k], pairs) for k in sorted(keys) if k in subjects}


DEGENERATE_SPEC = Spec(key="G3", statement="degenerate pairs give finite outputs (θ = 180° or 90° "
                       "exactly, zero gradients, norms 1e±150)", unit="failed cases",
                       tolerance="0")


def degenerate_pairs(seed: int) -> Pairs:
    """Every combination of a degenerate angle, a degenerate norm pair and a dimension."""
    thetas = [180.0, 180.0 - 1e-9, 90.0, 0.0]
    norms = [(0.0, 1.0), (1.0, 0.0), (0.0, 0.0), (1.0, 1.0), (1e-3, 1e3), (1e3, 1e-3),
             (1e-150, 1e150), (1e150, 1e-150), (1e-160, 1.0)]
    grid = [(th, n1, n2, d) for th in thetas for n1, n2 in norms for d in (2, 3, 1000)]
    th, n1, n2, d = (np.array(c) for c in zip(*grid, strict=True))
    return make_pairs(th, n1, n2, dim=d, seed=seed)


def degenerate_part(key: str, subjects: dict[str, Subject], seed: int) -> CheckResult:
    """A harmonizer that raises or returns inf/NaN on a degenerate pair fails (REFERENCE 1.3b:
    the antiparallel case needs a defined, NaN-free fallback)."""
    part = "constructed"
    why = missing_note((key,), subjects)
    if why:
        return not_run(DEGENERATE_SPEC, part, label((key,), subjects), why)
    out = evaluate(subjects[key], degenerate_pairs(seed))
    return summarise(DEGENERATE_SPEC, part, label((key,), subjects),
                     out.failed.astype(np.float64), 0.0, out.describe, note=_errors_note([out]))
