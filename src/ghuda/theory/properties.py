"""The pair-level properties of GH and GH++ (REFERENCE 1.2, 1.3), as violation functions.

Each `Property` names the harmonizers it needs (keys of the subject table built in
`ghuda.theory.subjects`) and maps their `Outputs` on the same cases to one violation per case,
in the property's unit. A case violates the property when its violation exceeds

    tolerance = base + 64 eps / sin(theta)^power

(`geometry.rounding_tolerance`): power 1 for quantities built from d/|g|^2 (GH), power 2 for
those built from theta = acos(cos) (GH++), 0 where nothing cancels; in degrees for angles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ghuda.theory import reference
from ghuda.theory.geometry import (
    Outputs,
    angle,
    dot,
    norm,
    rounding_tolerance,
    tolerance_text,
)
from ghuda.theory.result import Spec

DEFAULT_T = 0.5  # GH++ trade-off used by every released script (REFERENCE 1.3a, 1.5)
DEG = "deg"
REL = "rel"


@dataclass(frozen=True)
class Property:
    """A property checked case by case on the outputs of the harmonizers in `subjects`."""

    spec: Spec
    subjects: tuple[str, ...]
    violation: Callable[..., np.ndarray]
    base: float
    power: int = 1  # of 1/sin(theta) in the rounding allowance
    domain: str = "conflict"  # cases sampled with theta in (90, 180) or, "aligned", [0, 90)
    # What the adversarial search maximises when the violation is flat zero where the property
    # holds (inequalities): a signed margin that keeps improving toward the boundary.
    search: Callable[..., np.ndarray] | None = None

    @property
    def key(self) -> str:
        return self.spec.key

    def tolerance(self, out: Outputs) -> np.ndarray:
        return rounding_tolerance(self.base, np.sin(out.theta), self.power,
                                  degrees=self.spec.unit == DEG)


def prop(key: str, statement: str, subjects: tuple[str, ...],
         violation: Callable[..., np.ndarray], unit: str, base: float, power: int = 1,
         domain: str = "conflict", search: Callable[..., np.ndarray] | None = None
         ) -> Property:
    tol = tolerance_text(base, power, "°" if unit == DEG else "")
    return Property(Spec(key=key, statement=statement, unit=unit, tolerance=tol), subjects,
                    violation, base, power, domain, search)


def trade_off(o: Outputs) -> np.ndarray:
    """The t the subject ran with: the case's t when it takes one, else the default 0.5."""
    return o.pairs.t if o.subject.takes_t else np.full(len(o.pairs), DEFAULT_T)


# ---- violation functions (one value per case; NaN where the harmonizer failed) ----

def orthogonal_to_other(o: Outputs) -> np.ndarray:
    """GH: |<h1, g2>| and |<h2, g1>| relative to |g1||g2|."""
    scale = o.n1 * o.n2
    return np.maximum(np.abs(dot(o.h1, o.g2)), np.abs(dot(o.h2, o.g1))) / scale


def gh_angle(o: Outputs) -> np.ndarray:
    """GH: |angle(h1, h2) - (180° - theta)| in degrees."""
    return np.degrees(np.abs(angle(o.h1, o.h2) - (np.pi - o.theta)))


def gh_deviation(o: Outputs) -> np.ndarray:
    """GH: |angle(h_i, g_i) - (theta - 90°)| for both tasks, in degrees."""
    dev = o.theta - np.pi / 2
    return np.degrees(np.maximum(np.abs(angle(o.h1, o.g1) - dev),
                                 np.abs(angle(o.h2, o.g2) - dev)))


def task_cosines(o: Outputs) -> tuple[np.ndarray, np.ndarray]:
    """cos(update, g1), cos(update, g2); 0 for a zero update (no step conflicts)."""
    nu = norm(o.u)
    with np.errstate(divide="ignore", invalid="ignore"):
        c1 = np.where(nu > 0, dot(o.u, o.g1) / (nu * o.n1), 0.0)
        c2 = np.where(nu > 0, dot(o.u, o.g2) / (nu * o.n2), 0.0)
    return c1, c2


def conflict_with_task(o: Outputs) -> np.ndarray:
    """max(0, -cos(update, g1), -cos(update, g2)): > 0 when the update conflicts with a task."""
    return np.maximum(0.0, smallest_task_cosine(o) * -1.0)


