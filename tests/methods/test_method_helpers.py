"""Shared loss helpers, CDAN's multilinear maps, DWL's dynamic weight, SSRT's pieces."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from method_toys import build, toy_batch

from ghuda.methods.dwl import DynamicWeight, lda_criterion
from ghuda.methods.losses import (
    class_balance_entropy,
    classifier_discrepancy,
    entropy,
    entropy_weighted_domain_loss,
)
from ghuda.methods.networks import RandomizedMultilinearMap, multilinear_map
from ghuda.methods.ssrt import diversity_dropped, self_refinement_loss

probs_strategy = st.integers(0, 10_000).map(
    lambda s: F.softmax(3 * torch.randn(6, 4, generator=torch.Generator().manual_seed(s)), 1))


# ---------------------------------------------------------------- entropies, discrepancy
def test_entropy_of_one_hot_and_uniform():
    k = 5
    assert entropy(torch.eye(k)).abs().max() < 1e-4
    assert torch.allclose(entropy(torch.full((2, k), 1 / k)), torch.tensor(math.log(k)),
                          atol=1e-4)


@given(probs_strategy, probs_strategy)
@settings(max_examples=30, deadline=None)
def test_classifier_discrepancy_properties(p, q):
    d = classifier_discrepancy(p, q)
    assert torch.isclose(d, classifier_discrepancy(q, p))
    assert torch.isclose(d, (p - q).abs().sum() / p.numel())
    assert 0 <= d <= 2 / p.shape[1] + 1e-6  # each row's L1 distance is at most 2
    assert classifier_discrepancy(p, p) == 0


@given(probs_strategy)
@settings(max_examples=30, deadline=None)
def test_class_balance_entropy_is_minimal_for_a_uniform_mean_prediction(p):
    k = p.shape[1]
    uniform_mean = torch.eye(k)  # one sample per class: the mean prediction is uniform
    assert class_balance_entropy(uniform_mean) == pytest.approx(math.log(k), abs=1e-4)
    assert class_balance_entropy(p) >= class_balance_entropy(uniform_mean) - 1e-6


# ---------------------------------------------------------------- entropy conditioning
def test_entropy_weighted_domain_loss_matches_the_released_formula():
    torch.manual_seed(0)
    logits, probs = torch.randn(8, 1), F.softmax(torch.randn(8, 3) * 2, 1)
    ent = entropy(probs)
    for offset in (1.0, 0.0):  # CDAN+E, GVB
        w = offset + torch.exp(-ent)
        w = torch.cat((w[:5] / w[:5].sum(), w[5:] / w[5:].sum()))
        labels = torch.tensor([1.0] * 5 + [0.0] * 3)
        bce = F.binary_cross_entropy(torch.sigmoid(logits[:, 0]), labels, reduction="none")
        expected = (w * bce).sum() / 2
        got = entropy_weighted_domain_loss(logits, 5, ent, offset=offset, coeff=1.0)
        assert torch.allclose(got, expected, atol=1e-6)


def test_entropy_conditioning_weighs_confident_samples_more():
    logits = torch.zeros(4, 1)  # equal BCE everywhere: the loss gradient shows the weights
    logits.requires_grad_(True)
    probs = torch.tensor([[0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3]] * 2)
    entropy_weighted_domain_loss(logits, 2, entropy(probs), offset=1.0, coeff=1.0).backward()
    g = logits.grad[:, 0].abs()
    assert g[0] > g[1]
    assert g[2] > g[3]


@pytest.mark.parametrize("coeff", [0.0, 0.3, 1.0])
def test_entropy_gradient_passes_a_reversal_with_the_grl_coefficient(coeff):
    logits = torch.randn(6, 1, generator=torch.Generator().manual_seed(1))
    ent = entropy(F.softmax(torch.randn(6, 3, generator=torch.Generator().manual_seed(2)), 1))

    def grad(c: float) -> torch.Tensor:
        e = ent.clone().requires_grad_(True)
        entropy_weighted_domain_loss(logits, 3, e, offset=1.0, coeff=c).backward()
        return e.grad

    plain = grad(-1.0)  # reversal by -1: the unreversed gradient
    assert torch.allclose(grad(coeff), -coeff * plain, atol=1e-7)


# ---------------------------------------------------------------- multilinear maps
def test_full_multilinear_map_is_the_flattened_outer_product():
    f, g = torch.randn(3, 4), torch.rand(3, 2)
    out = multilinear_map(f, g)
    assert out.shape == (3, 8)
    assert torch.allclose(out[1].reshape(2, 4), torch.outer(g[1], f[1]))


def test_randomized_map_dimension_buffers_and_inner_product_scale():
    torch.manual_seed(0)
    m = RandomizedMultilinearMap(feature_dim=6, num_classes=3, dim=40_000)
    assert {"r_features", "r_classes"} <= set(m.state_dict())
    assert not list(m.parameters())
    f, g = torch.randn(2, 6), F.softmax(torch.randn(2, 3), 1)
    t = m(f, g)
    assert t.shape == (2, 40_000)
    # E <T(f, g), T(f', g')> = <f, f'> <g, g'> (the full map's inner product); 1/sqrt(d) scale
    for i, j in ((0, 0), (1, 1), (0, 1)):
        expected = float((f[i] @ f[j]) * (g[i] @ g[j]))
        scale = float(f[i].norm() * f[j].norm() * g[i].norm() * g[j].norm())
        assert abs(float(t[i] @ t[j]) - expected) < 0.05 * scale


def test_cdan_uses_the_randomized_map_of_the_configured_dimension():
    method = build("cdan", random_dim=48)
    assert method.random_map is not None
    assert method.random_map.dim == 48
    assert method.discriminator[0].in_features == 48
    full = build("cdan", randomized=False, bottleneck_dim=8)
    assert full.random_map is None
    assert full.discriminator[0].in_features == 8 * 3


# ---------------------------------------------------------------- DWL's dynamic weight
def naive_lda(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """The released computation: explicit scatter matrices, inv, eig, top k-1 over k."""
    sw = np.zeros((x.shape[1], x.shape[1]))
    sb = np.zeros_like(sw)
    mu = x.mean(0)
    for c in np.unique(y):
        xc = x[y == c]
        d = xc - xc.mean(0)
        sw += d.T @ d
        sb += len(xc) * np.outer(xc.mean(0) - mu, xc.mean(0) - mu)
    eig = np.linalg.eigvals(np.linalg.inv(sw + 1e-6 * np.eye(len(sw))) @ sb).real
    return float(np.sort(eig)[::-1][: k - 1].sum() / k)


def test_window_accumulation_matches_the_released_lda_and_mmd():
    torch.manual_seed(0)
    k, d, window = 3, 5, 4
    dw = DynamicWeight(d, k)
    xs, ys, xt, yt = [], [], [], []
    for i in range(window - 1):
        xs.append(torch.randn(10, d) + i), ys.append(torch.arange(10) % k)
        xt.append(torch.randn(10, d) * 2), yt.append(torch.randint(k, (10,)))
        dw.update(xs[-1], ys[-1], xt[-1], yt[-1], window)
    x, y = torch.cat(xs).double().numpy(), torch.cat(ys).numpy()
    got = lda_criterion(dw.src_counts.numpy(), dw.src_sums.numpy(), dw.src_within.numpy(), k)
    assert got == pytest.approx(naive_lda(x, y, k), rel=1e-6)
    centred = x - np.stack([x[y == c].mean(0) for c in range(k)])[y]
    assert np.allclose(dw.src_within.numpy(), centred.T @ centred)
    assert dw.T == 0.5  # the window is not finished: the released initial value


def test_t_after_the_first_window_follows_the_released_normalisation():
    torch.manual_seed(0)
    k, d = 3, 4
    dw = DynamicWeight(d, k)
    xs, ys = torch.randn(30, d), torch.arange(30) % k
    xt, yt = torch.randn(30, d) + 1.0, torch.arange(30) % k
    dw.update(xs, ys, xt, yt, window=1)
    a = float(((xs.double().mean(0) - xt.double().mean(0)) ** 2).sum())
    j_s = naive_lda(xs.double().numpy(), ys.numpy(), k)
    j_t = naive_lda(xt.double().numpy(), yt.numpy(), k)
    a_norm = a / (a + 1e-6)  # running min 0, running max a
    j_max, j_min = max(1.0, j_s, j_t), min(1.0, j_s, j_t)
    j_norm = (min(j_s, j_t) - j_min) / (j_max - j_min + 1e-6)
    assert pytest.approx(a_norm / (a_norm + 1 - j_norm), rel=1e-6) == dw.T


@given(st.integers(0, 10_000), st.integers(1, 3), st.floats(0.0, 5.0))
@settings(max_examples=25, deadline=None)
def test_t_stays_in_the_unit_interval(seed, windows, shift):
    g = torch.Generator().manual_seed(seed)
    k, d = 3, 4
    dw = DynamicWeight(d, k)
    for i in range(2 * windows):
        scale = 1.0 + i
        dw.update(scale * torch.randn(9, d, generator=g), torch.randint(k, (9,), generator=g),
                  scale * torch.randn(9, d, generator=g) + shift,
                  torch.randint(k, (9,), generator=g), window=2)
        assert 0.0 <= dw.T <= 1.0


def test_missing_pseudo_label_classes_are_handled():
    dw = DynamicWeight(4, 3)
    dw.update(torch.randn(9, 4), torch.arange(9) % 3, torch.randn(9, 4),
              torch.zeros(9, dtype=torch.long), window=1)  # every target predicted as class 0
    assert 0.0 <= dw.T <= 1.0


def test_dynamic_weight_resumes_mid_window_exactly():
    torch.manual_seed(0)
    batches = [(torch.randn(6, 4), torch.arange(6) % 3, torch.randn(6, 4),
                torch.randint(3, (6,))) for _ in range(5)]
    straight = DynamicWeight(4, 3)
    for b in batches:
        straight.update(*b, window=3)
    first = DynamicWeight(4, 3)
    for b in batches[:2]:
        first.update(*b, window=3)
    resumed = DynamicWeight(4, 3)
    resumed.load_state_dict(first.state_dict())
    for b in batches[2:]:
        resumed.update(*b, window=3)
    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_dwl_window_defaults_to_a_tenth_of_the_run():
    from ghuda.methods.base import StepInfo
    from ghuda.methods.dwl import WINDOWS

    method = build("dwl", window=None)
    method.train()
    for step in range(3):
        list(method.stages(toy_batch(seed=step), StepInfo(step, 20)))
    assert int(method.dynamic_weight.state[WINDOWS]) == 1  # closed after 20 // 10 iterations


# ---------------------------------------------------------------- SSRT
def test_ssrt_schedules_default_to_a_tenth_of_the_run():
    from ghuda.methods.base import StepInfo

    method = build("ssrt", safe_period=None, grl_max_iter=None)
    assert method.check_interval(1000) == 100
    assert method.check_interval(80) == 16  # at least 2**safe_levels
    assert method.grl_coeff(StepInfo(0, 1000)) == 0.0
    assert method.grl_coeff(StepInfo(1000, 1000)) == pytest.approx(0.0999, abs=1e-4)
    released = build("ssrt", grl_max_iter=1000.0, safe_period=1000)
    assert released.grl_coeff(StepInfo(1000, 10_000)) == pytest.approx(
        0.2 / (1 + math.exp(-1)) - 0.1)
    assert released.check_interval(10_000) == 1000
    method.train()
    list(method.stages(toy_batch(), StepInfo(0, 80)))
    assert method.safe["period"] == 16
def test_ssrt_default_layers_scale_the_released_ones_to_the_depth():
    assert build("ssrt").sr_layers == [0, 1, 2]  # 4-block toy ViT
    assert build("ssrt", sr_layers=[-1, 3]).sr_layers == [-1, 3]


@pytest.mark.parametrize("layer", [-1, 0, 3])
def test_ssrt_perturbation_appends_perturbed_target_rows(layer):
    method = build("ssrt")
    method.eval()
    batch = toy_batch()
    x = torch.cat((batch.x_src, batch.x_tgt))
    n_src, n = batch.x_src.shape[0], x.shape[0]
    clean = method.backbone(x)
    same = method.perturbed_features(x, n_src, layer, alpha=0.0)
    assert same.shape == (n + n - n_src, clean.shape[1])
    assert torch.allclose(same[:n], clean, atol=1e-6)
    assert torch.allclose(same[n:], clean[n_src:], atol=1e-6)
    moved = method.perturbed_features(x, n_src, layer, alpha=0.5)
    assert torch.allclose(moved[:n], clean, atol=1e-6)
    assert not torch.allclose(moved[n:], clean[n_src:], atol=1e-3)


def test_self_refinement_loss_masks_unconfident_teachers():
    confident = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # 2nd row uniform: masked
    student = torch.tensor([[0.0, 4.0, 0.0], [0.0, 3.0, 0.0]])
    loss = self_refinement_loss(confident, student, epsilon=0.4, clean_teaches=True)
    p = F.softmax(confident[0], 0)
    kl = (p * (F.log_softmax(confident[0], 0) - F.log_softmax(student[0], 0))).sum()
    assert loss == pytest.approx(float(kl), rel=1e-4)
    assert self_refinement_loss(confident, confident, 0.4, True) == pytest.approx(0.0, abs=1e-6)
    reverse = self_refinement_loss(confident, student, epsilon=0.4, clean_teaches=False)
    assert reverse != pytest.approx(float(loss))


def test_safe_training_ramp_and_diversity_check():
    method = build("ssrt", safe_period=16)
    assert method.ramp(0) == 0.0
    assert method.ramp(8) == pytest.approx(math.sin(math.pi / 4))
    assert method.ramp(16) == 1.0
    assert build("ssrt", safe_training=False).ramp(0) == 1.0
    assert not diversity_dropped([10] * 16, None, 4)
    assert diversity_dropped([10] * 8 + [7] * 8, None, 4)
    assert not diversity_dropped([10] * 8 + [9.5] * 8, None, 4)
    assert diversity_dropped([10] * 16, [13] * 16, 4)  # compared with the previous period


def test_safe_training_restarts_the_ramp_on_a_diversity_drop_and_resumes():
    method = build("ssrt", safe_period=16)
    for step in range(16):  # first period: diversity falls from 3 to 1
        method._safe_begin(step, 16)
        method._safe_end(step, 16, 3 if step < 8 else 1, r=method.ramp(step))
    assert method.safe["restore"]
    assert method.safe["phase"] == 15
    assert method.safe["period"] == 32  # a restart within one period of the last doubles it
    assert method.ramp(15) == 0.0
    assert 0 < method.ramp(20) < 1
    state = method.state_dict()
    fresh = build("ssrt", safe_period=16)
    fresh.load_state_dict(state)
    assert fresh.safe == method.safe
