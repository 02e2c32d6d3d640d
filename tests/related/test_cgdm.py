"""CGDM's pieces: the gradient-discrepancy loss against finite differences (float64), the
entropy-weighted cross-entropy, clustering pseudo-labels on a separable toy set, and the
method's stages and state (REFERENCE 2)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ghuda import methods
from ghuda.methods.base import Batch, StepInfo
from ghuda.methods.cgdm import (
    cluster_pseudo_labels,
    entropy_weighted_cross_entropy,
    gradient_discrepancy,
)

N_CLASSES = 3


def _toy(seed: int = 0):
    """Generator G (Linear + tanh) and a two-layer head with a bias vector and weight
    matrices, float64, no dropout or batch norm (a deterministic function of G's weights)."""
    gen = torch.Generator().manual_seed(seed)
    g = nn.Sequential(nn.Linear(4, 5), nn.Tanh()).double()
    head = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, N_CLASSES)).double()
    for p in [*g.parameters(), *head.parameters()]:
        p.data = torch.randn(p.shape, generator=gen, dtype=torch.float64)
    x_s = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    x_t = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    y_s = torch.randint(0, N_CLASSES, (7,), generator=gen)
    y_t = torch.randint(0, N_CLASSES, (6,), generator=gen)
    return g, head, x_s, x_t, y_s, y_t


def _gdm(g, head, x_s, x_t, y_s, y_t, cosine):
    params = list(head.parameters())
    return gradient_discrepancy(params, F.cross_entropy(head(g(x_s)), y_s),
                                entropy_weighted_cross_entropy(head(g(x_t)), y_t), cosine)


@pytest.mark.parametrize("cosine", ["per_tensor", "flat"])
def test_gradient_discrepancy_gradient_matches_finite_differences(cosine):
    g, head, *data = _toy()
    loss = _gdm(g, head, *data, cosine)
    assert 0.0 < loss.item() < 2.0
    weight = g[0].weight
    (analytic,) = torch.autograd.grad(loss, [weight])  # second order: through grad_F
    assert analytic.abs().max() > 1e-4
    eps = 1e-6
    numeric = torch.zeros_like(weight)
    flat = weight.data.view(-1)
    for idx in range(weight.numel()):
        flat[idx] += eps
        plus = _gdm(g, head, *data, cosine).item()
        flat[idx] -= 2 * eps
        minus = _gdm(g, head, *data, cosine).item()
        flat[idx] += eps
        numeric.view(-1)[idx] = (plus - minus) / (2 * eps)
    torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_per_tensor_cosine_is_row_wise_for_matrices_and_differs_from_flat():
    g, head, x_s, x_t, y_s, y_t = _toy(1)
    params = list(head.parameters())
    g_s = torch.autograd.grad(F.cross_entropy(head(g(x_s)), y_s), params)
    g_t = torch.autograd.grad(entropy_weighted_cross_entropy(head(g(x_t)), y_t), params)
    by_hand = []
    for s, t in zip(g_s, g_t, strict=True):
        if s.dim() == 2:
            rows = [float(t[i] @ s[i] / (t[i].norm() * s[i].norm())) for i in range(s.shape[0])]
            by_hand.append(1 - sum(rows) / len(rows))
        else:
            by_hand.append(1 - float(t @ s / (t.norm() * s.norm())))
    per_tensor = _gdm(g, head, x_s, x_t, y_s, y_t, "per_tensor")
    assert per_tensor.item() == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-10)
    flat = _gdm(g, head, x_s, x_t, y_s, y_t, "flat")
    assert flat.item() != pytest.approx(per_tensor.item(), rel=1e-3)
    with pytest.raises(ValueError, match="cosine"):
        _gdm(g, head, x_s, x_t, y_s, y_t, "rows")


def test_entropy_weighted_cross_entropy_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    labels = torch.tensor([0, 2])
    p = F.softmax(logits, dim=1)
    w = 1 + torch.exp((p * torch.log(p + 1e-5)).sum(dim=1))
    ce = -torch.log(p[[0, 1], labels])
    want = float((w * ce).sum() / w.sum())
    got = entropy_weighted_cross_entropy(logits, labels)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(want, rel=1e-12)
    # confident samples weigh more than uncertain ones
    assert w[0] > w[1]


