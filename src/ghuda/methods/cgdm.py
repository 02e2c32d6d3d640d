"""`cgdm`: Cross-Domain Gradient Discrepancy Minimization on top of MCD.

Du et al., "Cross-Domain Gradient Discrepancy Minimization for Unsupervised Domain
Adaptation", CVPR 2021, arXiv 2106.04151 (REFERENCE 2); facts from the released code
(``lijin118/CGDM``: ``train_visda.py``, ``train_image_clef.py``, ``train_test.py``,
``utils.py``).

Network, groups, lr multipliers, prediction and the harmonized pair are MCD's
(`ghuda.methods.mcd`: generator G = the backbone, heads F1, F2; steps A, B, C; pair in step B:
L1 = ``cls``, L2 = ``max_discrepancy``, measured on G), so CGDM combines with every harmonizer
exactly as MCD does (metaalign included: step B provides ``Stage.reevaluate``). CGDM adds:

- target pseudo-labels (`cluster_pseudo_labels`), recomputed by `refresh` from the whole
  target training set every `refresh_every` iterations, first after `refresh_every` iterations
  of plain MCD training (released: after the first epoch, then every epoch or every 2000
  iterations). Features are G's outputs in eval mode, probabilities the softmax of the summed
  logits of F1 and F2;
- step A: ``pseudo = pseudo_weight * (wCE(F1, y^) + wCE(F2, y^))`` on the target batch;
- step C (each of the num_k generator steps, G stepped): ``discrepancy`` as in MCD,
  ``entropy = entropy_weight * (ent(p1) + ent(p2))`` (the class-balance term MCD uses in
  steps A and B, as released) and ``gdm = gdm_weight * GDM``.

Entropy weighting (released ``Weighted_CrossEntropy``): ``wCE = sum_i w_i CE_i / sum_i w_i``
with ``w_i = 1 + exp(-H(p_i))`` (H with eps 1e-5); the weights carry gradient, the normaliser
does not. Deviation: the released helper takes the mean of ``w_i / sum_j w_j * CE_i``, an
extra factor 1/batch; here the weighted mean is used, so `pseudo_weight` weighs a mean loss
(GDM is a cosine and does not depend on the factor).

Gradient discrepancy (`gradient_discrepancy`, released ``gradient_discrepancy_loss_margin``):
for each head k, ``g_s = grad_{F_k} CE(source)`` and ``g_t = grad_{F_k} wCE(target, y^)`` over
the head's parameters with ``create_graph=True``; ``GDM_k`` is the mean over parameter tensors
of ``1 - cos(g_t, g_s)``, the cosine taken row-wise and averaged for weight matrices and over
the whole tensor for vectors (``cosine="per_tensor"``, as released), or ``1 - cos`` of the
flattened gradients over all the head's parameters (``cosine="flat"``);
``GDM = (GDM_1 + GDM_2) / 2``. Step C steps only G, so GDM reaches G through second-order
gradients.

Hyper-parameters: the defaults are the CGDM authors' released VisDA values (trade_off 1,
entropy_weight 0.01, num_k 4, head_hidden 1000, gdm_weight 0.01, pseudo_weight 0.01
(Image-CLEF: 0.1), refresh_every 2000, cosine per_tensor); digits-mini's cheaper values are in
`RELEASE.digits_mini`. The released ResNet scripts call an ``Entropy`` helper that the
repository does not define; its ``train_test.py`` uses the class-balance form used here.

Pseudo-labels are part of `state_dict` (module extra state), so a resumed run continues with
the labels it had.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ghuda.methods import release
from ghuda.methods.base import Batch, StepInfo
from ghuda.methods.checks import check_positive
from ghuda.methods.losses import class_balance_entropy, cross_entropy, entropy
from ghuda.methods.mcd import MCD
from ghuda.methods.registry import register

COSINES = ("per_tensor", "flat")


def entropy_weighted_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """``sum_i w_i CE_i / sum_i w_i`` with ``w_i = 1 + exp(-H(softmax(logits_i)))``, in float32
    or wider."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    w = 1.0 + torch.exp(-entropy(F.softmax(logits, dim=1)))
    ce = F.cross_entropy(logits, labels, reduction="none")
    return (w * ce).sum() / w.sum().detach()


