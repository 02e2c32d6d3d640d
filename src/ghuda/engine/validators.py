"""Unsupervised validators: scores of a checkpoint that use no target label (issue 27).

Every evaluation (`ghuda.engine.evaluate.evaluate_splits`) scores the network with each
registered validator from what its pass already computed, with no extra data pass:

* the logits of the TARGET evaluation images, WITHOUT their labels;
* the logits of the SOURCE validation images, with their SOURCE labels (DEV only).

A validator is one function ``Evidence -> float`` decorated with `register_validator` in this
module (its name, and whether higher or lower is better); the evaluation records its score
as ``val_<name>`` in history.jsonl, and metrics.json's `protocols` block gets a protocol
``<name>`` that selects the evaluation with the best score (`ghuda.engine.evaluate.protocols`).
Probabilities are ``softmax(logits)`` in float64. SND and DEV work on at most `SAMPLE_CAP`
images per domain, a subsample fixed by `capped` (its own seeded generator: no global RNG is
consumed, so training trajectories do not change).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ghuda.registry import Registry

VALIDATORS: Registry[Any] = Registry("validator", "ghuda.engine.validators")
SCORE_PREFIX = "val_"
SAMPLE_CAP = 2000
SUBSAMPLE_SEED = 0
SND_TEMPERATURE = 0.05
SND_EXCLUDED = -1e4  # similarities are at most 1 / SND_TEMPERATURE = 20
DEV_L2 = 1.0  # the domain classifier's penalty (scikit-learn's default C = 1)


@dataclass(frozen=True)
class Evidence:
    """What one evaluation pass gives the validators: target logits (no labels), source
    validation logits and their source labels."""

    target_logits: Tensor
    source_logits: Tensor
    source_labels: Tensor

    @cached_property
    def target_probs(self) -> Tensor:
        """softmax of the target logits, float64 (n_t x C)."""
        return torch.softmax(self.target_logits.double(), dim=1)


Validator = Callable[[Evidence], float]


def register_validator(name: str, higher_is_better: bool) -> Callable[[Validator], Validator]:
    """Register `fn` as validator `name`; `higher_is_better` is its direction."""

    def decorate(fn: Validator) -> Validator:
        fn.higher_is_better = higher_is_better  # type: ignore[attr-defined]
        return VALIDATORS.register(name)(fn)

    return decorate


def capped(n: int, cap: int = SAMPLE_CAP) -> Tensor:
    """Indices of at most `cap` of `n` samples: all of them, or a sorted subsample drawn by a
    generator seeded with `SUBSAMPLE_SEED` (the same at every evaluation)."""
    if n <= cap:
        return torch.arange(n)
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    return torch.from_numpy(np.sort(rng.choice(n, size=cap, replace=False)))


def row_entropy(p: Tensor) -> Tensor:
    """Shannon entropy (nats) of each row of a probability matrix, 0 log 0 = 0."""
    return torch.special.entr(p).sum(dim=1)


@register_validator("entropy", higher_is_better=False)
def entropy(ev: Evidence) -> float:
    """Mean prediction entropy on the target, ``(1/n) Σ_i H(p_i)``, ``H(p) = -Σ_c p_c log p_c``;
    lower is better (Morerio, Cavazza & Murino, ICLR 2018, "Minimal-entropy correlation
    alignment"; pytorch-adapt's EntropyValidator)."""
    return float(row_entropy(ev.target_probs).mean())


@register_validator("im", higher_is_better=True)
def information_maximization(ev: Evidence) -> float:
    """Information maximisation ``H(mean_i p_i) - (1/n) Σ_i H(p_i)`` (diverse and confident
    target predictions); higher is better (Shi & Sha, ICML 2012; Hu et al., ICML 2017)."""
    p = ev.target_probs
    return float(row_entropy(p.mean(dim=0, keepdim=True))[0] - row_entropy(p).mean())


@register_validator("snd", higher_is_better=True)
def soft_neighborhood_density(ev: Evidence) -> float:
    """Soft neighbourhood density (Saito et al., ICCV 2021): target probabilities ``p_i``
    L2-normalised, similarities ``s_ij = p_i·p_j / τ`` (τ = 0.05) without self-similarity,
    ``q_i = softmax_j(s_ij)``, score ``(1/n) Σ_i H(q_i)``; higher is better. On `capped`
    target images; the n x n matrix in float32 (the cost of a validator is this matrix), the
    self-similarity set to `SND_EXCLUDED` (its exp is exactly 0: excluded, with finite logs)."""
    p = ev.target_probs[capped(len(ev.target_probs))]
    if len(p) < 2:
        raise ValueError("SND needs at least 2 target images")
    p = F.normalize(p, dim=1).float()
    sim = p @ p.T / SND_TEMPERATURE
    sim.fill_diagonal_(SND_EXCLUDED)
    log_q = torch.log_softmax(sim, dim=1)
    return float(-(log_q.exp() * log_q).sum(dim=1).mean())


@register_validator("bnm", higher_is_better=True)
def batch_nuclear_norm(ev: Evidence) -> float:
    """Nuclear norm of the target prediction matrix over the number of samples,
    ``||P||_* / n`` (sum of singular values of the n x C matrix of ``p_i``); higher is better
    (Cui et al., CVPR 2020, "Towards discriminability and diversity")."""
    p = ev.target_probs
    return float(torch.linalg.svdvals(p).sum() / len(p))


def fit_logistic(x: Tensor, y: Tensor, l2: float = DEV_L2, max_iter: int = 100) -> Tensor:
    """Weights (last: the intercept) of an L2-penalised logistic regression fitted by
    Newton's method: minimises ``Σ_i log(1 + exp(-ỹ_i f(x_i))) + (l2/2)||w||²`` (intercept not
    penalised), scikit-learn's LogisticRegression(C=1/l2) objective. Deterministic, no RNG."""
    design = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    penalty = torch.full((design.shape[1],), l2, dtype=x.dtype)
    penalty[-1] = 0.0
    w = torch.zeros(design.shape[1], dtype=x.dtype)
    for _ in range(max_iter):
        p = torch.sigmoid(design @ w)
        grad = design.T @ (p - y) + penalty * w
        hess = design.T @ (design * (p * (1 - p))[:, None]) + torch.diag(penalty)
        step = torch.linalg.solve(hess, grad)
        w = w - step
        if float(step.abs().max()) < 1e-10:
            break
    return w


def domain_weights(source: Tensor, target: Tensor) -> Tensor:
    """Importance weights ``w = (n_s/n_t) p(t|x) / p(s|x)`` of the source samples, from a
    logistic-regression domain classifier (`fit_logistic`) on source (0) vs target (1)
    features standardised with their pooled mean and standard deviation (You et al., ICML
    2019: the density ratio from a discriminator). ``p(t|x)/p(s|x) = exp(f(x))``, f the
    classifier's logit."""
    x = torch.cat([source, target]).double()
    std = x.std(dim=0)
    x = (x - x.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))
    y = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).double()
    w = fit_logistic(x, y)
    return (len(source) / len(target)) * torch.exp(x[: len(source)] @ w[:-1] + w[-1])


