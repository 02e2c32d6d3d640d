"""Building blocks shared by the UDA methods (heads, losses, schedules, entropies, maps).

Facts from REFERENCE 1.4-1.5: the released CDAN/GVB network is backbone -> bottleneck
(Linear, 256-d) -> classifier (Linear); the domain loss is binary cross-entropy with source
labelled 1 and target 0, averaged over the joint batch; the gradient reversal coefficient
follows ``grl_coefficient`` (``ghuda.models.heads``).

Further helpers (entropies, classifier discrepancy, the entropy-conditioned domain loss of
CDAN+E / GVB, CDAN's randomized multilinear map, `reevaluator` for `Stage.reevaluate`) follow
the released code too; each names the methods that use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ghuda.methods.base import Batch, StepInfo
from ghuda.models.heads import grl_coefficient, init_linear, reverse_gradient


class ClassifierHead(nn.Module):
    """Optional Linear bottleneck followed by a Linear classifier (the released ResNetFc).

    ``bottleneck_dim = 0`` classifies the backbone features directly.
    """

    def __init__(self, in_dim: int, num_classes: int, bottleneck_dim: int = 256) -> None:
        super().__init__()
        if bottleneck_dim < 0:
            raise ValueError(f"bottleneck_dim must be >= 0, got {bottleneck_dim}")
        self.bottleneck = nn.Linear(in_dim, bottleneck_dim) if bottleneck_dim else None
        self.out_dim = bottleneck_dim or in_dim
        self.fc = nn.Linear(self.out_dim, num_classes)
        init_linear(self)

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


def grl_coeff(info: StepInfo, max_iter: float | None) -> float:
    """Released reversal coefficient at this step; `max_iter` None uses the run length."""
    return grl_coefficient(info.step, max_iter=float(max_iter or info.total_steps))


def domain_adversarial_loss(discriminator: nn.Module, z_src: Tensor, z_tgt: Tensor,
                            coeff: float) -> Tensor:
    """BCE of a discriminator behind a gradient reversal layer (source = 1, target = 0).

    The mean is over the joint batch, as in the released ``nn.BCELoss()``; logits are used for
    numerical stability (identical value).
    """
    logits = discriminator(reverse_gradient(torch.cat((z_src, z_tgt), dim=0), coeff))
    labels = torch.cat((torch.ones(z_src.shape[0], 1, device=logits.device),
                        torch.zeros(z_tgt.shape[0], 1, device=logits.device)))
    return F.binary_cross_entropy_with_logits(logits.float(), labels)


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
                                 offset: float, coeff: float) -> Tensor:
    """Entropy-conditioned domain BCE of CDAN+E (offset 1) and GVB (offset 0).

    Each sample weighs ``offset + exp(-H)``; the gradient reaching the entropy H passes a
    gradient reversal with coefficient `coeff` (released ``entropy.register_hook``). Weights
    are normalised to sum to one within each domain (normalisers detached), so the loss is
    the mean of the two domains' weighted BCEs: ``sum_i w_i bce_i / sum_i w_i``.
    `domain_logits` holds one logit per row, source rows first (label 1), target rows 0.
    """
    w = offset + torch.exp(-reverse_gradient(ent, coeff))
    w_src, w_tgt = w[:n_src], w[n_src:]
    w = torch.cat((w_src / w_src.sum().detach(), w_tgt / w_tgt.sum().detach()))
    logits = domain_logits.reshape(-1)
    labels = domain_labels(n_src, logits.shape[0] - n_src, logits)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (w * bce).sum() / w.sum().detach()


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