def _cosine(a: Tensor, b: Tensor) -> Tensor:
    """Released per-tensor cosine: row-wise mean for matrices, whole tensor for vectors."""
    if a.dim() > 1:
        return F.cosine_similarity(a, b, dim=1).mean()
    return F.cosine_similarity(a, b, dim=0)


def gradient_discrepancy(params: list[nn.Parameter], source_loss: Tensor, target_loss: Tensor,
                         cosine: str = "per_tensor") -> Tensor:
    """``1 - cos(grad target_loss, grad source_loss)`` over `params`, differentiable.

    ``per_tensor``: mean over tensors of ``1 - _cosine``; ``flat``: one cosine of the
    concatenated gradients. Both gradients keep their graphs (``create_graph=True``).
    """
    if cosine not in COSINES:
        raise ValueError(f"gradient_discrepancy: cosine must be one of {COSINES}, got "
                         f"{cosine!r}")
    g_s = torch.autograd.grad(source_loss, params, create_graph=True)
    g_t = torch.autograd.grad(target_loss, params, create_graph=True)
    if cosine == "flat":
        flat_t = torch.cat([g.reshape(-1) for g in g_t])
        flat_s = torch.cat([g.reshape(-1) for g in g_s])
        return 1.0 - F.cosine_similarity(flat_t, flat_s, dim=0)
    return (1.0 - torch.stack([_cosine(t, s) for t, s in zip(g_t, g_s, strict=True)])).mean()


def _assign(features: Tensor, centroids: Tensor, present: Tensor) -> Tensor:
    """Nearest centroid by cosine; absent (empty) clusters are never chosen."""
    cos = features @ F.normalize(centroids, dim=1).T
    return cos.masked_fill(~present, float("-inf")).argmax(dim=1)


def cluster_pseudo_labels(features: Tensor, probs: Tensor, rounds: int = 1) -> Tensor:
    """CGDM / SHOT-style clustering pseudo-labels (REFERENCE 2).

    Features get a constant 1 appended and are L2-normalised; initial centroids are the
    probability-weighted sums of the features (their normalisation does not change a cosine),
    each sample takes the centroid of highest cosine, then `rounds` refinements recompute the
    centroids from the hard labels. A class left with no sample is skipped (the released
    ``cdist`` would return NaN distances for it).
    """
    if features.dim() != 2 or probs.dim() != 2 or features.shape[0] != probs.shape[0]:
        raise ValueError(f"cluster_pseudo_labels: features (n, d) and probs (n, C) expected, "
                         f"got {tuple(features.shape)} and {tuple(probs.shape)}")
    f = features.double()
    f = F.normalize(torch.cat((f, torch.ones_like(f[:, :1])), dim=1), dim=1)
    weights = probs.double()
    labels = _assign(f, weights.T @ f, weights.sum(dim=0) > 0)
    for _ in range(rounds):
        onehot = F.one_hot(labels, probs.shape[1]).double()
        labels = _assign(f, onehot.T @ f, onehot.sum(dim=0) > 0)
    return labels


