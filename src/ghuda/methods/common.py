"""Building blocks shared by the UDA methods (heads, losses, schedules, entropies, maps).

Facts from REFERENCE 1.4-1.5b: the released CDAN/GVB network is backbone -> bottleneck
(Linear, 256-d) -> classifier (Linear); the domain loss is binary cross-entropy with source
labelled 1 and target 0, averaged over the joint batch, in one of the released forms
(`domain_bce`); the gradient reversal coefficient follows ``grl_coefficient``
(``ghuda.models.heads``), the released discriminator counting its calls from 1 (`grl_coeff`).

Further helpers (entropies, classifier discrepancy, the entropy-conditioned domain loss of
CDAN+E / GVB, CDAN's randomized multilinear map, `reevaluator` for `Stage.reevaluate`) follow
the released code too; each names the methods that use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ghuda.methods import release
from ghuda.methods.base import Batch, StepInfo
from ghuda.models.heads import grl_coefficient, init_linear, reverse_gradient


class ClassifierHead(nn.Module):
    """Optional Linear bottleneck followed by a Linear classifier (the released ResNetFc).

    ``bottleneck_dim = 0`` classifies the backbone features directly.
    """

    def __init__(self, in_dim: int, num_classes: int, bottleneck_dim: int = 256,
                 init: str = "kaiming") -> None:
        super().__init__()
        if bottleneck_dim < 0:
            raise ValueError(f"bottleneck_dim must be >= 0, got {bottleneck_dim}")
        self.bottleneck = nn.Linear(in_dim, bottleneck_dim) if bottleneck_dim else None
        self.out_dim = bottleneck_dim or in_dim
        self.fc = nn.Linear(self.out_dim, num_classes)
        init_linear(self, init)

    def embed(self, features: Tensor) -> Tensor:
        """Bottleneck features (the input of the classifier and of the discriminators)."""
        return features if self.bottleneck is None else self.bottleneck(features)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        z = self.embed(features)
        return z, self.fc(z)

    def groups(self) -> dict[str, list[nn.Parameter]]:
        """{"bottleneck": ..., "classifier": ...}; no bottleneck group when there is none."""
        out = {} if self.bottleneck is None else {"bottleneck": list(self.bottleneck.parameters())}
        out["classifier"] = list(self.fc.parameters())
        return out


def joint_forward(backbone: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """Backbone features of source and target from one forward pass of the joint batch."""
    n = batch.x_src.shape[0]
    features = backbone(torch.cat((batch.x_src, batch.x_tgt), dim=0))
    return features[:n], features[n:]


def separate_forward(backbone: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """Source and target features from two forward passes (per-domain batch-norm statistics),
    as the released CDAN-family script does (cdan/train_image.py ~202-203)."""
    return backbone(batch.x_src), backbone(batch.x_tgt)


def grl_coeff(info: StepInfo, max_iter: float | None, counter: str = "zero") -> float:
    """Released reversal coefficient at this step; `max_iter` None uses the run length.

    ``counter="released"``: the coefficient of step + 1, as the released discriminator, which
    increments its call counter before using it (cdan/network.py ~404-407); ``"zero"``: of
    step (the released entropy hook, cdan/train_image.py ~219).
    """
    step = info.step + (1 if counter == "released" else 0)
    return grl_coefficient(step, max_iter=float(max_iter or info.total_steps))


# Per-sample binary cross-entropy forms of the domain loss (REFERENCE 1.5b).
DOMAIN_BCE_FORMS = ("bce", "bce_eps", "logits")


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


def adversarial_monitor(domain_logits: Tensor, n_src: int, coeff: float
                        ) -> dict[str, Tensor | float]:
    """`Stage.monitor` of an adversarial method (issue 22): the reversal coefficient of the
    step and the discriminator's accuracy on the joint batch (source rows first; a positive
    logit says source), detached."""
    logits = domain_logits.detach().reshape(-1)
    correct = torch.cat((logits[:n_src] > 0, logits[n_src:] <= 0))
    return {"grl_coeff": float(coeff), "disc_acc": correct.float().mean()}


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Source classification loss in float32 (also under mixed precision)."""
    return F.cross_entropy(logits.float(), labels)


LossFn = Callable[[], dict[str, Tensor]]


