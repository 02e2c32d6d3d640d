"""Descent bound of GH (REFERENCE 1.2; issue 6 item 3).

For f = f1 + f2 whose Hessian's largest eigenvalue is at most L on a convex region containing
the step, and t <= 1/L, the GH update u = h1 + h2 satisfies

    f(x - t u) <= f(x) - (t/2) sin^2(theta) |g1 + g2|^2 .

(Quadratic upper bound plus <g, u> = sin^2(theta)(|g1|^2 + |g2|^2) and
|u|^2 = sin^2(theta)|g1 - g2|^2; no convexity needed.) Three families of two-task problems:

* convex quadratics, L = largest eigenvalue of A1 + kappa A2 (scipy.linalg.eigvalsh; for
  dimensions above 128 the matrices are diagonal plus rank 4 and scipy.sparse.linalg.eigsh);
* non-convex quadratic + cosine ripple, ``a sum_j cos(w x_j)``: L = lambda_max(A1 + kappa A2)
  + a1 w1^2 + kappa a2 w2^2 (Weyl), valid everywhere;
* Rosenbrock pair ``R(x) + kappa R(-x)`` (minima at +1 and -1): L is the Gershgorin bound
  (1 + kappa)(2 + 2b + 12 b R^2 + 12 b R) on the box |x_i| <= R = 2; points lie in
  |x_i| <= 1.5 (near the segment between the two minima) and t is halved (staying <= 1/L)
  until x - t u is inside the box.

Violation of a case = (f(x - t u) - bound - allowance)^+ / ((t/2) sin^2(theta) |g1+g2|^2),
relative to the guaranteed decrease; `allowance` = 64 eps (|f(x)| + |f(x - tu)| + t|g||u|) is
the rounding of the evaluations. Only conflicting gradient pairs are cases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch
from scipy import optimize

from ghuda.theory.geometry import EPS, Subject, sample_dims
from ghuda.theory.result import CheckResult, Spec, not_run, summarise

TOL = 1e-9
BOX = 2.0
START_BOX = 1.5
DENSE_MAX_DIM = 128

Vector = np.ndarray


@dataclass(frozen=True)
class Quadratic:
    """q(x) = 0.5 (x - c)^T A (x - c) with A = Q diag(lam) Q^T or diag(d) + U U^T."""

    c: Vector
    dense: np.ndarray | None = None
    diag: Vector | None = None
    low_rank: np.ndarray | None = None

    def matvec(self, v: Vector) -> Vector:
        if self.dense is not None:
            return self.dense @ v
        return self.diag * v + self.low_rank @ (self.low_rank.T @ v)

    def value(self, x: Vector) -> float:
        r = x - self.c
        return 0.5 * float(r @ self.matvec(r))

    def grad(self, x: Vector) -> Vector:
        return self.matvec(x - self.c)


@dataclass(frozen=True)
class Ripple:
    """a sum_j cos(w x_j): Hessian -a w^2 diag(cos(w x)), eigenvalues <= a w^2."""

    a: float
    w: float

    def value(self, x: Vector) -> float:
        return self.a * float(np.sum(np.cos(self.w * x)))

    def grad(self, x: Vector) -> Vector:
        return -self.a * self.w * np.sin(self.w * x)


@dataclass(frozen=True)
class Rosenbrock:
    """R(s x) with R(y) = sum_i b (y_{i+1} - y_i^2)^2 + (1 - y_i)^2 and s = +1 or -1."""

    b: float
    sign: float = 1.0

    def value(self, x: Vector) -> float:
        y = self.sign * x
        return float(np.sum(self.b * (y[1:] - y[:-1] ** 2) ** 2 + (1.0 - y[:-1]) ** 2))

    def grad(self, x: Vector) -> Vector:
        y = self.sign * x
        g = np.zeros_like(y)
        inner = y[1:] - y[:-1] ** 2
        g[:-1] = -4 * self.b * y[:-1] * inner - 2 * (1.0 - y[:-1])
        g[1:] += 2 * self.b * inner
        return self.sign * g

    def hessian_bound(self, radius: float) -> float:
        """Gershgorin bound on lambda_max of the Hessian on the box |x_i| <= radius (the
        reflection x -> -x maps the box onto itself)."""
        b, r = self.b, radius
        return 2 + 2 * b + 12 * b * r**2 + 12 * b * r


Term = Quadratic | Ripple | Rosenbrock


@dataclass(frozen=True)
class TwoTask:
    """f1 = sum of `first`, f2 = kappa * sum of `second`; L valid inside |x_i| <= `box`."""

    first: tuple[Term, ...]
    second: tuple[Term, ...]
    kappa: float
    L: float
    box: float = np.inf

    def values(self, x: Vector) -> tuple[float, float]:
        return (sum(t.value(x) for t in self.first),
                self.kappa * sum(t.value(x) for t in self.second))

    def grads(self, x: Vector) -> tuple[Vector, Vector]:
        return (sum(t.grad(x) for t in self.first),
                self.kappa * sum(t.grad(x) for t in self.second))

    def inside(self, x: Vector) -> bool:
        return bool(np.all(np.abs(x) <= self.box))


def largest_eigenvalue(a: Quadratic, b: Quadratic, kappa: float) -> float:
    """lambda_max(A + kappa B): scipy.linalg.eigvalsh (dense) or eigsh (diagonal + rank 4)."""
    if a.dense is not None and b.dense is not None:
        m = a.dense + kappa * b.dense
        n = m.shape[0]
        return float(scipy.linalg.eigvalsh(m, subset_by_index=[n - 1, n - 1])[0])
    n = a.c.size
    op = scipy.sparse.linalg.LinearOperator(
        (n, n), matvec=lambda v: a.matvec(v.ravel()) + kappa * b.matvec(v.ravel()),
        dtype=np.float64)
    v0 = np.ones(n) / np.sqrt(n)
    return float(scipy.sparse.linalg.eigsh(op, k=1, which="LA", tol=1e-13, v0=v0,
                                           return_eigenvectors=False)[0])


def random_quadratic(rng: np.random.Generator, c: Vector) -> Quadratic:
    """Positive definite, eigenvalues log-uniform in [1e-2, 1e2] (dense up to 128 dims)."""
    n = c.size
    if n <= DENSE_MAX_DIM:
        q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        lam = 10.0 ** rng.uniform(-2, 2, n)
        return Quadratic(c=c, dense=(q * lam) @ q.T)
    return Quadratic(c=c, diag=10.0 ** rng.uniform(-2, 2, n),
                     low_rank=rng.standard_normal((n, 4)) * np.sqrt(10.0 / n))


def rotation_quadratic(c: Vector, lam: tuple[float, float], phi: float) -> Quadratic:
    """2-D quadratic with eigenvalues `lam` along directions rotated by `phi`."""
    q = np.array([[np.cos(phi), -np.sin(phi)], [np.sin(phi), np.cos(phi)]])
    return Quadratic(c=c, dense=(q * np.asarray(lam)) @ q.T)


@dataclass(frozen=True)
class Instance:
    problem: TwoTask
    x: Vector
    step: float  # t as a fraction of 1/L, in (0, 1]


def quadratic_instances(rng: np.random.Generator, dim: int, points: int, ripple: bool
                        ) -> list[Instance]:
    """One random pair of quadratics (+ ripple), `points` starts between the two centres."""
    c1, c2 = rng.standard_normal(dim), rng.standard_normal(dim)
    q1, q2 = random_quadratic(rng, c1), random_quadratic(rng, c2)
    kappa = 10.0 ** rng.uniform(-3, 3)
    L = largest_eigenvalue(q1, q2, kappa)
    first: tuple[Term, ...] = (q1,)
    second: tuple[Term, ...] = (q2,)
    if ripple:
        r1, r2 = (Ripple(a=10.0 ** rng.uniform(-2, 1), w=rng.uniform(0.5, 5)) for _ in "12")
        first, second = (q1, r1), (q2, r2)
        L += r1.a * r1.w**2 + kappa * r2.a * r2.w**2
    problem = TwoTask(first, second, kappa, L)
    out = []
    for _ in range(points):
        s = rng.uniform(0.05, 0.95)
        x = c1 + s * (c2 - c1) + 0.3 * rng.standard_normal(dim) * np.linalg.norm(c2 - c1) \
            / np.sqrt(dim)
        out.append(Instance(problem, x, _step_fraction(rng)))
    return out


def rosenbrock_instances(rng: np.random.Generator, dim: int, points: int) -> list[Instance]:
    b = 10.0 ** rng.uniform(0, 2)
    kappa = 10.0 ** rng.uniform(-3, 3)
    r1, r2 = Rosenbrock(b=b), Rosenbrock(b=b, sign=-1.0)
    L = r1.hessian_bound(BOX) + kappa * r2.hessian_bound(BOX)
    problem = TwoTask((r1,), (r2,), kappa, L, box=BOX)
    out = []
    for _ in range(points):  # between the minima +1 and -1, where the two tasks pull apart
        x = rng.uniform(-1.0, 1.0) + 0.2 * rng.standard_normal(dim)
        out.append(Instance(problem, np.clip(x, -START_BOX, START_BOX), _step_fraction(rng)))
    return out


def _step_fraction(rng: np.random.Generator) -> float:
    """t L: exactly 1 (the hardest admissible step) half of the time, else uniform."""
    return 1.0 if rng.random() < 0.5 else float(rng.uniform(1e-3, 1.0))


FAMILIES: dict[str, str] = {
    "quadratic": "convex quadratics (L = λmax, scipy.linalg)",
    "ripple": "non-convex quadratic + cosine ripple (L = λmax + aω², global)",
    "rosenbrock": "non-convex Rosenbrock pair R(x) + κR(−x) (L: Gershgorin on |x|≤2)",
}


def instances(family: str, rng: np.random.Generator, dim: int, points: int) -> list[Instance]:
    if family == "rosenbrock":
        return rosenbrock_instances(rng, dim, points)
    return quadratic_instances(rng, dim, points, ripple=family == "ripple")


@dataclass(frozen=True)
class Case:
    """violation = max(0, score); score is signed (how tight the bound is) for the search."""

    score: float
    conflict: bool
    shrunk: bool
    text: str

    @property
    def violation(self) -> float:
        return max(0.0, self.score)


def descent_case(inst: Instance, subject: Subject, step_factor: float = 1.0) -> Case:
    """Evaluate the bound at one instance with t = step_factor * inst.step / L."""
    p, x = inst.problem, inst.x
    g1, g2 = p.grads(x)
    d = float(g1 @ g2)
    if not d < 0:
        return Case(-np.inf, False, False, "")
    out = subject(torch.from_numpy(g1), torch.from_numpy(g2), 0.5)
    u = out.update.detach().to(torch.float64).numpy()
    t = step_factor * inst.step / p.L
    shrunk = False
    while not p.inside(x - t * u) and t > 0:
        t, shrunk = t / 2, True
    n1, n2 = np.linalg.norm(g1), np.linalg.norm(g2)
    cos = d / n1 / n2
    sin2 = max(0.0, 1.0 - cos * cos)
    g = g1 + g2
    decrease = 0.5 * t * sin2 * float(g @ g)
    fx, fy = sum(p.values(x)), sum(p.values(x - t * u))
    allowance = 64 * EPS * (abs(fx) + abs(fy) + t * np.linalg.norm(g) * np.linalg.norm(u))
    excess = fy - (fx - decrease) - allowance
    if not np.isfinite(fy):
        score = np.inf
    elif decrease > 0:
        score = excess / decrease
    else:
        score = np.inf if excess > 0 else 0.0
    text = (f"θ={np.degrees(np.arccos(np.clip(cos, -1, 1))):.6g}°, |g2|/|g1|={n2 / n1:.3g}, "
            f"n={x.size}, tL={t * p.L:.3g}")
    return Case(float(score), True, shrunk, text)


def _spec(family: str, step_factor: float) -> Spec:
    hyp = "t ≤ 1/L" if step_factor == 1.0 else f"t ≤ {step_factor:g}/L"
    return Spec(key="3", statement=f"GH descent bound, {hyp}: {FAMILIES[family]}",
                unit="rel. to bound's decrease", tolerance=f"{TOL:.0e} (after rounding)")


def _result(family: str, part: str, subject: Subject, cases: list[Case], note: str,
            step_factor: float) -> CheckResult:
    cases = [c for c in cases if c.conflict]
    shrunk = sum(c.shrunk for c in cases)
    extra = f"; t halved to stay in the box for {shrunk} case(s)" if shrunk else ""
    return summarise(_spec(family, step_factor), part, subject.label,
                     np.array([c.violation for c in cases]), TOL, lambda i: cases[i].text,
                     note=note + extra)


def random_part(family: str, subject: Subject | None, n_cases: int, seed: int,
                max_dim: int = 10_000, points: int = 20, step_factor: float = 1.0
                ) -> CheckResult:
    """At least `n_cases` conflicting cases; dimensions as in `sample_dims`."""
    if subject is None:
        return not_run(_spec(family, step_factor), "random", "gh",
                       "harmonizer gh not registered in ghuda.harmonize")
    rng = np.random.default_rng([seed, list(FAMILIES).index(family)])
    cases: list[Case] = []
    tried = 0
    while len(cases) < n_cases:
        if tried > 100 * n_cases:
            raise RuntimeError(f"descent check {family!r}: fewer than 1% of {tried} sampled "
                               "points have conflicting gradients")
        dim = int(sample_dims(rng, 1, max_dim)[0])
        for inst in instances(family, rng, dim, points):
            case = descent_case(inst, subject, step_factor)
            tried += 1
            if case.conflict:
                cases.append(case)
    return _result(family, "random", subject, cases,
                   f"{tried} points tried, conflicting ones kept", step_factor)


def _adversarial_instance(family: str, z: Vector) -> Instance:
    """A 2-D instance from unit-cube parameters z (what the search moves)."""
    kappa = 10.0 ** (6 * z[0] - 3)
    if family == "rosenbrock":
        b = 10.0 ** (2 * z[1])
        r1, r2 = Rosenbrock(b=b), Rosenbrock(b=b, sign=-1.0)
        L = r1.hessian_bound(BOX) + kappa * r2.hessian_bound(BOX)
        x = START_BOX * (2 * z[2:4] - 1)
        return Instance(TwoTask((r1,), (r2,), kappa, L, box=BOX), x, max(z[4], 1e-3))
    lam = 10.0 ** (4 * z[1:5] - 2)
    c1, c2 = np.zeros(2), 2 * z[7:9] - 1
    q1 = rotation_quadratic(c1, (lam[0], lam[1]), np.pi * z[5])
    q2 = rotation_quadratic(c2, (lam[2], lam[3]), np.pi * z[6])
    L = largest_eigenvalue(q1, q2, kappa)
    first: tuple[Term, ...] = (q1,)
    second: tuple[Term, ...] = (q2,)
    if family == "ripple":
        r1 = Ripple(a=10.0 ** (3 * z[11] - 2), w=0.5 + 4.5 * z[12])
        r2 = Ripple(a=10.0 ** (3 * z[13] - 2), w=0.5 + 4.5 * z[14])
        first, second = (q1, r1), (q2, r2)
        L += r1.a * r1.w**2 + kappa * r2.a * r2.w**2
    x = c1 + z[9] * (c2 - c1) + (z[10] - 0.5) * np.array([-c2[1], c2[0]])
    return Instance(TwoTask(first, second, kappa, L), x, max(z[4 if family == "rosenbrock"
                                                              else 15], 1e-3))


_SEARCH_DIMS = {"quadratic": 16, "ripple": 16, "rosenbrock": 5}


def adversarial_part(family: str, subject: Subject | None, seed: int, generations: int,
                     popsize: int, step_factor: float = 1.0) -> CheckResult:
    """Worst 2-D instance found by differential evolution over the family's parameters."""
    if subject is None:
        return not_run(_spec(family, step_factor), "adversarial", "gh",
                       "harmonizer gh not registered in ghuda.harmonize")
    cases: list[Case] = []

    def objective(z: Vector) -> float:
        case = descent_case(_adversarial_instance(family, z), subject, step_factor)
        cases.append(case)
        return -case.score if np.isfinite(case.score) else (-1e300 if case.score > 0 else 0.0)

    optimize.differential_evolution(objective, [(0.0, 1.0)] * _SEARCH_DIMS[family],
                                    seed=seed, maxiter=generations, popsize=popsize, tol=0.0,
                                    atol=-1.0, polish=False, init="sobol")
    return _result(family, "adversarial", subject, cases,
                   f"{len(cases)} evaluations, conflicting ones kept", step_factor)

