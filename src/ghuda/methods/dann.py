"""`dann`: domain-adversarial training (Ganin & Lempitsky; REFERENCE 2, released in the CDAN code).

A discriminator on the bottleneck features sits behind a gradient reversal layer whose
coefficient follows the released schedule (REFERENCE 1.5). Losses: ``transfer`` (the domain
BCE) and ``cls`` (source cross-entropy). Harmonized pair, as the released code (the same
training script for DANN and CDAN) wires GH (REFERENCE 1.4): L1 = transfer, L2 = cls; measure
scope = every group but the discriminator; the trade-off is applied after harmonization,
``trade_off * w1 * L1 + w2 * L2`` (`Pair.scales`). The gradient the feature extractor sees from
``transfer`` is the one after the reversal layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from torch import Tensor, nn

from ghuda.methods.base import Batch, Method, Pair, Stage, StepInfo
from ghuda.methods.common import (
    ClassifierHead,
    cross_entropy,
    domain_adversarial_loss,
    grl_coeff,
    joint_forward,
    reevaluator,
)
from ghuda.methods.registry import register
from ghuda.models.heads import discriminator


@register("dann")
class DANN(Method):
    """`grl_max_iter` None stretches the reversal schedule over the run (Ganin's progress
    ``i / total``); the released code uses 10000 for 8004 iterations."""

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 bottleneck_dim: int = 256, disc_hidden: int = 1024, disc_dropout: float = 0.5,
                 trade_off: float = 1.0, grl_max_iter: float | None = None) -> None:
        super().__init__(backbone, feature_dim, num_classes)
        self.head = ClassifierHead(feature_dim, num_classes, bottleneck_dim)
        self.discriminator = discriminator(self.head.out_dim, disc_hidden, dropout=disc_dropout)
        self.trade_off = trade_off
        self.grl_max_iter = grl_max_iter

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.backbone.parameters()), **self.head.groups(),
                "discriminator": list(self.discriminator.parameters())}

    def losses(self, batch: Batch, coeff: float) -> dict[str, Tensor]:
        """``transfer`` (unscaled: `trade_off` is the pair's scale) and ``cls`` of one
        iteration with reversal coefficient `coeff`."""
        f_src, f_tgt = joint_forward(self.backbone, batch)
        z_src, logits_src = self.head(f_src)
        z_tgt = self.head.embed(f_tgt)
        transfer = domain_adversarial_loss(self.discriminator, z_src, z_tgt, coeff)
        return {"transfer": transfer, "cls": cross_entropy(logits_src, batch.y_src)}

    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        groups = tuple(self.param_groups())
        measure = tuple(g for g in groups if g != "discriminator")
        fn = partial(self.losses, batch, grl_coeff(info, self.grl_max_iter))
        pair = Pair("transfer", "cls", measure, scales=(self.trade_off, 1.0))
        yield Stage("main", fn(), step=groups, pairs=(pair,), reevaluate=reevaluator(self, fn))

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))[1]

    def features(self, x: Tensor) -> Tensor:
        return self.head.embed(self.backbone(x))
