"""`cdan`: CDAN+E, conditional adversarial adaptation with entropy conditioning.

Long et al., "Conditional Adversarial Domain Adaptation", NeurIPS 2018; facts from the GH
release (`cdan/train_image.py`, `loss.py`, `network.py`, method ``CDAN+E``).

Network: backbone -> bottleneck ``Linear(feature_dim, 256)`` (no activation) = features f ->
classifier ``Linear(256, C)`` = logits; g = softmax(logits). The discriminator sees
``T(f, g.detach())`` through a gradient reversal layer (GRL): T is the randomized multilinear
map ``(f R_f) * (g R_g) / sqrt(1024)`` (released ``--random`` is on), or with
``randomized=False`` the full outer product ``g (x) f``; discriminator
``Linear(d, 1024)-ReLU-Dropout(0.5)-Linear(1024, 1024)-ReLU-Dropout(0.5)-Linear(1024, 1)``.
Source and target batches pass the backbone separately (batch norm sees one domain at a
time), as released.

Losses (one stage "main" per iteration, every group stepped):

- ``cls``: cross-entropy on the labelled source batch;
- ``transfer``: entropy-conditioned domain BCE (source 1, target 0); sample weights
  ``1 + exp(-H(g))``, normalised within each domain; the gradient reaching H passes a GRL with
  the same coefficient (`common.entropy_weighted_domain_loss`).

Harmonized pair (REFERENCE 1.4): L1 = ``transfer`` (unscaled), L2 = ``cls``, measured on
``backbone + bottleneck + classifier`` (everything but the discriminator); the update is
``trade_off*w1*g_transfer + w2*g_cls`` (`Pair.scales`). The transfer gradient is measured as
the feature extractor receives it, after the GRL.

Parameter groups and lr multipliers (released ``get_parameters``): ``backbone`` x1,
``bottleneck`` x10, ``classifier`` x10, ``discriminator`` x10.

GRL coefficient ``2/(1+exp(-10 i/grl_max_iter)) - 1`` (`heads.grl_coefficient`), for the
discriminator input and the entropy weights alike. Released ``grl_max_iter`` is 10000 for runs
of 8004 (VisDA 15002) iterations, so the coefficient ends near 1; the default ``None`` uses the
run length (as `dann` does), which ends at 0.9999 on any run length — digits-mini runs a few
hundred steps, where 10000 would keep the coefficient below 0.3. The released discriminator
counts its own forward calls from 1, one ahead of the iteration index used here (a difference
below 1e-3 in the coefficient).

Hyper-parameters (digits-mini default / released `RELEASED`): trade_off 1 / 1; bottleneck_dim
256 / 256 (0: no bottleneck); randomized True / True; random_dim 1024 / 1024; disc_hidden
256 / 1024; grl_max_iter None (run length) / 10000. digits-mini narrows the discriminator for
cost: at 1024 its two hidden layers cost about as much as the digit CNN (measured about 2.5x the
time per iteration of source_only against 1.9x at 256).

Simplifications: the domain BCE uses the logits form (numerically stable) instead of
``BCELoss(sigmoid(.))``, equal up to the latter's clamping of log at -100. New layers use the
project's shared heads and initialisation (`common.ClassifierHead`, `ghuda.models.heads`).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ghuda.methods.base import Batch, Method, Pair, Stage, StepInfo
from ghuda.methods.common import (
    ClassifierHead,
    RandomizedMultilinearMap,
    check_positive,
    cross_entropy,
    entropy,
    entropy_weighted_domain_loss,
    grl_coeff,
    multilinear_map,
    params_of,
    reevaluator,
)
from ghuda.methods.registry import register
from ghuda.models.heads import discriminator, reverse_gradient


@register("cdan")
class CDAN(Method):
    """CDAN+E; see the module docstring for losses, pair, groups and defaults."""

    RELEASED: ClassVar[dict[str, Any]] = {
        "trade_off": 1.0, "bottleneck_dim": 256, "randomized": True, "random_dim": 1024,
        "disc_hidden": 1024, "grl_max_iter": 10000.0}

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, *,
                 trade_off: float = 1.0, bottleneck_dim: int = 256, randomized: bool = True,
                 random_dim: int = 1024, disc_hidden: int = 256,
                 grl_max_iter: float | None = None) -> None:
        super().__init__(backbone, feature_dim, num_classes)
        check_positive("cdan", random_dim=random_dim, disc_hidden=disc_hidden)
        if grl_max_iter is not None:
            check_positive("cdan", grl_max_iter=grl_max_iter)
        if trade_off < 0:
            raise ValueError(f"method 'cdan': trade_off must be >= 0, got {trade_off}")
        self.trade_off = float(trade_off)
        self.grl_max_iter = grl_max_iter
        self.head = ClassifierHead(feature_dim, num_classes, bottleneck_dim)
        dim = self.head.out_dim
        self.random_map = (RandomizedMultilinearMap(dim, num_classes, random_dim)
                           if randomized else None)
        self.discriminator = discriminator(random_dim if randomized else dim * num_classes,
                                           disc_hidden)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": params_of(self.backbone), **self.head.groups(),
                "discriminator": params_of(self.discriminator)}

    def features(self, x: Tensor) -> Tensor:
        """The bottleneck features the discriminator conditions on."""
        return self.head.embed(self.backbone(x))

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))[1]

    def joint(self, features: Tensor, probs: Tensor) -> Tensor:
        """The discriminator input T(f, g)."""
        if self.random_map is not None:
            return self.random_map(features, probs)
        return multilinear_map(features, probs)

    def losses(self, batch: Batch, coeff: float) -> dict[str, Tensor]:
        """``transfer`` and ``cls`` of one iteration with GRL coefficient `coeff`."""
        n_src = batch.x_src.shape[0]
        src, tgt = self.head(self.backbone(batch.x_src)), self.head(self.backbone(batch.x_tgt))
        features = torch.cat((src[0], tgt[0]))
        probs = F.softmax(torch.cat((src[1], tgt[1])).float(), dim=1)
        domain = self.discriminator(reverse_gradient(self.joint(features, probs.detach()), coeff))
        transfer = entropy_weighted_domain_loss(domain, n_src, entropy(probs), offset=1.0,
                                                coeff=coeff)
        return {"transfer": transfer, "cls": cross_entropy(src[1], batch.y_src)}

    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        groups = tuple(self.param_groups())
        measure = tuple(g for g in groups if g != "discriminator")
        fn = partial(self.losses, batch, grl_coeff(info, self.grl_max_iter))
        pair = Pair("transfer", "cls", measure, scales=(self.trade_off, 1.0))
        yield Stage("main", fn(), step=groups, pairs=(pair,), reevaluate=reevaluator(self, fn))