def params_of(*modules: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters of `modules`, in order (one parameter group)."""
    return [p for m in modules for p in m.parameters() if p.requires_grad]


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


def domain_labels(n_src: int, n_tgt: int, like: Tensor) -> Tensor:
    """Float domain labels: 1 for the `n_src` source rows, 0 for the target rows."""
    return torch.cat((torch.ones(n_src, dtype=like.dtype, device=like.device),
                      torch.zeros(n_tgt, dtype=like.dtype, device=like.device)))


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


class RandomizedMultilinearMap(nn.Module):
    """CDAN's randomized multilinear map ``(f R_f) * (g R_g) / sqrt(d)`` (Long et al. 2018).

    `R_f` (feature_dim x d) and `R_g` (num_classes x d) are fixed standard-normal matrices,
    kept as buffers so checkpoints carry them; ``E[<T(f,g), T(f',g')>] = <f,f'><g,g'>``, the
    inner product of the full outer products f (x) g. Released: d = 1024.
    """

    def __init__(self, feature_dim: int, num_classes: int, dim: int = 1024) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"randomized multilinear map: dim must be >= 1, got {dim}")
        self.dim = dim
        self.register_buffer("r_features", torch.randn(feature_dim, dim))
        self.register_buffer("r_classes", torch.randn(num_classes, dim))

    def forward(self, features: Tensor, probs: Tensor) -> Tensor:
        return (features @ self.r_features) * (probs @ self.r_classes) / math.sqrt(self.dim)


def multilinear_map(features: Tensor, probs: Tensor) -> Tensor:
    """The full multilinear map: the flattened outer product ``g (x) f`` (CDAN, no random)."""
    return torch.bmm(probs.unsqueeze(2), features.unsqueeze(1)).flatten(1)


class _Call(nn.Module):
    """Holds a method as submodule `m` so `torch.func.functional_call` can swap its tensors."""

    def __init__(self, method: nn.Module, fn: LossFn) -> None:
        super().__init__()
        self.m = method
        self.fn = fn

    def forward(self) -> dict[str, Tensor]:
        return self.fn()


def reevaluator(method: nn.Module, fn: LossFn
                ) -> Callable[[Mapping[str, Tensor]], dict[str, Tensor]]:
    """`Stage.reevaluate` for a stage whose losses `fn()` computes from `method`'s tensors.

    The returned callable recomputes the losses with the named parameters (names of
    ``method.named_parameters()``) replaced; others keep their current values.
    """

    def reevaluate(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
        renamed = {f"m.{name}": value for name, value in params.items()}
        return torch.func.functional_call(_Call(method, fn), renamed, ())

    return reevaluate


def check_positive(method: str, **values: float) -> None:
    """Raise a ValueError naming the first hyper-parameter of `method` that is not > 0."""
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"method {method!r}: {key} must be > 0, got {value}")


def check_in_unit(method: str, **values: float) -> None:
    """Raise a ValueError naming the first hyper-parameter of `method` outside [0, 1]."""
    for key, value in values.items():
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"method {method!r}: {key} must be in [0, 1], got {value}")



# ------------------------------------------------------------ the released CDAN-family script
# source_only, dann, cdan and gvb share the released script's switches (REFERENCE 1.5b;
# `ghuda.methods.release` lists their values).
SMALL_DOMAINS = ("webcam", "dslr")


def check_switches(method: str, **values: str) -> None:
    """Validate switch values (``domain_loss``, ``init``, ...) against `release`'s choices."""
    allowed = {"domain_loss": release.DOMAIN_LOSSES, "optimizer": release.OPTIMIZERS,
               "init": release.INITS, "grl_counter": release.GRL_COUNTERS,
               "forward": release.FORWARDS, "augment": release.AUGMENTS}
    for key, value in values.items():
        release.check_choice(method, key, value, allowed[key])


def init_kind(init: str) -> str:
    """`ghuda.models.heads.init_linear` kind of the ``init`` switch (released: Kaiming)."""
    return "kaiming" if init == release.RELEASED else init


def script_optimizer(groups: list[str], optimizer: str) -> dict[str, dict[str, Any]]:
    """Released weight decay: ``decay_mult`` 2 on every group (cdan/lr_schedule.py ~6,
    cdan/network.py get_parameters), i.e. 1e-3 effective for the nominal 5e-4."""
    return {g: {"decay_mult": 2.0} for g in groups} if optimizer == release.RELEASED else {}


def script_crop(augment: str, domain: str, *, per_domain: bool) -> str:
    """Released training crop: with `per_domain` (CDAN script, cdan/train_image.py ~90-98)
    RandomResizedCrop for webcam/dslr and RandomCrop otherwise; else RandomCrop (GVB,
    gvb/train_image.py ~67-68)."""
    if augment != release.RELEASED:
        return augment
    if per_domain and domain in SMALL_DOMAINS:
        return "random_resized_crop"
    return "random_crop"