def smallest_task_cosine(o: Outputs) -> np.ndarray:
    """min(cos(update, g1), cos(update, g2)): the margin of the non-conflict property."""
    c1, c2 = task_cosines(o)
    return np.minimum(c1, c2)


def negative_margin(o: Outputs) -> np.ndarray:
    return -smallest_task_cosine(o)


def weights_match(formula: Callable[..., reference.Weights]) -> Callable[[Outputs], np.ndarray]:
    """Relative error of the shipped (w1, w2) against a closed form of (cos, n1, n2, t)."""

    def violation(o: Outputs) -> np.ndarray:
        r1, r2 = formula(np.cos(o.theta), o.n1, o.n2, trade_off(o))
        e1 = np.abs(o.w1 - r1) / np.maximum(1.0, np.abs(r1))
        e2 = np.abs(o.w2 - r2) / np.maximum(1.0, np.abs(r2))
        return np.maximum(e1, e2)

    return violation


def pcgrad_rule(o: Outputs) -> np.ndarray:
    """|update - PCGrad(g1, g2)| / (|g1| + |g2|), PCGrad from its projection rule (numpy)."""
    return norm(o.u - reference.pcgrad_update(o.g1, o.g2)) / (o.n1 + o.n2)


def same_update(a: Outputs, b: Outputs) -> np.ndarray:
    """Distance between two harmonizers' updates on the same cases, relative to |g1| + |g2|.

    In-plane coordinates are shared; the out-of-plane parts are not, so their norms are added
    (an upper bound on the true distance; both are zero for a harmonizer linear in g1, g2).
    """
    plane = norm(a.u[:, :2] - b.u[:, :2])
    off = norm(a.u[:, 2:]) + norm(b.u[:, 2:])
    return (plane + off) / (a.n1 + a.n2)


def rotated_orthogonal(o: Outputs) -> np.ndarray:
    """Exact GH++: |<h1, h2>| / (|g1||g2|)."""
    return np.abs(dot(o.h1, o.h2)) / (o.n1 * o.n2)


def rotated_deviation(o: Outputs) -> np.ndarray:
    """Exact GH++: |angle(h1, g1) - t(theta-90)|, |angle(h2, g2) - (1-t)(theta-90)| in degrees."""
    t = trade_off(o)
    dev = o.theta - np.pi / 2
    return np.degrees(np.maximum(np.abs(angle(o.h1, o.g1) - t * dev),
                                 np.abs(angle(o.h2, o.g2) - (1 - t) * dev)))


def norms_kept(o: Outputs) -> np.ndarray:
    """Exact GH++: | |h_i| / |g_i| - 1 |."""
    return np.maximum(np.abs(norm(o.h1) / o.n1 - 1.0), np.abs(norm(o.h2) / o.n2 - 1.0))


def direction_gap(a: Outputs, b: Outputs) -> np.ndarray:
    """Angle between two harmonizers' update directions, in degrees (rows 0-1 are shared)."""
    return np.degrees(angle(a.u, b.u))


def outside_span(o: Outputs) -> np.ndarray:
    """Largest norm of the part of h1, h2 or the update outside span(g1, g2), / (|g1|+|g2|)."""
    off = np.maximum(np.maximum(norm(o.h1[:, 2:]), norm(o.h2[:, 2:])), norm(o.u[:, 2:]))
    return off / (o.n1 + o.n2)


def plain_sum(o: Outputs) -> np.ndarray:
    """Without conflict: |update - (g1 + g2)| / (|g1| + |g2|) (REFERENCE 1.1)."""
    return norm(o.u - (o.g1 + o.g2)) / (o.n1 + o.n2)


def min_squared_deviation(theta: float, start: float) -> float:
    """min a^2 + b^2 (radians^2) over rotations a of g1 and b of g2 inside span(g1, g2) that
    make the pair orthogonal, cos(theta - a - b) = 0; SLSQP from the feasible point
    (start*(theta-90°), (1-start)*(theta-90°)). NaN when SLSQP does not converge."""
    c = theta - np.pi / 2
    res = optimize.minimize(
        lambda x: float(x @ x), np.array([start * c, (1 - start) * c]),
        jac=lambda x: 2 * x, method="SLSQP",
        constraints=[{"type": "eq", "fun": lambda x: np.cos(theta - x[0] - x[1]),
                      "jac": lambda x: np.full(2, np.sin(theta - x[0] - x[1]))}],
        options={"ftol": 1e-15, "maxiter": 200})
    feasible = abs(np.cos(theta - res.x[0] - res.x[1])) < 1e-12
    return float(res.fun) if (res.success and feasible) else float("nan")


