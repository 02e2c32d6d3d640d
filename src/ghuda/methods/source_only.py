"""`source_only`: train on labelled source data only (the no-adaptation baseline).

One stage, one loss (``cls``: source cross-entropy), no harmonized pair; the harmonizer is
never called, so every harmonizer variant of this method is the same run. The release has no
source-only script; this one follows the released CDAN-family script (network, weight decay,
augmentation; `ghuda.methods.script`), so that it differs from DANN / CDAN+E only by the
adaptation loss.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from torch import nn

from ghuda.methods import release
from ghuda.methods.base import Batch, Stage, StepInfo
from ghuda.methods.losses import cross_entropy
from ghuda.methods.registry import register
from ghuda.methods.script import ScriptMethod


@register("source_only")
class SourceOnly(ScriptMethod):
    label: ClassVar[str] = "Source only"

    RELEASE: ClassVar[release.Release] = release.Release(
        train=release.SCRIPT_TRAIN, datasets=release.CDAN_SCRIPT_DATASETS,
        digits_mini={"bottleneck_dim": release.Cheaper(
            0, "chosen on source validation with the digit CNN (configs/digits_mini.yaml)")},
        items=release.script_items("cdan", domain_loss=None, grl=False))

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 bottleneck_dim: int = 256, init: str = "released",
                 optimizer: str = "released", augment: str = "released") -> None:
        super().__init__(backbone, feature_dim, num_classes, bottleneck_dim, init=init,
                         optimizer=optimizer, augment=augment)

    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        _, logits = self.head(self.backbone(batch.x_src))
        yield Stage("main", {"cls": cross_entropy(logits, batch.y_src)},
                    step=tuple(self.param_groups()))
