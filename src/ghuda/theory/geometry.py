"""Gradient pairs with a known geometry, and the harmonizer under test evaluated on them.

A `Pairs` holds, per case, the angle theta between g1 and g2, their norms, the dimension and a
trade-off t; `Pairs.vectors(i)` embeds case i in R^dim with a seeded random orthonormal frame.
`evaluate` runs a harmonizer on every case and keeps the exact geometry of the five vectors
(g1, g2, h1, h2, update): their coordinates in an orthonormal basis of their span (a QR
factorisation, signs fixed so that the first two basis vectors are g1/|g1| and the unit
component of g2 orthogonal to g1). Every property is then a vectorised function of those
coordinates, whatever the dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ghuda.harmonize import Harmonized

EPS = float(np.finfo(np.float64).eps)
# Rounding allowance: quantities that cancel near the antiparallel case lose ~eps/sin(theta)
# (from d/|g|^2) or ~eps/sin(theta)^2 (from theta = acos(cos): 1 + cos ~ sin^2/2 carries an
# absolute error eps, so sin(theta) is known to a relative eps/sin^2); 64 is the safety factor.
COND = 64 * EPS
VECTORS = ("g1", "g2", "h1", "h2", "u")

Harmonize = Callable[..., Harmonized]


@dataclass(frozen=True)
class Subject:
    """A harmonizer under test: `fn(g1, g2)` or, when `takes_t`, `fn(g1, g2, t=t)`."""

    label: str
    fn: Harmonize
    takes_t: bool = False

    def __call__(self, g1: torch.Tensor, g2: torch.Tensor, t: float) -> Harmonized:
        return self.fn(g1, g2, t=t) if self.takes_t else self.fn(g1, g2)


@dataclass(frozen=True)
class Pairs:
    """Cases (theta in radians, norms, dimension, trade-off t) embedded with seeded frames."""

    theta: np.ndarray
    norm1: np.ndarray
    norm2: np.ndarray
    dim: np.ndarray
    t: np.ndarray
    seed: int = 0
    _vectors: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.theta)
        for name in ("norm1", "norm2", "dim", "t"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Pairs.{name} has {len(getattr(self, name))} entries, "
                                 f"theta has {n}")
        if n and int(np.min(self.dim)) < 2:
            raise ValueError("Pairs.dim must be >= 2 (a pair spans up to two dimensions)")

    def __len__(self) -> int:
        return len(self.theta)

    def vectors(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """g1 = n1 e1, g2 = n2 (cos(theta) e1 + sin(theta) e2) in float64.

        theta = pi and theta = pi/2 are built exactly (g2 = -n2 e1, g2 = n2 e2), since
        cos(pi/2) and sin(pi) are not zero in floating point. Cached: every harmonizer under
        test sees the same vectors.
        """
        if i not in self._vectors:
            self._vectors[i] = self._build(i)
        return self._vectors[i]

    def _build(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, i])
        dim = int(self.dim[i])
        if dim == 2:
            phi = rng.uniform(0.0, 2 * np.pi)
            sign = rng.choice([-1.0, 1.0])
            e1 = np.array([np.cos(phi), np.sin(phi)])
            e2 = sign * np.array([-np.sin(phi), np.cos(phi)])
        else:  # Gram-Schmidt (twice, for orthogonality to rounding) of two Gaussian vectors
            a, b = rng.standard_normal(dim), rng.standard_normal(dim)
            e1 = a / np.linalg.norm(a)
            for _ in range(2):
                b = b - (b @ e1) * e1
            e2 = b / np.linalg.norm(b)
        theta = float(self.theta[i])
        if theta == np.pi:
            c, s = -1.0, 0.0
        elif theta == np.pi / 2:
            c, s = 0.0, 1.0
        else:
            c, s = np.cos(theta), np.sin(theta)
        g1 = self.norm1[i] * e1
        g2 = self.norm2[i] * (c * e1 + s * e2)
        return torch.from_numpy(g1), torch.from_numpy(g2)

    def describe(self, i: int, with_t: bool = False) -> str:
        ratio = self.norm2[i] / self.norm1[i] if self.norm1[i] > 0 else np.inf
        text = (f"θ={np.degrees(self.theta[i]):.7g}°, |g2|/|g1|={ratio:.3g}, "
                f"|g1|={self.norm1[i]:.3g}, n={int(self.dim[i])}")
        return text + (f", t={self.t[i]:.3g}" if with_t else "")

    def subset(self, index: np.ndarray) -> Pairs:
        return Pairs(self.theta[index], self.norm1[index], self.norm2[index], self.dim[index],
                     self.t[index], self.seed)


def make_pairs(theta_deg: np.ndarray, norm1: np.ndarray, norm2: np.ndarray,
               dim: np.ndarray | int = 2, t: np.ndarray | float = 0.5, seed: int = 0) -> Pairs:
    """Pairs from angles in degrees (broadcasting scalars)."""
    theta = np.radians(np.asarray(theta_deg, dtype=np.float64))
    theta = np.where(np.asarray(theta_deg) == 180.0, np.pi, theta)
    theta = np.where(np.asarray(theta_deg) == 90.0, np.pi / 2, theta)
    arrays = np.broadcast_arrays(theta, np.asarray(norm1, dtype=np.float64),
                                 np.asarray(norm2, dtype=np.float64), np.asarray(dim),
                                 np.asarray(t, dtype=np.float64))
    theta, n1, n2, d, tt = (np.atleast_1d(np.array(a)) for a in arrays)
    return Pairs(theta, n1, n2, d.astype(np.int64), tt, seed)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return 10.0 ** rng.uniform(np.log10(lo), np.log10(hi), n)


def sample_dims(rng: np.random.Generator, n: int, max_dim: int) -> np.ndarray:
    """Mostly low dimensions (fast), some high: 60% in 2..8, 35% in 9..128, 5% up to max_dim."""
    u = rng.random(n)
    low = rng.integers(2, 9, n)
    mid = np.round(_log_uniform(rng, 9, 128, n))
    high = np.round(_log_uniform(rng, 129, max(max_dim, 130), n))
    return np.where(u < 0.60, low, np.where(u < 0.95, mid, high)).astype(np.int64)


def sample_pairs(n: int, seed: int, *, conflicting: bool = True, max_dim: int = 10_000,
                 ratio: tuple[float, float] = (1e-3, 1e3),
                 scale: tuple[float, float] = (1e-4, 1e4)) -> Pairs:
    """Random pairs; conflicting ones have theta in (90°, 180°), aligned ones in [0°, 90°).

    10% of the conflicting angles sit within 1e-4..1° of 90° or 180° (the ill-conditioned
    ends). Norm ratio |g2|/|g1| and the overall scale are log-uniform; t is 0, 0.5 or 1 for
    10% of the cases each and uniform in [0, 1] otherwise.
    """
    rng = np.random.default_rng(seed)
    if conflicting:
        theta_deg = rng.uniform(90.0, 180.0, n)
        theta_deg[theta_deg == 90.0] = 135.0
        kind = rng.random(n)
        edge = 10.0 ** rng.uniform(-4.0, 0.0, n)
        theta_deg = np.where(kind < 0.05, 180.0 - edge,
                             np.where(kind < 0.10, 90.0 + edge, theta_deg))
    else:
        theta_deg = rng.uniform(0.0, 90.0, n)
    n1 = _log_uniform(rng, *scale, n)
    n2 = n1 * _log_uniform(rng, *ratio, n)
    dims = sample_dims(rng, n, max_dim)
    t = rng.uniform(0.0, 1.0, n)
    pick = rng.random(n)
    t = np.where(pick < 0.1, 0.0, np.where(pick < 0.2, 0.5, np.where(pick < 0.3, 1.0, t)))
    return Pairs(np.radians(theta_deg), n1, n2, dims, t, seed)


def rounding_tolerance(base: float, sin_theta: np.ndarray, power: int,
                       degrees: bool = False) -> np.ndarray:
    """``base + 64 eps / sin(theta)^power`` (the second term in degrees when `degrees`)."""
    sin = np.maximum(np.asarray(sin_theta, dtype=np.float64), 1e-300)
    cond = COND / sin**power if power else np.zeros_like(sin)
    return base + (np.degrees(cond) if degrees else cond)


def tolerance_text(base: float, power: int, unit: str = "") -> str:
    sin = {0: "", 1: "sinθ", 2: "sin²θ"}[power]
    return f"{base:.0e}{unit}" + (f" + 64ε/{sin}" if power else "")


def norm(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(a * a, axis=-1))


def angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between rows of a and b in radians, accurate near 0 and pi; NaN for a zero row."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ua = a / norm(a)[..., None]
        ub = b / norm(b)[..., None]
        return 2.0 * np.arctan2(norm(ua - ub), norm(ua + ub))


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1)


@dataclass(frozen=True)
class Outputs:
    """A harmonizer's outputs on `pairs`, reduced to exact 5-D coordinates.

    `coords[i, :, k]` are the coordinates of vector `VECTORS[k]` of case i; rows 0 and 1 are
    the directions g1/|g1| and the unit component of g2 orthogonal to g1 (comparable across
    harmonizers), rows 2-4 span what lies outside span(g1, g2). `failed[i]` is True when the
    harmonizer raised or returned a non-finite vector (coordinates are NaN there).
    """

    subject: Subject
    pairs: Pairs
    coords: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    failed: np.ndarray
    fallback: np.ndarray  # the harmonizer's degenerate-case flag per case ("" for none)
    errors: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> np.ndarray:
        if name in VECTORS:
            return self.coords[:, :, VECTORS.index(name)]
        raise AttributeError(name)

    @property
    def n1(self) -> np.ndarray:
        return norm(self.g1)

    @property
    def n2(self) -> np.ndarray:
        return norm(self.g2)

    @property
    def theta(self) -> np.ndarray:
        """Measured angle between the g1 and g2 handed to the harmonizer (radians)."""
        return angle(self.g1, self.g2)

    def describe(self, i: int) -> str:
        return self.pairs.describe(i, with_t=self.subject.takes_t)


def _coordinates(stack: np.ndarray) -> np.ndarray:
    """(k, n, 5) matrices of equal n -> (k, 5, 5) coordinates (batched QR, signs fixed)."""
    r = np.linalg.qr(stack, mode="r")
    diag = np.diagonal(r, axis1=-2, axis2=-1)
    r = r * np.where(diag < 0, -1.0, 1.0)[..., None]
    out = np.zeros((stack.shape[0], 5, 5))
    out[:, : r.shape[1]] = r
    return out


def _as_numpy(v: torch.Tensor) -> np.ndarray:
    return v.detach().reshape(-1).to(torch.float64).cpu().numpy()


def evaluate(subject: Subject, pairs: Pairs) -> Outputs:
    """Run `subject` on every case of `pairs` and reduce its outputs to coordinates."""
    n = len(pairs)
    coords = np.full((n, 5, 5), np.nan)
    w = np.full((n, 2), np.nan)
    failed = np.zeros(n, dtype=bool)
    fallback = np.full(n, "", dtype=object)
    errors: list[str] = []
    by_dim: dict[int, list[tuple[int, np.ndarray]]] = {}
    for i in range(n):
        g1, g2 = pairs.vectors(i)
        try:
            out = subject(g1, g2, float(pairs.t[i]))
        except Exception as err:  # a harmonizer that raises on a valid pair fails the check
            failed[i] = True
            if len(errors) < 3:
                errors.append(f"{type(err).__name__}: {err}")
            continue
        m = np.stack([_as_numpy(v) for v in (g1, g2, out.h1, out.h2, out.update)], axis=1)
        by_dim.setdefault(m.shape[0], []).append((i, m))
        w[i] = [np.nan if out.w1 is None else out.w1, np.nan if out.w2 is None else out.w2]
        fallback[i] = getattr(out, "fallback", None) or ""
    for group in by_dim.values():
        index = np.array([i for i, _ in group])
        stack = np.stack([m for _, m in group])
        finite = np.isfinite(stack).all(axis=(1, 2))
        failed[index[~finite]] = True
        if finite.any():
            coords[index[finite]] = _coordinates(stack[finite])
    return Outputs(subject, pairs, coords, w[:, 0], w[:, 1], failed, fallback, errors)
