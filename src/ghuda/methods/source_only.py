"""`source_only`: train on labelled source data only (the no-adaptation baseline).

One stage, one loss (``cls``: source cross-entropy), no harmonized pair; the harmonizer is
never called, so every harmonizer variant of this method is the same run.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor, nn

from ghuda.methods.base import Batch, Method, Stage, StepInfo
from ghuda.methods.common import ClassifierHead, cross_entropy
from ghuda.methods.registry import register


@register("source_only")
class SourceOnly(Method):
    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 bottleneck_dim: int = 256) -> None:
        super().__init__(backbone, feature_dim, num_classes)
        self.head = ClassifierHead(feature_dim, num_classes, bottleneck_dim)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.backbone.parameters()), **self.head.groups()}

    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        _, logits = self.head(self.backbone(batch.x_src))
        yield Stage("main", {"cls": cross_entropy(logits, batch.y_src)},
                    step=tuple(self.param_groups()))

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))[1]

    def features(self, x: Tensor) -> Tensor:
        return self.head.embed(self.backbone(x))