def optimality_gap(o: Outputs) -> np.ndarray:
    """Exact GH++ at its default t: |S_shipped - S_scipy| / S_scipy, S = summed squared
    deviation of the two rotated gradients. Two-sided: larger means scipy found orthogonalising
    rotations that deviate less; smaller means the shipped pair is not orthogonalising."""
    shipped = angle(o.h1, o.g1) ** 2 + angle(o.h2, o.g2) ** 2
    theta = o.theta
    rng = np.random.default_rng(len(theta))
    starts = rng.uniform(-1.0, 2.0, len(theta))
    best = np.array([min_squared_deviation(th, s) if np.isfinite(th) else np.nan
                     for th, s in zip(theta, starts, strict=True)])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(shipped - best) / best


def properties() -> list[Property]:
    """Every pair-level property, in table order (REFERENCE 1.1-1.3; issue 6 items 1, 2, 4, 5)."""
    return [
        prop("1a", "GH: h1 ⊥ g2 and h2 ⊥ g1", ("gh",), orthogonal_to_other, REL, 1e-9),
        prop("1b", "GH: angle(h1, h2) = 180° − θ", ("gh",), gh_angle, DEG, 1e-6),
        prop("1c", "GH: each task deviates by θ − 90°", ("gh",), gh_deviation, DEG, 1e-6),
        prop("1d", "GH: update never conflicts with g1 or g2 (−cos)", ("gh",),
             conflict_with_task, REL, 1e-9, search=negative_margin),
        prop("1e", "GH: weights equal the closed form w = 1 − d/|g|²", ("gh",),
             weights_match(lambda c, n1, n2, t: reference.gh_weights(c, n1, n2)), REL, 1e-9),
        prop("2a", "GH update equals the PCGrad rule (numpy, Yu et al. 2020)", ("gh",),
             pcgrad_rule, REL, 1e-9),
        prop("2a′", "shipped `pcgrad` update equals shipped `gh` update", ("gh", "pcgrad"),
             same_update, REL, 1e-9),
        prop("4a", "GH++ exact: rotated pair orthogonal", ("ghpp_exact@t",),
             rotated_orthogonal, REL, 1e-9, power=2),
        prop("4b", "GH++ exact: deviations t(θ−90°) and (1−t)(θ−90°)", ("ghpp_exact@t",),
             rotated_deviation, DEG, 1e-6, power=2),
        prop("4c", "GH++ exact: norms kept", ("ghpp_exact@t",), norms_kept, REL, 1e-9, power=2),
        prop("4d", "GH++ exact: weights equal the closed form of the rotations", ("ghpp_exact@t",),
             weights_match(reference.ghpp_exact_weights), REL, 1e-9, power=2),
        prop("4e", "GH++ exact, t = 0.5: minimal summed squared deviation (scipy SLSQP)",
             ("ghpp_exact",), optimality_gap, REL, 1e-6, power=2),
        prop("5a", "GH++ released: update never conflicts with g1 or g2 (−cos)", ("ghpp",),
             conflict_with_task, REL, 1e-9, search=negative_margin),
        prop("5b", "GH++ released: update direction equals exact GH++ direction",
             ("ghpp", "ghpp_exact"), direction_gap, DEG, 1e-6, power=2),
        prop("5c", "GH++ exact: update never conflicts with g1 or g2 (−cos)", ("ghpp_exact",),
             conflict_with_task, REL, 1e-9, power=2, search=negative_margin),
        prop("5d", "GH++ released: weights equal the released angle-only formula", ("ghpp",),
             weights_match(reference.ghpp_released_weights), REL, 1e-9),
        *[prop("G1", "h1, h2, update lie in span(g1, g2)", (name,), outside_span, REL, 1e-12)
          for name in ("gh", "pcgrad", "ghpp", "ghpp_exact")],
        *[prop("G2", "no conflict (θ < 90°): update is the plain sum g1 + g2", (name,),
               plain_sum, REL, 1e-12, power=0, domain="aligned")
          for name in ("gh", "pcgrad", "ghpp", "ghpp_exact")],
    ]
