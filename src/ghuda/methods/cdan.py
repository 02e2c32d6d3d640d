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
  the same coefficient (`losses.entropy_weighted_domain_loss`).

Harmonized pair (REFERENCE 1.4): L1 = ``transfer`` (unscaled), L2 = ``cls``, measured on
``backbone + bottleneck + classifier`` (everything but the discriminator); the update is
``trade_off*w1*g_transfer + w2*g_cls`` (`Pair.scales`). The transfer gradient is measured as
the feature extractor receives it, after the GRL.

Parameter groups and lr multipliers (released ``get_parameters``): ``backbone`` x1,
``bottleneck`` x10, ``classifier`` x10, ``discriminator`` x10.

GRL coefficient ``2/(1+exp(-10 i/grl_max_iter)) - 1`` (`heads.grl_coefficient`), for the
discriminator input and the entropy weights alike. Released ``grl_max_iter`` is 10000 for runs
of 8004 (VisDA 15002) iterations, so the coefficient ends near 1; ``None`` uses the run length
(as digits-mini does: a few hundred steps, where 10000 would keep the coefficient below 0.3).

Hyper-parameters: the constructor defaults are the released values; the digits-mini configs
narrow the discriminator (256, for cost: at 1024 its two hidden layers cost about as much as
the digit CNN), drop the bottleneck and let the GRL schedule span the run
(`RELEASE.digits_mini`).

Released behaviour (the defaults; switches in `RELEASE.items`, REFERENCE 1.5b): the domain
BCE is ``sigmoid + nn.BCELoss`` (``domain_loss: released``; ``logits`` is the alternative);
Kaiming-initialised new layers; weight decay x2; the discriminator's reversal counter starts at
1 (the entropy hook's at 0); RandomResizedCrop on webcam/dslr, RandomCrop otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ghuda.methods import release
from ghuda.methods.base import Batch, Pair, Stage, StepInfo
from ghuda.methods.checks import check_positive
from ghuda.methods.dann import DIGITS_MINI_GRL
from ghuda.methods.grl import grl_coeff
from ghuda.methods.losses import (
    adversarial_monitor,
    cross_entropy,
    entropy,
    entropy_weighted_domain_loss,
)
from ghuda.methods.networks import RandomizedMultilinearMap, multilinear_map
from ghuda.methods.registry import register
from ghuda.methods.script import ScriptMethod, init_kind
from ghuda.models.heads import discriminator, reverse_gradient


@register("cdan")
class CDAN(ScriptMethod):
    """CDAN+E; see the module docstring for losses, pair, groups and defaults."""

    label: ClassVar[str] = "CDAN+E"
    EXTRA_GROUPS: ClassVar[tuple[str, ...]] = ("discriminator",)

    RELEASE: ClassVar[release.Release] = release.Release(
        script="cdan", train=release.SCRIPT_TRAIN, datasets=release.CDAN_SCRIPT_DATASETS,
        tasks=release.CDAN_SCRIPT_TASKS,
        digits_mini={
            "bottleneck_dim": release.Cheaper(0, "chosen on source validation (digit CNN)"),
            "disc_hidden": release.Cheaper(256, "cost: at 1024 the discriminator's two hidden "
                                                "layers cost about as much as the digit CNN"),
            "grl_max_iter": DIGITS_MINI_GRL},
        items=(*release.script_items("cdan", domain_loss="bce", grl=True),
               *release.script_protocol_items("cdan")))

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, *,
                 trade_off: float = 1.0, bottleneck_dim: int = 256, randomized: bool = True,
                 random_dim: int = 1024, disc_hidden: int = 1024,
                 grl_max_iter: float | None = 10000.0, domain_loss: str = "released",
                 init: str = "released", optimizer: str = "released",
                 augment: str = "released", grl_counter: str = "released") -> None:
        check_positive("cdan", random_dim=random_dim, disc_hidden=disc_hidden)
        super().__init__(backbone, feature_dim, num_classes, bottleneck_dim,
                         domain_loss=domain_loss, init=init, optimizer=optimizer,
                         augment=augment, grl_counter=grl_counter)
        self.bce_form = "bce" if domain_loss == release.RELEASED else domain_loss
        self.grl_counter = grl_counter
        if grl_max_iter is not None:
            check_positive("cdan", grl_max_iter=grl_max_iter)
        if trade_off < 0:
            raise ValueError(f"method 'cdan': trade_off must be >= 0, got {trade_off}")
        self.trade_off = float(trade_off)
        self.grl_max_iter = grl_max_iter
        dim = self.head.out_dim
        self.random_map = (RandomizedMultilinearMap(dim, num_classes, random_dim)
                           if randomized else None)
        self.discriminator = discriminator(random_dim if randomized else dim * num_classes,
                                           disc_hidden, init=init_kind(init))

    def joint(self, features: Tensor, probs: Tensor) -> Tensor:
        """The discriminator input T(f, g)."""
        if self.random_map is not None:
            return self.random_map(features, probs)
        return multilinear_map(features, probs)

    def losses(self, batch: Batch, coeff: float, entropy_coeff: float,
               monitor: dict[str, Tensor | float] | None = None) -> dict[str, Tensor]:
        """``transfer`` and ``cls`` of one iteration with GRL coefficients `coeff` (the
        discriminator input) and `entropy_coeff` (the entropy weights); `monitor` gets the
        discriminator's accuracy and `coeff`."""
        n_src = batch.x_src.shape[0]
        src, tgt = self.head(self.backbone(batch.x_src)), self.head(self.backbone(batch.x_tgt))
        features = torch.cat((src[0], tgt[0]))
        probs = F.softmax(torch.cat((src[1], tgt[1])).float(), dim=1)
        domain = self.discriminator(reverse_gradient(self.joint(features, probs.detach()), coeff))
        transfer = entropy_weighted_domain_loss(domain, n_src, entropy(probs), offset=1.0,
                                                coeff=entropy_coeff, form=self.bce_form)
        if monitor is not None:
            monitor.update(adversarial_monitor(domain, n_src, coeff))
        return {"transfer": transfer, "cls": cross_entropy(src[1], batch.y_src)}

    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        fn = partial(self.losses, batch, grl_coeff(info, self.grl_max_iter, self.grl_counter),
                     grl_coeff(info, self.grl_max_iter))
        pair = Pair("transfer", "cls", self.generator_groups(), scales=(self.trade_off, 1.0))
        yield self.adversarial_stage(fn, (pair,))
