"""The typed result every theory check returns, and the reduction of violations to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

HOLDS, FAILS, NOT_RUN = "holds", "fails", "not run"


@dataclass(frozen=True)
class CheckResult:
    """One part of one property check.

    `max_violation` is in the property's unit (`unit`); a case violates the property when its
    violation exceeds its tolerance (described in `tolerance`). `cases == 0` means the part did
    not run, and `note` says why.
    """

    key: str
    statement: str
    part: str
    subject: str
    unit: str
    tolerance: str
    cases: int
    violating: int
    max_violation: float
    worst: str = ""
    note: str = ""

    @property
    def violating_fraction(self) -> float:
        return self.violating / self.cases if self.cases else float("nan")

    @property
    def verdict(self) -> str:
        if self.cases == 0:
            return NOT_RUN
        return FAILS if self.violating else HOLDS


@dataclass(frozen=True)
class Spec:
    """What a property is: its key, statement, unit and tolerance text (shared by its parts)."""

    key: str
    statement: str
    unit: str
    tolerance: str


def summarise(spec: Spec, part: str, subject: str, violation: np.ndarray,
              tol: np.ndarray | float, describe: Callable[[int], str], note: str = ""
              ) -> CheckResult:
    """Reduce per-case violations to a `CheckResult`.

    NaN violations (a property that cannot be evaluated on a valid case, e.g. a harmonizer
    that raised or returned NaN) count as infinite. The worst case is the one with the largest
    violation relative to its own tolerance.
    """
    v = np.asarray(violation, dtype=np.float64).ravel()
    v = np.where(np.isnan(v), np.inf, v)
    tol_arr = np.broadcast_to(np.asarray(tol, dtype=np.float64), v.shape)
    if v.size == 0:
        return not_run(spec, part, subject, note or "no cases")
    bad = v > tol_arr
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(tol_arr > 0, v / tol_arr, np.where(v > 0, np.inf, 0.0))
    worst = int(np.argmax(ratio))
    return CheckResult(key=spec.key, statement=spec.statement, part=part, subject=subject,
                       unit=spec.unit, tolerance=spec.tolerance, cases=int(v.size),
                       violating=int(bad.sum()), max_violation=float(v.max()),
                       worst=describe(worst), note=note)


def not_run(spec: Spec, part: str, subject: str, why: str) -> CheckResult:
    """A part that could not run (missing harmonizer, no logged runs): says why."""
    return CheckResult(key=spec.key, statement=spec.statement, part=part, subject=subject,
                       unit=spec.unit, tolerance=spec.tolerance, cases=0, violating=0,
                       max_violation=float("nan"), note=why)