def dev_risk(weights: Tensor, losses: Tensor) -> float:
    """DEV's control-variate estimate of the target risk: ``L = w ℓ``, ``η = -Cov(L, w) /
    Var(w)`` (0 when the weights are constant), risk ``mean(L) + η mean(w) - η``
    (You et al., ICML 2019, "Towards accurate model selection in deep unsupervised domain
    adaptation": the control variate of the importance-weighted risk)."""
    weighted = (weights * losses).double()
    weights = weights.double()
    var = float(weights.var()) if len(weights) > 1 else 0.0
    cov = float(((weighted - weighted.mean()) * (weights - weights.mean())).sum()
                / max(len(weights) - 1, 1))
    eta = -cov / var if var > 0 else 0.0
    return float(weighted.mean() + eta * weights.mean() - eta)


@register_validator("dev", higher_is_better=False)
def deep_embedded_validation(ev: Evidence) -> float:
    """Deep embedded validation (You et al., ICML 2019): the source-validation cross-entropy
    with the SOURCE labels, importance-weighted towards the target (`domain_weights`) and
    corrected by a control variate (`dev_risk`); lower is better. Features: the network's
    logits (already computed by the evaluation; `Method.features` would need a second pass).
    The domain classifier is fitted on the `capped` source-validation and target images and
    weights the same source images."""
    s, t = capped(len(ev.source_logits)), capped(len(ev.target_logits))
    logits = ev.source_logits[s].double()
    losses = F.cross_entropy(logits, ev.source_labels[s], reduction="none")
    weights = domain_weights(logits, ev.target_logits[t].double())
    return dev_risk(weights, losses)


def scores(ev: Evidence) -> dict[str, float | None]:
    """Every registered validator's score, keyed ``val_<name>``; None where it is not finite,
    and for all of them when a logit is not (no score to trust)."""
    finite = bool(torch.isfinite(ev.target_logits).all() and
                  torch.isfinite(ev.source_logits).all())
    out: dict[str, float | None] = {}
    for name in VALIDATORS.names():
        value = VALIDATORS.get(name)(ev) if finite else None
        out[f"{SCORE_PREFIX}{name}"] = value if value is not None and np.isfinite(value) else None
    return out
