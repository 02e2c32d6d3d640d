"""Issue 13: a vector harmonizer's step issues a number of aten ops that does not grow with the
number of parameter tensors, and reads nothing back to the host without statistics.

Counted with torch.profiler on the CPU: TOP-LEVEL aten ops (those not issued by another aten
op; on CUDA each is about one kernel launch, a foreach op or ``_chunk_cat`` being one), minus
those of two plain ``torch.autograd.grad`` calls on the same model. The slope between a model
with N and one with 2N backbone tensors is the per-tensor cost.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.profiler import ProfilerActivity, profile

import ghuda.harmonize as H
from ghuda.models.heads import reverse_gradient

# Tensor methods that read values back to the host (counted with a TorchFunctionMode: on the
# CPU, ``tolist`` issues no aten op the profiler would see).
HOST_READS = {"tolist", "item", "__bool__", "__float__", "__int__", "__index__", "numpy"}
NAMES = ["gh", "ghpp", "ghpp_exact", "pcgrad"]


class Net(nn.Module):
    """`depth` linear layers (2 tensors each), a classifier, and a discriminator behind a
    gradient reversal: L1 = transfer loss, L2 = classification loss (REFERENCE 1.4)."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(*[nn.Sequential(nn.Linear(8, 8), nn.Tanh())
                                        for _ in range(depth)])
        self.classifier = nn.Linear(8, 3)
        self.discriminator = nn.Linear(8, 1)

    def losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(16, 8, generator=gen)
        y = torch.randint(0, 3, (16,), generator=gen)
        domain = (torch.arange(16) % 2).float()
        f = self.backbone(x)
        transfer = nn.functional.binary_cross_entropy_with_logits(
            self.discriminator(reverse_gradient(f, 1.0)).squeeze(1), domain)
        return transfer, nn.functional.cross_entropy(self.classifier(f), y)

    def measure(self) -> list[nn.Parameter]:
        return [*self.backbone.parameters(), *self.classifier.parameters()]


class _HostReads(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += getattr(func, "__name__", "") in HOST_READS
        return func(*args, **(kwargs or {}))


def _count(fn) -> tuple[int, int, int]:
    """(top-level aten ops, all aten ops, host reads) issued by `fn()`."""
    with _HostReads() as reads:
        fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    top = every = 0
    for e in prof.events():
        if not e.name.startswith("aten::"):
            continue
        every += 1
        parent = e.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        top += parent is None
    return top, every, reads.count


def extra_ops(name: str, depth: int, with_stats: bool = False) -> tuple[int, int, int, int]:
    """(top-level ops, all ops, host reads) of `name`'s backward beyond two autograd.grad
    calls, and the number of measured tensors."""
    net = Net(depth)
    params = list(net.parameters())

    def two_grads() -> None:
        l1, l2 = net.losses()
        torch.autograd.grad(l1, params, retain_graph=True, allow_unused=True)
        torch.autograd.grad(l2, params, allow_unused=True)

    harmonizer = H.make(name)

    def step() -> None:
        net.zero_grad(set_to_none=True)
        harmonizer.backward(*net.losses(), params, net.measure(), with_stats=with_stats)

    for fn in (two_grads, step):  # warm-up: lazy initialisation is not the step's cost
        fn()
    base, harm = _count(two_grads), _count(step)
    # the forward (losses) is inside both counts and cancels
    return (harm[0] - base[0], harm[1] - base[1], harm[2] - base[2], len(net.measure()))


@pytest.mark.parametrize("name", NAMES)
def test_ops_per_measured_tensor_at_most_two(name):
    top_n, _, reads_n, tensors_n = extra_ops(name, 30)
    top_2n, _, reads_2n, tensors_2n = extra_ops(name, 60)
    assert tensors_n >= 60
    slope = (top_2n - top_n) / (tensors_2n - tensors_n)
    assert slope <= 2.0, f"{name}: {slope:.2f} top-level aten ops per measured tensor"
    assert reads_n == reads_2n == 0, f"{name}: host reads without statistics"


@pytest.mark.parametrize("name", NAMES)
def test_statistics_are_read_in_one_transfer(name):
    *_, reads, _ = extra_ops(name, 30, with_stats=True)
    assert reads == 1, f"{name}: {reads} host reads with statistics"
