"""The unsupervised validators (issue 27): hand-computed values on tiny fixed inputs,
invariances, directions, and the protocols they select."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from ghuda.engine.evaluate import SELECTIONS, protocol_names, protocols
from ghuda.engine.validators import (
    SCORE_PREFIX,
    VALIDATORS,
    Evidence,
    capped,
    dev_risk,
    domain_weights,
    fit_logistic,
    scores,
)

# three target predictions with no zero, and their hand-computed entropies (nats)
P = [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [1 / 3, 1 / 3, 1 / 3]]
H_ROWS = [1.5 * math.log(2), 1.5 * math.log(2), math.log(3)]


def logits_of(probs: list[list[float]]) -> torch.Tensor:
    """Logits whose softmax is `probs` (a zero probability: a logit 60 below the others)."""
    p = torch.tensor(probs, dtype=torch.float64)
    return torch.where(p > 0, p.log(), torch.full_like(p, -60.0))


def evidence(target: list[list[float]], source: list[list[float]] | None = None,
             labels: list[int] | None = None) -> Evidence:
    source = target if source is None else source
    labels = [0] * len(source) if labels is None else labels
    return Evidence(logits_of(target), logits_of(source), torch.tensor(labels))


def validator(name: str):
    return VALIDATORS.get(name)


def test_entropy_by_hand():
    assert validator("entropy")(evidence(P)) == pytest.approx(sum(H_ROWS) / 3, rel=1e-12)


def test_information_maximization_by_hand():
    mean = [13 / 36, 13 / 36, 10 / 36]  # the column means of P
    h_mean = -sum(m * math.log(m) for m in mean)
    assert validator("im")(evidence(P)) == pytest.approx(h_mean - sum(H_ROWS) / 3, rel=1e-12)


def test_bnm_by_hand():
    # one-hot diverse: singular values 1, 1, 1; collapsed on one class: one singular value
    # sqrt(3); uniform: one singular value 1 (Frobenius norm 1); a 2x2 block of 0.5 and a 1:
    # singular values 1 and 1
    bnm = validator("bnm")
    assert bnm(evidence([[1, 0, 0], [0, 1, 0], [0, 0, 1]])) == pytest.approx(1.0, abs=1e-12)
    assert bnm(evidence([[1, 0, 0]] * 3)) == pytest.approx(math.sqrt(3) / 3, abs=1e-12)
    assert bnm(evidence([[1 / 3] * 3] * 3)) == pytest.approx(1 / 3, abs=1e-12)
    assert bnm(evidence([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1]])) == pytest.approx(
        2 / 3, abs=1e-12)


def _binary_like_entropy(weights: list[float]) -> float:
    total = sum(weights)
    return -sum(w / total * math.log(w / total) for w in weights)


def test_snd_by_hand():
    snd = validator("snd")
    # every row has two equally similar neighbours: entropy ln 2
    assert snd(evidence([[1, 0, 0], [0, 1, 0], [0, 0, 1]])) == pytest.approx(math.log(2),
                                                                             abs=1e-6)
    assert snd(evidence([[1, 0, 0]] * 3)) == pytest.approx(math.log(2), abs=1e-6)
    # a, a, c: a's neighbours at similarity 1/0.05 = 20 (the other a) and 0 (c); c's both 0
    a_row = _binary_like_entropy([math.exp(20), 1.0])
    assert snd(evidence([[1, 0, 0], [1, 0, 0], [0, 1, 0]])) == pytest.approx(
        (2 * a_row + math.log(2)) / 3, abs=1e-6)
    # a, a, c, c: every row has one neighbour at 20 and two at 0
    row = _binary_like_entropy([math.exp(20), 1.0, 1.0])
    assert snd(evidence([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]])) == pytest.approx(
        row, abs=1e-6)


def test_snd_needs_two_images():
    with pytest.raises(ValueError, match="at least 2"):
        validator("snd")(evidence([[1, 0, 0]]))


def test_dev_risk_by_hand():
    # L = w: Cov(L, w) = Var(w), eta = -1: risk = mean(L) - mean(w) + 1 = 1, the true loss
    assert dev_risk(torch.tensor([1.0, 2.0, 3.0]), torch.ones(3)) == pytest.approx(1.0)
    # L = [1, 0], mean(w) = 1, Var(w) = 0.5, Cov(L, w) = -0.5: eta = 1, risk = 0.5 + 1 - 1
    assert dev_risk(torch.tensor([0.5, 1.5]), torch.tensor([2.0, 0.0])) == pytest.approx(0.5)
    # constant weights: no control variate, the weighted mean
    assert dev_risk(torch.full((3,), 2.0), torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(4.0)


def test_dev_with_identical_domains_is_the_mean_source_loss():
    ev = evidence(P, P, labels=[0, 0, 2])
    weights = domain_weights(ev.source_logits, ev.target_logits)
    assert torch.allclose(weights, torch.ones(3, dtype=torch.float64), atol=1e-8)
    by_hand = (math.log(2) + math.log(4) + math.log(3)) / 3  # -log p(label) per row
    assert validator("dev")(ev) == pytest.approx(by_hand, abs=1e-8)


def test_dev_weights_favour_source_images_that_look_like_the_target():
    source = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)
    target = torch.tensor([[2.5], [3.0], [3.5]], dtype=torch.float64)
    w = domain_weights(source, target)
    assert bool((w[1:] > w[:-1]).all())


def test_domain_classifier_matches_scikit_learn():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=g, dtype=torch.float64)
    y = (torch.rand(200, generator=g, dtype=torch.float64) < torch.sigmoid(2 * x[:, 0])).double()
    w = fit_logistic(x, y)
    ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(x.numpy(), y.numpy())
    assert w[:-1].numpy() == pytest.approx(ref.coef_[0], abs=1e-6)
    assert float(w[-1]) == pytest.approx(float(ref.intercept_[0]), abs=1e-6)


def test_class_permutation_leaves_target_only_validators_unchanged():
    g = torch.Generator().manual_seed(1)
    target = 3 * torch.randn(50, 5, generator=g, dtype=torch.float64)
    source = 3 * torch.randn(20, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (20,), generator=g)
    perm = torch.tensor([3, 0, 4, 1, 2])
    inverse = torch.argsort(perm)
    ev = Evidence(target, source, labels)
    permuted = Evidence(target[:, perm], source[:, perm], inverse[labels])
    for name in VALIDATORS.names():  # DEV too: its source labels are permuted alike
        assert VALIDATORS.get(name)(permuted) == pytest.approx(VALIDATORS.get(name)(ev),
                                                               rel=1e-6), name


def test_directions_are_declared():
    # the references' directions (module docstrings); every registered validator has one
    expected = {"entropy": False, "im": True, "snd": True, "bnm": True, "dev": False}
    for name in VALIDATORS.names():
        assert isinstance(VALIDATORS.get(name).higher_is_better, bool), name
    assert {n: VALIDATORS.get(n).higher_is_better for n in expected} == expected


def test_confident_diverse_predictions_beat_uniform_ones_on_entropy_im_bnm():
    good, bad = evidence([[1, 0, 0], [0, 1, 0], [0, 0, 1]]), evidence([[1 / 3] * 3] * 3)
    for name in ("entropy", "im", "bnm"):
        sign = 1 if VALIDATORS.get(name).higher_is_better else -1
        assert sign * (validator(name)(good) - validator(name)(bad)) > 0, name


def test_lower_source_loss_is_a_better_dev_score():
    right = evidence(P, [[0.9, 0.05, 0.05]], labels=[0])
    wrong = evidence(P, [[0.05, 0.9, 0.05]], labels=[0])
    assert validator("dev")(right) < validator("dev")(wrong)


def test_scores_keys_and_non_finite_logits():
    ev = evidence(P, P, labels=[0, 1, 2])
    out = scores(ev)
    assert list(out) == [f"{SCORE_PREFIX}{n}" for n in VALIDATORS.names()]
    assert all(isinstance(v, float) for v in out.values())
    broken = Evidence(torch.full((3, 3), float("nan")), ev.source_logits, ev.source_labels)
    assert all(v is None for v in scores(broken).values())


def test_capped_is_a_fixed_sorted_subsample():
    assert torch.equal(capped(5, cap=10), torch.arange(5))
    a, b = capped(100, cap=10), capped(100, cap=10)
    assert torch.equal(a, b)
    assert len(a) == 10
    assert bool((a[1:] > a[:-1]).all())


def _evals(values: list[float | None]) -> list[dict]:
    out = []
    for i, v in enumerate(values):
        record = {"kind": "eval", "step": 10 * (i + 1), "target_acc": 50.0 + i,
                  "target_mean_class_acc": 49.0 + i, "source_val_acc": 90.0,
                  "source_val_mean_class_acc": 90.0}
        record.update({f"{SCORE_PREFIX}{n}": v for n in VALIDATORS.names()})
        out.append(record)
    return out


def test_validator_protocols_pick_the_best_score_ties_earliest():
    block = protocols(_evals([1.0, 3.0, 3.0, None, 0.0]))
    assert list(block) == protocol_names()
    for name in VALIDATORS.names():
        want = 20 if VALIDATORS.get(name).higher_is_better else 50  # a missing score never wins
        assert block[name]["step"] == want, name
        assert block[name]["acc"] == 50.0 + want / 10 - 1
        assert "no target labels" in block[name]["selection"]
    assert set(SELECTIONS) < set(block)


def test_a_validator_without_any_score_has_no_protocol():
    assert list(protocols(_evals([None, None]))) == list(SELECTIONS)
