"""The integral-operator equivalence, checked with autograd on small networks (REFERENCE 1.2;
issue 6 item 2).

The paper turns each harmonizer into a dynamically weighted loss ``w1 L1 + w2 L2`` whose weights
are treated as constants. Claim: its gradient is exactly the harmonized gradient h1 + h2. For
each small tanh MLP (float64, random size, two cross-entropy losses on different batches) with
conflicting task gradients, three gradients must equal the harmonized gradient computed here in
numpy from the REFERENCE definitions (projections for GH / PCGrad, rotations for exact GH++,
the 1.3a weights for released GH++):

1. ``autograd.grad(w1 L1 + w2 L2)`` with the weights the shipped `harmonize` returns;
2. ``.grad`` written by the shipped ``backward`` in mode "direct";
3. ``.grad`` written by the shipped ``backward`` in mode "weighted_loss" (the released
   three-pass procedure).

Violation = largest of the three distances, relative to |g1| + |g2|.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize
from torch import Tensor, nn

from ghuda.theory import reference
from ghuda.theory.properties import DEFAULT_T
from ghuda.theory.result import CheckResult, Spec, not_run, summarise

NAMES = ("gh", "pcgrad", "ghpp", "ghpp_exact")
TOL = 1e-9
SEARCH_NETS = 10
MakeFn = Callable[..., object]  # (name, mode=...) -> object with .harmonize and .backward


def spec(name: str) -> Spec:
    return Spec(key="2b", statement="weighted loss w1·L1 + w2·L2 has gradient h1 + h2 "
                f"(autograd; direct and weighted_loss backward): {name}",
                unit="rel", tolerance=f"{TOL:.0e}")


def reference_update(name: str, g1: np.ndarray, g2: np.ndarray) -> np.ndarray:
    """h1 + h2 from the REFERENCE definitions (not from the weights the code returns)."""
    d, n1, n2 = float(g1 @ g2), float(np.linalg.norm(g1)), float(np.linalg.norm(g2))
    cos = d / n1 / n2
    if name in ("gh", "pcgrad"):
        if d >= 0:
            return g1 + g2
        return (g1 - d / n2**2 * g2) + (g2 - d / n1**2 * g1)
    if name == "ghpp_exact":
        a11, a12, a21, a22 = reference.ghpp_exact_coefficients(cos, n1, n2, DEFAULT_T)
        return (a11 * g1 + a12 * g2) + (a21 * g1 + a22 * g2)
    if name == "ghpp":
        w1, w2 = reference.ghpp_released_weights(cos, n1, n2, DEFAULT_T)
        return float(w1) * g1 + float(w2) * g2
    raise ValueError(f"no reference update for harmonizer {name!r}; choose from {NAMES}")


@dataclass(frozen=True)
class Net:
    """A small MLP and two batches; `losses(c1, c2)` rebuilds the graph each call."""

    model: nn.Module
    xa: Tensor
    ya: Tensor
    xb: Tensor
    yb: Tensor

    @property
    def params(self) -> list[Tensor]:
        return list(self.model.parameters())

    def losses(self, c1: float = 1.0, c2: float = 1.0) -> tuple[Tensor, Tensor]:
        ce = nn.functional.cross_entropy
        return c1 * ce(self.model(self.xa), self.ya), c2 * ce(self.model(self.xb), self.yb)


def small_net(seed: int) -> Net:
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    d_in, width, classes, batch = (int(rng.integers(2, 9)), int(rng.integers(2, 17)),
                                   int(rng.integers(2, 5)), int(rng.integers(4, 17)))
    model = nn.Sequential(nn.Linear(d_in, width), nn.Tanh(), nn.Linear(width, classes)).double()
    with torch.no_grad():  # seeded weights without touching the global generator
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64)
                    / np.sqrt(p.shape[-1]))

    def batch_of() -> tuple[Tensor, Tensor]:
        x = torch.randn(batch, d_in, generator=gen, dtype=torch.float64)
        return x, torch.randint(0, classes, (batch,), generator=gen)

    (xa, ya), (xb, yb) = batch_of(), batch_of()
    return Net(model, xa, ya, xb, yb)


def _flat(grads: list[Tensor | None], params: list[Tensor]) -> Tensor:
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                      for g, p in zip(grads, params, strict=True)])


def task_grads(net: Net, c1: float, c2: float) -> tuple[Tensor, Tensor]:
    l1, l2 = net.losses(c1, c2)
    params = net.params
    g1 = torch.autograd.grad(l1, params, allow_unused=True)
    g2 = torch.autograd.grad(l2, params, allow_unused=True)
    return _flat(list(g1), params), _flat(list(g2), params)


def _written_grad(harmonizer: object, net: Net, c1: float, c2: float) -> Tensor:
    params = net.params
    for p in params:
        p.grad = None
    harmonizer.backward(*net.losses(c1, c2), params)  # type: ignore[attr-defined]
    out = _flat([p.grad for p in params], params)
    for p in params:
        p.grad = None
    return out


@dataclass(frozen=True)
class Case:
    violation: float
    conflict: bool
    text: str


def weighted_case(name: str, make: MakeFn, net: Net, c1: float = 1.0, c2: float = 1.0,
                  seed: int = 0) -> Case:
    """The three gradients against the reference h1 + h2 on one network (conflict only)."""
    g1, g2 = task_grads(net, c1, c2)
    if not float(g1 @ g2) < 0:
        return Case(0.0, False, "")
    ref = torch.from_numpy(reference_update(name, g1.numpy(), g2.numpy()))
    h = make(name).harmonize(g1, g2)  # type: ignore[attr-defined]
    l1, l2 = net.losses(c1, c2)
    params = net.params
    weighted = _flat(list(torch.autograd.grad(h.w1 * l1 + h.w2 * l2, params,
                                              allow_unused=True)), params)
    direct = _written_grad(make(name, mode="direct"), net, c1, c2)
    three_pass = _written_grad(make(name, mode="weighted_loss"), net, c1, c2)
    scale = float(g1.norm() + g2.norm())
    violation = max(float((v - ref).norm()) / scale for v in (weighted, direct, three_pass))
    cos = float(g1 @ g2 / g1.norm() / g2.norm())
    text = (f"net seed {seed} ({g1.numel()} params), θ={np.degrees(np.arccos(cos)):.5g}°, "
            f"|g2|/|g1|={float(g2.norm() / g1.norm()):.3g}")
    return Case(violation if np.isfinite(violation) else np.inf, True, text)


def _default_make() -> MakeFn:
    from ghuda.harmonize import make
    return make


def _available(name: str, make: MakeFn) -> bool:
    try:
        make(name)
    except ValueError:
        return False
    return True


@functools.cache
def conflicting_nets(count: int, seed: int) -> tuple[list[tuple[int, Net]], int]:
    """The first `count` seeded networks whose two task gradients conflict, and how many
    networks were tried to find them."""
    found: list[tuple[int, Net]] = []
    tried = 0
    while len(found) < count:
        if tried > 50 * count:
            raise RuntimeError(f"weighted-loss check: too few conflicting networks in {tried}")
        net_seed = seed * 1_000_003 + tried
        net = small_net(net_seed)
        g1, g2 = task_grads(net, 1.0, 1.0)
        if float(g1 @ g2) < 0:
            found.append((net_seed, net))
        tried += 1
    return found, tried


def random_part(name: str, n_nets: int, seed: int, make: MakeFn | None = None) -> CheckResult:
    """`n_nets` networks with conflicting task gradients."""
    make = make or _default_make()
    if not _available(name, make):
        return not_run(spec(name), "random nets", name, f"harmonizer {name!r} not registered")
    nets, tried = conflicting_nets(n_nets, seed)
    cases = [weighted_case(name, make, net, seed=s) for s, net in nets]
    return summarise(spec(name), "random nets", f"{name} (shipped)",
                     np.array([c.violation for c in cases]), TOL, lambda i: cases[i].text,
                     note=f"{tried} networks tried, conflicting ones kept")


def adversarial_part(name: str, seed: int, generations: int, popsize: int,
                     make: MakeFn | None = None) -> CheckResult:
    """Differential evolution over the loss scales c1, c2 in [1e-3, 1e3] and the network."""
    make = make or _default_make()
    if not _available(name, make):
        return not_run(spec(name), "adversarial", name, f"harmonizer {name!r} not registered")
    cases: list[Case] = []
    nets, _ = conflicting_nets(SEARCH_NETS, seed + 1)

    def objective(z: np.ndarray) -> float:
        net_seed, net = nets[int(z[2])]
        case = weighted_case(name, make, net, 10.0 ** z[0], 10.0 ** z[1], seed=net_seed)
        cases.append(case)
        return -case.violation if np.isfinite(case.violation) else -1e300

    optimize.differential_evolution(objective, [(-3.0, 3.0), (-3.0, 3.0), (0, SEARCH_NETS - 1)],
                                    integrality=[False, False, True], seed=seed,
                                    maxiter=generations, popsize=popsize, tol=0.0, atol=-1.0,
                                    polish=False, init="sobol")
    return summarise(spec(name), "adversarial", f"{name} (shipped)",
                     np.array([c.violation for c in cases]), TOL, lambda i: cases[i].text,
                     note=f"search over loss scales 1e-3..1e3 and {SEARCH_NETS} conflicting "
                          "networks")
