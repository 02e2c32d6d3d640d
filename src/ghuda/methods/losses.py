"""Losses shared by the UDA methods: source cross-entropy, the domain BCE forms, adversarial
and entropy-conditioned domain losses, entropies and the classifier discrepancy.

Facts from REFERENCE 1.4-1.5b: the domain loss is binary cross-entropy with source labelled 1
and target 0, averaged over the joint batch, in one of the released forms (`domain_bce`). Each
helper names the methods that use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ghuda.models.heads import reverse_gradient

# Per-sample binary cross-entropy forms of the domain loss (REFERENCE 1.5b).
DOMAIN_BCE_FORMS = ("bce", "bce_eps", "logits")


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Source classification loss in float32 (also under mixed precision)."""
    return F.cross_entropy(logits.float(), labels)


def domain_labels(n_src: int, n_tgt: int, like: Tensor) -> Tensor:
    """Float domain labels: 1 for the `n_src` source rows, 0 for the target rows."""
    return torch.cat((torch.ones(n_src, dtype=like.dtype, device=like.device),
                      torch.zeros(n_tgt, dtype=like.dtype, device=like.device)))


def domain_bce(logits: Tensor, labels: Tensor, form: str) -> Tensor:
    """Per-sample domain BCE of one logit per row, in float32.

    ``bce``: ``nn.BCELoss()(sigmoid(x))`` as released for CDAN+E, DANN and SSRT — PyTorch
    clamps its log at -100, so a saturated sigmoid gives a finite loss and a zero gradient;
    ``bce_eps``: ``-[y log(p + 1e-8) + (1 - y) log(1 - p + 1e-8)]``, GVB's released ``Myloss``;
    ``logits``: BCE with logits, whose gradient never saturates (not released).
    """
    logits, labels = logits.float().reshape(-1), labels.float().reshape(-1)
    if form == "logits":
        return F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    with torch.autocast(logits.device.type, enabled=False):
        p = torch.sigmoid(logits)
        if form == "bce":
            # a NaN probability gives a NaN loss (a divergence the engine reports), not
            # BCELoss's range error (a device assert on CUDA)
            bad = torch.isnan(p)
            loss = F.binary_cross_entropy(torch.where(bad, 0.5, p), labels, reduction="none")
            return torch.where(bad, torch.nan, loss)
        if form == "bce_eps":
            return -(labels * torch.log(p + 1e-8) + (1 - labels) * torch.log(1 - p + 1e-8))
    raise ValueError(f"unknown domain BCE form {form!r}; allowed: {', '.join(DOMAIN_BCE_FORMS)}")


def adversarial_monitor(domain_logits: Tensor, n_src: int, coeff: float
                        ) -> dict[str, Tensor | float]:
    """`Stage.monitor` of an adversarial method (issue 22): the reversal coefficient of the
    step and the discriminator's accuracy on the joint batch (source rows first; a positive
    logit says source), detached."""
    logits = domain_logits.detach().reshape(-1)
    correct = torch.cat((logits[:n_src] > 0, logits[n_src:] <= 0))
    return {"grl_coeff": float(coeff), "disc_acc": correct.float().mean()}


def domain_adversarial_loss(discriminator: nn.Module, z_src: Tensor, z_tgt: Tensor,
                            coeff: float, form: str = "bce",
                            monitor: dict[str, Tensor | float] | None = None) -> Tensor:
    """BCE of a discriminator behind a gradient reversal layer (source = 1, target = 0).

    The mean is over the joint batch, as in the released ``nn.BCELoss()``; `form` as in
    `domain_bce`. `monitor`, when given, receives `adversarial_monitor`'s scalars.
    """
    logits = discriminator(reverse_gradient(torch.cat((z_src, z_tgt), dim=0), coeff))
    labels = domain_labels(z_src.shape[0], z_tgt.shape[0], logits.float())
    if monitor is not None:
        monitor.update(adversarial_monitor(logits, z_src.shape[0], coeff))
    return domain_bce(logits, labels, form).mean()


def entropy(probs: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-sample entropy ``-sum_k p_k log(p_k + eps)`` (CDAN+E, GVB; eps as released)."""
    return -(probs * torch.log(probs + eps)).sum(dim=1)


def class_balance_entropy(probs: Tensor, eps: float = 1e-6) -> Tensor:
    """MCD's "entropy" term ``-mean_k log(mean_i p_ik + eps)`` (released tllib MCD).

    It is the cross-entropy of the uniform distribution to the batch-mean prediction: a
    class-balance (diversity) term, minimal when the mean prediction is uniform, not the mean
    per-sample entropy.
    """
    return -torch.log(probs.mean(dim=0) + eps).mean()


def classifier_discrepancy(p1: Tensor, p2: Tensor) -> Tensor:
    """Mean absolute difference of two probability matrices (MCD, DWL)."""
    return (p1 - p2).abs().mean()


def entropy_weighted_domain_loss(domain_logits: Tensor, n_src: int, ent: Tensor, *,
                                 offset: float, coeff: float, form: str = "bce") -> Tensor:
    """Entropy-conditioned domain BCE of CDAN+E (offset 1) and GVB (offset 0).

    Each sample weighs ``offset + exp(-H)``; the gradient reaching the entropy H passes a
    gradient reversal with coefficient `coeff` (released ``entropy.register_hook``). Weights
    are normalised to sum to one within each domain (normalisers detached), so the loss is
    the mean of the two domains' weighted BCEs: ``sum_i w_i bce_i / sum_i w_i``.
    `domain_logits` holds one logit per row, source rows first (label 1), target rows 0;
    `form` as in `domain_bce`.
    """
    w = offset + torch.exp(-reverse_gradient(ent, coeff))
    w_src, w_tgt = w[:n_src], w[n_src:]
    w = torch.cat((w_src / w_src.sum().detach(), w_tgt / w_tgt.sum().detach()))
    logits = domain_logits.reshape(-1).float()
    labels = domain_labels(n_src, logits.shape[0] - n_src, logits)
    return (w * domain_bce(logits, labels, form)).sum() / w.sum().detach()