def test_pseudo_labels_on_a_separable_toy_set():
    gen = torch.Generator().manual_seed(0)
    directions = torch.eye(6)[:N_CLASSES] * 5.0
    truth = torch.arange(N_CLASSES).repeat_interleave(40)
    features = directions[truth] + 0.3 * torch.randn(len(truth), 6, generator=gen)
    # a poor classifier: right only 55% of the time, never confident
    noisy = torch.where(torch.rand(len(truth), generator=gen) < 0.55, truth,
                        torch.randint(0, N_CLASSES, (len(truth),), generator=gen))
    probs = 0.2 + 0.4 * F.one_hot(noisy, N_CLASSES).float()
    probs = probs / probs.sum(dim=1, keepdim=True)
    assert (probs.argmax(dim=1) == truth).float().mean() < 0.8
    labels = cluster_pseudo_labels(features, probs)
    assert torch.equal(labels, truth)


def test_pseudo_labels_skip_an_empty_cluster():
    features = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    probs = torch.tensor([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1],
                          [0.1, 0.7, 0.2]])
    labels = cluster_pseudo_labels(features, probs, rounds=2)
    assert labels.tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="features"):
        cluster_pseudo_labels(features, probs[:3])


def _cgdm(**hparams):
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU())
    return methods.build("cgdm", backbone, 8, N_CLASSES, head_hidden=16, **hparams)


def _batch(n: int = 6) -> Batch:
    gen = torch.Generator().manual_seed(3)
    return Batch(x_src=torch.randn(n, 12, generator=gen),
                 y_src=torch.randint(0, N_CLASSES, (n,), generator=gen),
                 x_tgt=torch.randn(n, 12, generator=gen), idx_tgt=torch.arange(n))


def test_stages_add_pseudo_and_gdm_once_labels_exist_and_keep_the_mcd_pair():
    method = _cgdm(refresh_every=4)
    method.train()
    before = {s.name: s for s in method.stages(_batch(), StepInfo(1, 10))}
    assert not before["A"].losses["pseudo"].requires_grad
    assert not before["C"].losses["gdm"].requires_grad
    assert [(p.first, p.second, p.measure) for p in before["B"].pairs] == [
        ("cls", "max_discrepancy", ("backbone",))]
    assert before["B"].reevaluate is not None
    method.eval()
    with torch.no_grad():
        method.refresh(iter([torch.randn(6, 12)]), StepInfo(0, 10))  # step 0: not yet
        assert method.pseudo_labels is None
        method.refresh(iter([torch.randn(4, 12), torch.randn(2, 12)]), StepInfo(4, 10))
    assert method.pseudo_labels is not None
    assert method.pseudo_labels.shape == (6,)
    method.train()
    after = {s.name: s for s in method.stages(_batch(), StepInfo(5, 10))}
    assert after["A"].losses["pseudo"] > 0
    gdm = after["C"].losses["gdm"]
    assert gdm.requires_grad
    assert gdm > 0
    backbone_weight = method.backbone[1].weight
    (grad,) = torch.autograd.grad(gdm, [backbone_weight])
    assert grad.abs().sum() > 0  # second-order path to the generator


def test_pseudo_labels_are_module_state_and_need_target_indices():
    method = _cgdm()
    method.pseudo_labels = torch.tensor([2, 0, 1, 1, 0, 2])
    state = method.state_dict()
    fresh = _cgdm()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.pseudo_labels, method.pseudo_labels)
    no_index = Batch(*(getattr(_batch(), k) for k in ("x_src", "y_src", "x_tgt")))
    fresh.train()
    with pytest.raises(ValueError, match="idx_tgt"):
        list(fresh.stages(no_index, StepInfo(1, 10)))


@pytest.mark.parametrize(("bad", "key"), [
    ({"refresh_every": 0}, "refresh_every"), ({"gdm_weight": -1.0}, "gdm_weight"),
    ({"pseudo_weight": -0.5}, "pseudo_weight"), ({"cosine": "rows"}, "cosine")])
def test_bad_hyper_parameters_are_named(bad, key):
    with pytest.raises(ValueError, match=key):
        _cgdm(**bad)
