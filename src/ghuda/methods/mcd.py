"""`mcd`: Maximum Classifier Discrepancy, the three-step min-max.

Saito et al., "Maximum Classifier Discrepancy for Unsupervised Domain Adaptation", CVPR 2018;
facts from the GH release (`mcd/mcd.py`, `mcd/mcd.sh`, `mcd/tllib/alignment/mcd.py`).

Network: generator G = the backbone; two classifier heads F1, F2, each
``Dropout(0.5)-Linear(d, h)-BN-ReLU-Dropout(0.5)-Linear(h, h)-BN-ReLU-Linear(h, C)`` (released
h = 1024). Every step forwards the concatenated source+target batch. With p = softmax on the
target rows, ``disc = mean |p1 - p2|`` and the "entropy" term is tllib's class-balance entropy
``-mean_k log(mean_i p_ik + 1e-6)`` (`common.class_balance_entropy`; a diversity term, not the
per-sample entropy).

Stages of one iteration:

- ``A`` (step backbone + heads): ``cls = CE(F1) + CE(F2) + entropy_weight*(ent(p1) + ent(p2))``;
- ``B`` (step heads only): ``cls`` as in A and ``max_discrepancy = -trade_off*disc``;
- ``C`` x num_k (step backbone only): ``discrepancy = trade_off*disc``.

Harmonized pair (REFERENCE 1.4), step B only: L1 = ``cls``, L2 = ``max_discrepancy``,
measured on the backbone G (released ``getgrad(G)``) although only the heads are stepped.

Parameter groups and lr multipliers: ``backbone`` x1, ``heads`` x1 — the released code trains
G and both heads with one constant lr (1e-3) and no 10x for new layers; the released lr is
constant (``train.lr_schedule: constant`` reproduces it).

Hyper-parameters (digits-mini default / released `RELEASED`): trade_off 0.3 / 10 (Office-31;
30 Office-Home, 1 VisDA, 120 DomainNet; 0.3 is the released Digits value); entropy_weight
0.01 / 0.01; num_k 1 / 4; head_hidden 256 / 1024. digits-mini differs in num_k and
head_hidden for cost: every stage is a full forward and backward of the joint batch, so an
iteration costs 2 + num_k of them (released 6), and two 1024-wide heads cost more than the
digit CNN itself (measured: an iteration at num_k 1 costs about 5x a source_only one).

Prediction: the mean of the two heads' probabilities (log taken, so argmax is the ensemble's).
The released evaluation took the better head on target labels ("oracle", REFERENCE 1.6).

Simplification: the released G optimizer had no momentum while the heads' had 0.9; the engine
applies one momentum to all groups.
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
    check_positive,
    class_balance_entropy,
    classifier_discrepancy,
    cross_entropy,
    params_of,
    reevaluator,
)
from ghuda.methods.registry import register


def mcd_head(in_dim: int, hidden: int, num_classes: int, dropout: float = 0.5) -> nn.Sequential:
    """tllib's ImageClassifierHead without pooling (features arrive flat)."""
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
        nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
        nn.Linear(hidden, num_classes))


@register("mcd")
class MCD(Method):
    """MCD; see the module docstring for the steps, pair, groups and defaults."""

    RELEASED: ClassVar[dict[str, Any]] = {
        "trade_off": 10.0, "entropy_weight": 0.01, "num_k": 4, "head_hidden": 1024}

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, *,
                 trade_off: float = 0.3, entropy_weight: float = 0.01, num_k: int = 1,
                 head_hidden: int = 256) -> None:
        super().__init__(backbone, feature_dim, num_classes)
        check_positive("mcd", trade_off=trade_off, num_k=num_k, head_hidden=head_hidden)
        if entropy_weight < 0:
            raise ValueError(f"method 'mcd': entropy_weight must be >= 0, got {entropy_weight}")
        self.trade_off = float(trade_off)
        self.entropy_weight = float(entropy_weight)
        self.num_k = int(num_k)
        self.head1 = mcd_head(feature_dim, head_hidden, num_classes)
        self.head2 = mcd_head(feature_dim, head_hidden, num_classes)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": params_of(self.backbone), "heads": params_of(self.head1, self.head2)}

    def lr_multipliers(self) -> dict[str, float]:
        """One lr for G and the heads (released)."""
        return {"backbone": 1.0, "heads": 1.0}

    def predict(self, x: Tensor) -> Tensor:
        g = self.backbone(x)
        probs = (F.softmax(self.head1(g), dim=1) + F.softmax(self.head2(g), dim=1)) / 2
        return torch.log(probs)

    def forward_both(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Source logits of F1, F2 and target probabilities of F1, F2 (one joint forward)."""
        n_src = batch.x_src.shape[0]
        g = self.backbone(torch.cat((batch.x_src, batch.x_tgt)))
        y1, y2 = self.head1(g), self.head2(g)
        return (y1[:n_src], y2[:n_src], F.softmax(y1[n_src:], dim=1),
                F.softmax(y2[n_src:], dim=1))

    def losses(self, batch: Batch, step: str) -> dict[str, Tensor]:
        """The losses of step "A", "B" or "C"."""
        y1_s, y2_s, p1_t, p2_t = self.forward_both(batch)
        disc = classifier_discrepancy(p1_t, p2_t)
        if step == "C":
            return {"discrepancy": self.trade_off * disc}
        cls = (cross_entropy(y1_s, batch.y_src) + cross_entropy(y2_s, batch.y_src)
               + self.entropy_weight * (class_balance_entropy(p1_t) + class_balance_entropy(p2_t)))
        if step == "A":
            return {"cls": cls}
        return {"cls": cls, "max_discrepancy": -self.trade_off * disc}

    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        yield Stage("A", self.losses(batch, "A"), step=("backbone", "heads"))
        fn = partial(self.losses, batch, "B")
        yield Stage("B", fn(), step=("heads",),
                    pairs=(Pair("cls", "max_discrepancy", ("backbone",)),),
                    reevaluate=reevaluator(self, fn))
        for _ in range(self.num_k):
            yield Stage("C", self.losses(batch, "C"), step=("backbone",))
