"""`source_only`: train on labelled source data only (the no-adaptation baseline).

One stage, one loss (``cls``: source cross-entropy), no harmonized pair; the harmonizer is
never called, so every harmonizer variant of this method is the same run. The release has no
source-only script; this one follows the released CDAN-family script (network, weight decay,
augmentation; `ghuda.methods.common`), so that it differs from DANN / CDAN+E only by the
adaptation loss.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from torch import Tensor, nn

from ghuda.methods import release
from ghuda.methods.base import Batch, Method, Stage, StepInfo
from ghuda.methods.common import (
    ClassifierHead,
    check_switches,
    cross_entropy,
    init_kind,
    script_crop,
    script_optimizer,
)
from ghuda.methods.registry import register


@register("source_only")
class SourceOnly(Method):
    label: ClassVar[str] = "Source only"

    RELEASE: ClassVar[release.Release] = release.Release(
        train=release.SCRIPT_TRAIN, datasets=release.CDAN_SCRIPT_DATASETS,
        not_released=("office31", "office_home", "visda2017", "digits", "domainnet"),
        digits_mini={"bottleneck_dim": release.Cheaper(
            0, "chosen on source validation with the digit CNN (configs/digits_mini.yaml)")},
        items=release.script_items("cdan", domain_loss=None, grl=False))

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 bottleneck_dim: int = 256, init: str = "released",
                 optimizer: str = "released", augment: str = "released") -> None:
        super().__init__(backbone, feature_dim, num_classes)
        check_switches("source_only", init=init, optimizer=optimizer, augment=augment)
        self.optimizer = optimizer
        self.head = ClassifierHead(feature_dim, num_classes, bottleneck_dim, init_kind(init))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.backbone.parameters()), **self.head.groups()}

    def optimizer_overrides(self) -> dict[str, dict[str, Any]]:
        return script_optimizer(list(self.param_groups()), self.optimizer)

    @classmethod
    def train_crop(cls, params: dict[str, Any], domain: str) -> str:
        return script_crop(params.get("augment", "released"), domain, per_domain=True)

    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        _, logits = self.head(self.backbone(batch.x_src))
        yield Stage("main", {"cls": cross_entropy(logits, batch.y_src)},
                    step=tuple(self.param_groups()))

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))[1]

    def features(self, x: Tensor) -> Tensor:
        return self.head.embed(self.backbone(x))
