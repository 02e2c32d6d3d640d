"""Shared test material for ghuda.harmonize: gradient pairs with a chosen angle, a stable angle
measure, and a small DANN-style network whose discriminator sits behind a gradient reversal."""

from __future__ import annotations

import math

import torch
from hypothesis import settings
from hypothesis import strategies as st
from torch import Tensor, nn

import ghuda.harmonize as H
from ghuda.models.heads import reverse_gradient

FAST = settings(max_examples=40, deadline=None)
# Harmonizers with a flat-gradient form; look-ahead ones (metaalign) are tested in tests/related.
PAIRWISE = [n for n in H.names() if H.make(n).flat_form]
VECTOR = [n for n in PAIRWISE if not H.make(n).elementwise]
ELEMENTWISE = [n for n in PAIRWISE if H.make(n).elementwise]


def angle_deg(u: Tensor, v: Tensor) -> float:
    """Angle between u and v in degrees, accurate near 0 and 180 (Kahan's formula)."""
    u, v = u.double() / u.double().norm(), v.double() / v.double().norm()
    return math.degrees(2.0 * math.atan2(float((u - v).norm()), float((u + v).norm())))


def pair_with_angle(theta_deg: float, n1: float, n2: float, dim: int, seed: int,
                    dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """g1, g2 in R^dim with norms n1, n2 and angle theta_deg between them."""
    gen = torch.Generator().manual_seed(seed)
    u1 = torch.randn(dim, generator=gen, dtype=torch.float64)
    u1 /= u1.norm()
    w = torch.randn(dim, generator=gen, dtype=torch.float64)
    w -= (w @ u1) * u1
    w /= w.norm()
    theta = math.radians(theta_deg)
    u2 = math.cos(theta) * u1 + math.sin(theta) * w
    return (n1 * u1).to(dtype), (n2 * u2).to(dtype)


@st.composite
def pairs(draw: st.DrawFn, lo: float = 91.0, hi: float = 179.0) -> tuple[Tensor, Tensor, float]:
    """(g1, g2, theta_deg) with theta in [lo, hi] and norms from 1e-3 to 1e3."""
    theta = draw(st.floats(lo, hi))
    n1 = 10.0 ** draw(st.floats(-3, 3))
    n2 = 10.0 ** draw(st.floats(-3, 3))
    dim = draw(st.integers(2, 48))
    seed = draw(st.integers(0, 2**31 - 1))
    g1, g2 = pair_with_angle(theta, n1, n2, dim, seed)
    return g1, g2, theta


@st.composite
def signed_vectors(draw: st.DrawFn) -> tuple[Tensor, Tensor]:
    """Two float64 vectors with mixed signs and some exact zeros (element-wise cases)."""
    dim = draw(st.integers(1, 64))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    g1 = torch.randn(dim, generator=gen, dtype=torch.float64)
    g2 = torch.randn(dim, generator=gen, dtype=torch.float64)
    g1[torch.rand(dim, generator=gen) < 0.1] = 0.0
    g2[torch.rand(dim, generator=gen) < 0.1] = 0.0
    return g1, g2


class BackwardCounter(torch.autograd.Function):
    """Identity whose backward counts how many backward passes went through it."""

    calls = 0

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        BackwardCounter.calls += 1
        return grad


class DannNet(nn.Module):
    """Backbone, classifier, discriminator behind a gradient reversal, one unused layer."""

    def __init__(self, seed: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.l1 = nn.Linear(6, 8)
        self.l2 = nn.Linear(8, 5)
        self.classifier = nn.Linear(5, 3)
        self.disc = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 1))
        self.unused = nn.Linear(2, 2)
        self.to(dtype)
        gen = torch.Generator().manual_seed(seed + 1)
        self.x_src = torch.randn(10, 6, generator=gen, dtype=dtype)
        self.y_src = torch.randint(0, 3, (10,), generator=gen)
        self.x_tgt = torch.randn(10, 6, generator=gen, dtype=dtype) + 0.5

    def backbone(self) -> list[Tensor]:
        return [*self.l1.parameters(), *self.l2.parameters()]

    def heads(self) -> list[Tensor]:
        return [*self.classifier.parameters(), *self.disc.parameters()]

    def features(self, x: Tensor) -> Tensor:
        return self.l2(torch.tanh(BackwardCounter.apply(self.l1(x))))

    def losses(self) -> tuple[Tensor, Tensor]:
        """(transfer, classification): the released CDAN/DANN order (REFERENCE 1.4)."""
        f_src, f_tgt = self.features(torch.cat([self.x_src, self.x_tgt])).split(
            [len(self.x_src), len(self.x_tgt)])
        cls = nn.functional.cross_entropy(self.classifier(f_src), self.y_src)
        logits = self.disc(reverse_gradient(torch.cat([f_src, f_tgt]), 1.0)).squeeze(1)
        domain = torch.cat([torch.ones(len(f_src)), torch.zeros(len(f_tgt))]).to(logits.dtype)
        transfer = nn.functional.binary_cross_entropy_with_logits(logits, domain)
        return transfer, cls


def conflicting_net(dtype: torch.dtype = torch.float64) -> DannNet:
    """The first seed whose transfer and classification gradients conflict both on all
    parameters and on the backbone alone (so every harmonizer really acts)."""
    for seed in range(200):
        net = DannNet(seed, dtype)
        params = list(net.parameters())
        for scope in (params, net.backbone()):
            g = [flat_grads(loss, scope) for loss in net.losses()]
            if float(g[0] @ g[1]) >= 0:
                break
        else:
            return net
    raise AssertionError("no conflicting seed found")


def flat_grads(loss: Tensor, tensors: list[Tensor]) -> Tensor:
    """Flattened gradient of `loss` on `tensors`, zeros where it does not reach."""
    grads = torch.autograd.grad(loss, tensors, retain_graph=True, allow_unused=True)
    return torch.cat([(torch.zeros_like(t) if g is None else g).reshape(-1)
                      for g, t in zip(grads, tensors, strict=True)])


def flat_grad_attr(params: list[Tensor]) -> Tensor:
    """Concatenated ``.grad`` of params, zeros where it is None."""
    return torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1)
                      for p in params])
