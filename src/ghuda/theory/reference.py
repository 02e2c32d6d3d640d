"""Independent closed-form references in numpy (REFERENCE 1.2, 1.3), vectorised over pairs.

These are written from the formulas, not from `ghuda.harmonize`, so that comparing the shipped
harmonizers with them is a real check. Every function takes the pair's cosine and the two norms
(arrays or scalars) and returns weights ``(w1, w2)`` such that ``update = w1 g1 + w2 g2``.
Without conflict (cos >= 0) every method returns the plain sum ``w1 = w2 = 1`` (REFERENCE 1.1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Weights = tuple[np.ndarray, np.ndarray]


def _conflict(cos: np.ndarray) -> np.ndarray:
    return np.asarray(cos) < 0.0


def gh_weights(cos: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> Weights:
    """GH / two-task PCGrad (REFERENCE 1.2): ``w1 = 1 - d/|g1|^2``, ``w2 = 1 - d/|g2|^2``."""
    cos, n1, n2 = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (cos, n1, n2)))
    c = _conflict(cos)
    w1 = np.where(c, 1.0 - cos * n2 / n1, 1.0)
    w2 = np.where(c, 1.0 - cos * n1 / n2, 1.0)
    return w1, w2


def ghpp_released_weights(cos: np.ndarray, n1: np.ndarray, n2: np.ndarray,
                          t: float | np.ndarray = 0.5) -> Weights:
    """GH++ as released (REFERENCE 1.3a): angle-only, asymmetric weights.

    ``beta_max = theta - 90``, ``beta = t beta_max``, ``w1 = 1 + 2 sin(beta/2)``,
    ``w2 = 1 - 2 sin((beta_max - beta)/2)``; the norms are ignored.
    """
    cos, n1, n2, t = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (cos, n1, n2, t)))
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    beta_max = theta - np.pi / 2
    beta = t * beta_max
    c = _conflict(cos)
    w1 = np.where(c, 1.0 + 2.0 * np.sin(beta / 2), 1.0)
    w2 = np.where(c, 1.0 - 2.0 * np.sin((beta_max - beta) / 2), 1.0)
    return w1, w2


def ghpp_exact_coefficients(cos: np.ndarray, n1: np.ndarray, n2: np.ndarray,
                            t: float | np.ndarray = 0.5) -> np.ndarray:
    """Exact GH++ (REFERENCE 1.3b): the rotated pair ``h1 = a11 g1 + a12 g2``,
    ``h2 = a21 g1 + a22 g2``.

    g1 turns toward g2 by ``b1 = t (theta - 90)``, g2 toward g1 by ``b2 = (1-t)(theta - 90)``,
    norms kept: ``h1 = n1 (sin(theta-b1) u1 + sin(b1) u2) / sin(theta)``. Returns an array of
    shape (..., 4) = (a11, a12, a21, a22); NaN where sin(theta) = 0 (antiparallel: undefined).
    Without conflict: the identity (h1 = g1, h2 = g2).
    """
    cos, n1, n2, t = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (cos, n1, n2, t)))
    theta = np.arccos(np.clip(cos, -1.0, 1.0))
    beta_max = theta - np.pi / 2
    b1, b2 = t * beta_max, (1.0 - t) * beta_max
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(np.sin(theta) > 0.0, np.sin(theta), np.nan)
        coef = np.stack([np.sin(theta - b1) / s, n1 / n2 * np.sin(b1) / s,
                         n2 / n1 * np.sin(b2) / s, np.sin(theta - b2) / s], axis=-1)
    identity = np.broadcast_to(np.array([1.0, 0.0, 0.0, 1.0]), coef.shape)
    return np.where(_conflict(cos)[..., None], coef, identity)


def ghpp_exact_weights(cos: np.ndarray, n1: np.ndarray, n2: np.ndarray,
                       t: float | np.ndarray = 0.5) -> Weights:
    """Weights of the exact GH++ update ``h1 + h2`` (REFERENCE 1.3b)."""
    a = ghpp_exact_coefficients(cos, n1, n2, t)
    return a[..., 0] + a[..., 2], a[..., 1] + a[..., 3]


def sum_weights(cos: np.ndarray, n1: np.ndarray, n2: np.ndarray) -> Weights:
    """Plain sum: ``w1 = w2 = 1``."""
    ones = np.ones(np.broadcast(np.asarray(cos), np.asarray(n1), np.asarray(n2)).shape)
    return ones, ones.copy()


def pcgrad_update(g1: np.ndarray, g2: np.ndarray) -> np.ndarray:
    """PCGrad for two tasks (Yu et al. 2020), written from its projection rule.

    Each task gradient that conflicts with the other task's ORIGINAL gradient is projected
    onto that gradient's normal plane; the update is the sum. Works on (..., n) arrays.
    """
    d = np.sum(g1 * g2, axis=-1, keepdims=True)
    sq1 = np.sum(g1 * g1, axis=-1, keepdims=True)
    sq2 = np.sum(g2 * g2, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1 = np.where(d < 0, g1 - d / sq2 * g2, g1)
        p2 = np.where(d < 0, g2 - d / sq1 * g1, g2)
    return p1 + p2


def task_margins(name: str, cos: np.ndarray, ratio: np.ndarray, t: float | np.ndarray = 0.5
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Quantities with the signs of <update, g1> and <update, g2> under conflict, r = |g2|/|g1|.

    Released GH++ (u = w1 g1 + w2 g2): ``w1 + w2 r cos(theta)`` and ``w1 cos(theta) + w2 r``.
    Exact GH++ (angle(h2, g1) = 90° + b1, angle(h1, g2) = 90° + b2):
    ``cos(b1) - r sin(b1)`` and ``cos(b2) - sin(b2) / r``, i.e. the update conflicts with g1
    iff r > cot(b1) and with g2 iff 1/r > cot(b2).
    """
    cos, ratio, t = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (cos, ratio, t)))
    if name == "ghpp":
        w1, w2 = ghpp_released_weights(cos, 1.0, ratio, t)
        return w1 + w2 * ratio * cos, w1 * cos + w2 * ratio
    if name == "ghpp_exact":
        beta_max = np.arccos(np.clip(cos, -1.0, 1.0)) - np.pi / 2
        b1, b2 = t * beta_max, (1.0 - t) * beta_max
        return np.cos(b1) - ratio * np.sin(b1), np.cos(b2) - np.sin(b2) / ratio
    raise ValueError(f"task_margins: no closed form for {name!r}; use 'ghpp' or 'ghpp_exact'")


def weights_for(name: str, options: dict[str, object]
                ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], Weights] | None:
    """Reference weight formula of harmonizer `name` with its options; None when it has none.

    Element-wise harmonizers (agr_sum, agr_rand) have no weighted-loss form (REFERENCE 2).
    """
    t = float(options.get("t", 0.5))  # type: ignore[arg-type]
    table: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], Weights]] = {
        "sum": sum_weights,
        "gh": gh_weights,
        "pcgrad": gh_weights,
        "ghpp": lambda c, a, b: ghpp_released_weights(c, a, b, t),
        "ghpp_exact": lambda c, a, b: ghpp_exact_weights(c, a, b, t),
    }
    return table.get(name)
