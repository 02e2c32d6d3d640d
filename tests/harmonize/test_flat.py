"""The flat step of vector harmonizers (issue 13): memory layout, dtype groups, half precision,
statistics-only tensors, and the step without statistics."""

from __future__ import annotations

import pytest
import torch
from harmonize_cases import VECTOR, conflicting_net, flat_grad_attr, flat_grads
from torch import nn

import ghuda.harmonize as H

HARMONIZERS = [n for n in VECTOR if n != "sum"]


class ConvNet(nn.Module):
    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Conv2d(4, 5, 1)
        self.head = nn.Linear(5, 2)
        self.disc = nn.Linear(5, 1)
        self.to(dtype)
        self.x = torch.randn(6, 3, 7, 7, dtype=dtype)

    def losses(self) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.conv2(torch.tanh(self.conv(self.x))).mean((2, 3))
        return (self.disc(-f).square().mean(),
                self.head(f.to(self.head.weight.dtype)).logsumexp(1).mean())


def _grads(net: nn.Module, name: str, **kwargs) -> list[torch.Tensor]:
    for p in net.parameters():
        p.grad = None
    H.make(name).backward(*net.losses(), list(net.parameters()), **kwargs)
    return [p.grad for p in net.parameters()]


@pytest.mark.parametrize("name", HARMONIZERS)
def test_channels_last_gradients_keep_the_parameter_layout(name):
    plain = ConvNet()
    want = _grads(plain, name)
    cl = ConvNet().to(memory_format=torch.channels_last)
    got = _grads(cl, name)
    for p, g, w in zip(cl.parameters(), got, want, strict=True):
        assert g.stride() == p.stride()
        assert torch.allclose(g, w, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", HARMONIZERS)
def test_mixed_dtypes_are_reduced_together(name):
    net = ConvNet(torch.float64)
    net.head.to(torch.float32)
    params = list(net.parameters())
    g1, g2 = (flat_grads(loss.double(), params) for loss in net.losses())
    for p in params:
        p.grad = None
    H.make(name).backward(*net.losses(), params)
    want = H.harmonize(name, g1, g2).update
    got = flat_grad_attr(params).double()
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6 * float(want.norm()))
    assert all(p.grad.dtype == p.dtype for p in params)


@pytest.mark.parametrize("name", HARMONIZERS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_parameters(name, dtype):
    net = ConvNet(dtype)
    params = list(net.parameters())
    g1, g2 = (flat_grads(loss, params) for loss in net.losses())
    got = torch.cat([g.reshape(-1) for g in _grads(net, name)])
    want = H.harmonize(name, g1.float(), g2.float()).update.to(dtype)
    assert got.dtype == dtype
    assert torch.allclose(got.float(), want.float(), rtol=2e-2, atol=1e-3)


def test_statistics_only_tensors_are_not_kept_alive_by_the_gradients():
    """Measure tensors outside `params` take no room in the written gradients."""
    net = conflicting_net(torch.float32)
    heads = list(net.classifier.parameters())
    H.make("gh").backward(*net.losses(), heads, net.backbone())
    size = sum(p.numel() * p.element_size() for p in heads)
    assert all(p.grad.untyped_storage().nbytes() == size for p in heads)


@pytest.mark.parametrize("name", HARMONIZERS)
def test_step_without_statistics_writes_the_same_gradients(name):
    net = conflicting_net(torch.float32)
    with_stats = _grads(net, name)
    without = _grads(net, name, with_stats=False)
    for a, b in zip(with_stats, without, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


def test_non_finite_gradient_without_statistics_reaches_grad():
    """No host read to check it: the non-finite values are written (documented)."""
    p = torch.ones(3, requires_grad=True)
    bad = (p * torch.tensor([1.0, float("inf"), 0.0])).sum()
    assert H.make("gh").backward(p.sum(), bad, [p], with_stats=False) == {}
    assert not bool(torch.isfinite(p.grad).all())


@pytest.mark.parametrize("name", HARMONIZERS)
@pytest.mark.parametrize("bucket_bytes", [64, 300, 2**20])
def test_cpu_buckets_give_the_same_step(monkeypatch, name, bucket_bytes):
    """Rows split into buckets (one per tensor at 64 bytes, mixed at 300) reduce and write
    the same update as one row; statistics-only and outside tensors keep their place."""
    net = ConvNet()
    params, measure = list(net.parameters()), list(net.conv.parameters()) + list(
        net.conv2.parameters())
    want = _grads(net, name)
    want_stats = H.make(name).backward(*net.losses(), params, measure)
    monkeypatch.setattr(H.flat, "CPU_BUCKET_BYTES", bucket_bytes)
    got = _grads(net, name)
    got_stats = H.make(name).backward(*net.losses(), params, measure)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, rtol=1e-6, atol=1e-7)
    for key in ("cos", "w1", "w2"):
        assert got_stats[key] == pytest.approx(want_stats[key], rel=1e-6)


def test_buckets_split_at_tensor_boundaries():
    order, sizes = [0, 1, 2, 3], [5, 2, 9, 1]
    assert H.flat._buckets(order, sizes, None) == [order]
    assert H.flat._buckets(order, sizes, 7) == [[0, 1], [2], [3]]
    assert H.flat._buckets(order, sizes, 100) == [order]
    assert H.flat.bucket_elements(torch.device("cpu"), torch.float32) == (
        H.flat.CPU_BUCKET_BYTES // 4)
    assert H.flat.bucket_elements(torch.device("cuda"), torch.float32) is None