@register("cgdm")
class CGDM(MCD):
    """CGDM; see the module docstring for the added losses, pseudo-labels and defaults."""

    label: ClassVar[str] = "CGDM"

    # Not in the GH release: the CGDM authors' VisDA settings are the defaults, with MCD's
    # optimizers and schedule.
    RELEASE: ClassVar[release.Release] = release.Release(
        train=MCD.RELEASE.train,
        digits_mini={
            "trade_off": release.Cheaper(0.3, "MCD's released Digits value"),
            "num_k": release.Cheaper(1, "cost, as for mcd"),
            "head_hidden": release.Cheaper(256, "cost, as for mcd"),
            "refresh_every": release.Cheaper(100, "a few hundred steps per run")})

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, *,
                 trade_off: float = 1.0, entropy_weight: float = 0.01, num_k: int = 4,
                 head_hidden: int = 1000, gdm_weight: float = 0.01, pseudo_weight: float = 0.01,
                 refresh_every: int = 2000, cosine: str = "per_tensor",
                 optimizer: str = "released", augment: str = "released") -> None:
        super().__init__(backbone, feature_dim, num_classes, trade_off=trade_off,
                         entropy_weight=entropy_weight, num_k=num_k, head_hidden=head_hidden,
                         optimizer=optimizer, augment=augment,
                         oracle="ensemble")  # not in the GH release: no released oracle
        check_positive("cgdm", refresh_every=refresh_every)
        for key, value in (("gdm_weight", gdm_weight), ("pseudo_weight", pseudo_weight)):
            if not value >= 0:
                raise ValueError(f"method 'cgdm': {key} must be >= 0, got {value}")
        if cosine not in COSINES:
            raise ValueError(f"method 'cgdm': cosine must be one of {COSINES}, got {cosine!r}")
        self.gdm_weight = float(gdm_weight)
        self.pseudo_weight = float(pseudo_weight)
        self.refresh_every = int(refresh_every)
        self.cosine = cosine
        self.pseudo_labels: Tensor | None = None
        self._logits: tuple[Tensor, Tensor, int] | None = None

    @classmethod
    def dataset_crop(cls, params: dict[str, Any], dataset: str, domain: str) -> str:
        """MCD's crop without its VisDA centre crop (CGDM is not in the GH release)."""
        return cls.train_crop(params, domain)

    # ---- pseudo-labels: computed by `refresh`, carried by state_dict ----
    def refresh(self, target_images: Iterable[Tensor], info: StepInfo) -> None:
        """Cluster the whole target set (first after `refresh_every` iterations)."""
        if info.step == 0:
            return
        feats, logits = [], []
        for x in target_images:
            g = self.backbone(x)
            feats.append(g.float())
            logits.append((self.head1(g) + self.head2(g)).float())
        self.pseudo_labels = cluster_pseudo_labels(torch.cat(feats),
                                                   F.softmax(torch.cat(logits), dim=1))

    def get_extra_state(self) -> dict[str, Any]:
        return {"pseudo_labels": self.pseudo_labels}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        labels = state["pseudo_labels"]
        device = next(self.parameters()).device
        self.pseudo_labels = None if labels is None else labels.to(device)

    def _batch_labels(self, batch: Batch) -> Tensor | None:
        if self.pseudo_labels is None:
            return None
        if batch.idx_tgt is None:
            raise ValueError("method 'cgdm' needs Batch.idx_tgt (the target rows' indices, set "
                             "by the engine) to look up its pseudo-labels")
        return self.pseudo_labels[batch.idx_tgt]

    # ---- losses: MCD's, plus the pseudo-label and gradient-discrepancy terms ----
    def forward_both(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """MCD's joint forward; keeps both heads' logits for the CGDM terms of `losses`."""
        n_src = batch.x_src.shape[0]
        g = self.backbone(torch.cat((batch.x_src, batch.x_tgt)))
        y1, y2 = self.head1(g), self.head2(g)
        self._logits = (y1, y2, n_src)
        return (y1[:n_src], y2[:n_src], F.softmax(y1[n_src:], dim=1),
                F.softmax(y2[n_src:], dim=1))

    def losses(self, batch: Batch, step: str) -> dict[str, Tensor]:
        """MCD's losses of step "A", "B" or "C", with CGDM's terms added to A and C."""
        out = super().losses(batch, step)
        if self._logits is None:
            raise RuntimeError("cgdm: MCD.losses did not call forward_both")
        y1, y2, n = self._logits
        self._logits = None
        if step == "B":
            return out
        labels = self._batch_labels(batch)
        zero = y1.new_zeros(()).float()
        t1, t2 = y1[n:], y2[n:]
        if step == "A":
            out["pseudo"] = zero if labels is None else self.pseudo_weight * (
                entropy_weighted_cross_entropy(t1, labels)
                + entropy_weighted_cross_entropy(t2, labels))
            return out
        out["entropy"] = self.entropy_weight * (class_balance_entropy(F.softmax(t1, dim=1))
                                                + class_balance_entropy(F.softmax(t2, dim=1)))
        out["gdm"] = zero if labels is None else self.gdm_weight * self.gdm(
            (y1[:n], y2[:n]), (t1, t2), batch.y_src, labels)
        return out

    def gdm(self, source_logits: tuple[Tensor, Tensor], target_logits: tuple[Tensor, Tensor],
            y_src: Tensor, pseudo: Tensor) -> Tensor:
        """``(GDM_1 + GDM_2) / 2`` over each head's parameters (module docstring)."""
        parts = [gradient_discrepancy([p for p in head.parameters() if p.requires_grad],
                                      cross_entropy(s, y_src),
                                      entropy_weighted_cross_entropy(t, pseudo), self.cosine)
                 for head, s, t in zip((self.head1, self.head2), source_logits, target_logits,
                                       strict=True)]
        return (parts[0] + parts[1]) / 2
