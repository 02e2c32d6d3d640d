"""`dann`: domain-adversarial training (Ganin & Lempitsky; REFERENCE 2, released in the CDAN code).

A discriminator on the bottleneck features sits behind a gradient reversal layer whose
coefficient follows the released schedule (REFERENCE 1.5). Losses: ``transfer`` (the domain
BCE) and ``cls`` (source cross-entropy). Harmonized pair, as the released code (the same
training script for DANN and CDAN) wires GH (REFERENCE 1.4): L1 = transfer, L2 = cls; measure
scope = every group but the discriminator; the trade-off is applied after harmonization,
``trade_off * w1 * L1 + w2 * L2`` (`Pair.scales`). The gradient the feature extractor sees from
``transfer`` is the one after the reversal layer.

Released behaviour (the defaults; switches in `RELEASE.items`, REFERENCE 1.5b): domain loss
``sigmoid + nn.BCELoss``; source and target forwarded separately (per-domain batch-norm
statistics); Kaiming-initialised new layers; weight decay x2; the discriminator's reversal
counter starts at 1; lr 3e-4 for A->D and D->W (paper config).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import ClassVar

from torch import Tensor, nn

from ghuda.methods import release
from ghuda.methods.base import Batch, Pair, Stage, StepInfo
from ghuda.methods.grl import grl_coeff
from ghuda.methods.losses import cross_entropy, domain_adversarial_loss
from ghuda.methods.networks import joint_forward, separate_forward
from ghuda.methods.registry import register
from ghuda.methods.script import ScriptMethod, init_kind
from ghuda.models.heads import discriminator

DIGITS_MINI_GRL = release.Cheaper(
    None, "the reversal schedule spans the run (Ganin's i / steps): the released 10000 would "
          "leave the coefficient below 0.3 in a few hundred steps")


@register("dann")
class DANN(ScriptMethod):
    """`grl_max_iter` None stretches the reversal schedule over the run (Ganin's progress
    ``i / total``); the released code uses 10000 for 8004 iterations."""

    label: ClassVar[str] = "DANN"
    EXTRA_GROUPS: ClassVar[tuple[str, ...]] = ("discriminator",)

    RELEASE: ClassVar[release.Release] = release.Release(
        script="cdan", train=release.SCRIPT_TRAIN, datasets=release.CDAN_SCRIPT_DATASETS,
        tasks=release.CDAN_SCRIPT_TASKS,
        digits_mini={
            "bottleneck_dim": release.Cheaper(0, "chosen on source validation (digit CNN)"),
            "disc_hidden": release.Cheaper(256, "cost: at 1024 the discriminator costs about "
                                                "three times the digit CNN's step"),
            "grl_max_iter": DIGITS_MINI_GRL},
        items=(*release.script_items("cdan", domain_loss="bce", grl=True, forward=True),
               *release.script_protocol_items("cdan"), *release.dann_script_items(),
               release.Item(
                   item="learning rate per task", released="1e-3, but 3e-4 for A->D and D->W",
                   source="cdan/train_image.py:366-374", switch="train.lr",
                   released_value=3e-4, alternative="one lr for every task",
                   why="the paper config's task overrides (shown: amazon->dslr)",
                   where=("office31", "amazon->dslr"))))

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 bottleneck_dim: int = 256, disc_hidden: int = 1024, disc_dropout: float = 0.5,
                 trade_off: float = 1.0, grl_max_iter: float | None = 10000.0,
                 domain_loss: str = "released", forward: str = "released",
                 init: str = "released", optimizer: str = "released",
                 augment: str = "released", grl_counter: str = "released") -> None:
        super().__init__(backbone, feature_dim, num_classes, bottleneck_dim,
                         domain_loss=domain_loss, forward=forward, init=init,
                         optimizer=optimizer, augment=augment, grl_counter=grl_counter)
        self.discriminator = discriminator(self.head.out_dim, disc_hidden, dropout=disc_dropout,
                                           init=init_kind(init))
        self.trade_off = trade_off
        self.grl_max_iter = grl_max_iter
        self.bce_form = "bce" if domain_loss == release.RELEASED else domain_loss
        self.forward_features = (separate_forward if forward == release.RELEASED
                                 else joint_forward)
        self.grl_counter = grl_counter

    def losses(self, batch: Batch, coeff: float,
               monitor: dict[str, Tensor | float] | None = None) -> dict[str, Tensor]:
        """``transfer`` (unscaled: `trade_off` is the pair's scale) and ``cls`` of one
        iteration with reversal coefficient `coeff`; `monitor` gets the discriminator's
        accuracy and the coefficient."""
        f_src, f_tgt = self.forward_features(self.backbone, batch)
        z_src, logits_src = self.head(f_src)
        z_tgt = self.head.embed(f_tgt)
        transfer = domain_adversarial_loss(self.discriminator, z_src, z_tgt, coeff,
                                           self.bce_form, monitor)
        return {"transfer": transfer, "cls": cross_entropy(logits_src, batch.y_src)}

    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        fn = partial(self.losses, batch, grl_coeff(info, self.grl_max_iter, self.grl_counter))
        pair = Pair("transfer", "cls", self.generator_groups(), scales=(self.trade_off, 1.0))
        yield self.adversarial_stage(fn, (pair,))
