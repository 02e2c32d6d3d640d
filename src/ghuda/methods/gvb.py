"""`gvb`: GVB-GD, gradually vanishing bridges on the generator and the discriminator.

Cui et al., "Gradually Vanishing Bridge for Adversarial Domain Adaptation", CVPR 2020; facts
from the GH release (`gvb/train_image.py`, `loss.py`, `network.py`; README: ``--GVBG 1
--GVBD 1``).

Network (released ``use_bottleneck=False``): backbone features f -> classifier
``Linear(feature_dim, C)`` and generator bridge ``Linear(feature_dim, C)``; the class output is
``classifier(f) - bridge(f)``. The discriminator reads the softmax of that output (not
detached) through a gradient reversal layer (GRL): trunk
``Linear(C, 1024)-ReLU-Dropout(0.5)-Linear(1024, 1024)-ReLU-Dropout(0.5)`` with two heads,
``out`` and the discriminator bridge ``dbridge``; the domain logit is ``out - dbridge``.
Source and target batches pass the backbone separately, as released.

Losses (one stage "main" per iteration, every group stepped):

- ``cls``: cross-entropy of the bridged source output;
- ``transfer``: entropy-weighted domain BCE, weights ``exp(-H)`` (no +1, unlike CDAN+E)
  normalised within each domain, GRL on H (`losses.entropy_weighted_domain_loss`);
- ``gvbg``: mean |bridge output| over source and target (GVB-G);
- ``gvbd``: mean |dbridge output| (GVB-D).

Harmonized pairs (REFERENCE 1.4), each harmonized independently, both measured on
``backbone + classifier + bridge`` (released ``getgrad(base_network)``):

1. L1 = ``transfer``, L2 = ``cls``; update ``trade_off*w1*g1 + w2*g2``;
2. L1 = ``gvbg``, L2 = ``gvbd``; update ``gvbg_weight*w1*g1 + gvbd_weight*w2*g2`` — the
   released ``config["GVBG"]*gh1_gd*gvbg + abs(config["GVBD"])*gh2_gd*gvbd``. ``gvbd``
   reaches the generator only through the GRL, so its measured gradient is the reversed one.

Observed with GH (not a bug of this module; the released weighted loss has it too): on the
second pair, ``gvbd`` reaches the generator only through the GRL, whose coefficient starts at
0, so its measured gradient is small early on; under conflict GH's ``w2 = 1 - d/|g2|^2`` then
grows like 1/coefficient, and the released weighted loss also multiplies gvbd's discriminator
gradient by it. Toy runs and digits-mini at lr 0.01 diverged this way (NaN at iteration 199 of
300); GH++ (angle-only, bounded weights) did not.

Parameter groups and lr multipliers: ``backbone`` x1, ``classifier`` x10, ``bridge`` x10,
``discriminator`` x10 (released ``get_parameters``).

GRL coefficient ``2/(1+exp(-10 i/grl_max_iter)) - 1``; released grl_max_iter 10000 for 8004
iterations, default None = the run length (see `ghuda.methods.cdan`).

Hyper-parameters: the constructor defaults are the released values; digits-mini narrows the
discriminator (256, for cost, as for `cdan`) and lets the GRL schedule span the run
(`RELEASE.digits_mini`).

Released behaviour (the defaults; switches in `RELEASE.items`, REFERENCE 1.5b): the domain
BCE is ``-log(sigmoid + 1e-8)`` (``Myloss``; ``domain_loss: logits`` is the alternative);
Kaiming-initialised new layers; weight decay x2; the discriminator's reversal counter starts at
1; RandomCrop on every domain.

Simplifications: the bridges are always on (GVB-GD); ``gvbg_weight`` / ``gvbd_weight`` only
weigh their losses (the released flag GVBG also switched the subtraction off at 0).
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
from ghuda.methods.registry import register
from ghuda.methods.script import ScriptMethod, init_kind
from ghuda.models.heads import init_linear, mlp, reverse_gradient


class BridgedDiscriminator(nn.Module):
    """Domain discriminator with a GVB-D bridge: returns (logit ``out - dbridge``, dbridge)."""

    def __init__(self, in_dim: int, hidden: int, dropout: float = 0.5,
                 init: str = "kaiming") -> None:
        super().__init__()
        self.trunk = nn.Sequential(mlp(in_dim, [hidden], hidden, dropout=dropout),
                                   nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.out = nn.Linear(hidden, 1)
        self.dbridge = nn.Linear(hidden, 1)
        init_linear(self, init)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(x)
        bridge = self.dbridge(h)
        return self.out(h) - bridge, bridge


@register("gvb")
class GVB(ScriptMethod):
    """GVB-GD; see the module docstring for losses, pairs, groups and defaults."""

    label: ClassVar[str] = "GVB-GD"
    EXTRA_GROUPS: ClassVar[tuple[str, ...]] = ("bridge", "discriminator")
    CROP_PER_DOMAIN: ClassVar[bool] = False

    # gvb/train_image.py ~332-349: Office-31 3e-4, but 1e-3 for W->A and D->A; Office-Home
    # 1e-3; VisDA 3e-4
    RELEASE: ClassVar[release.Release] = release.Release(
        script="gvb", train={**release.SCRIPT_TRAIN, "lr": 3e-4},
        datasets={"office_home": {"train": {"lr": 1e-3}},
                  "visda2017": {"train": {"steps": 15002, "lr": 3e-4, "eval_every": 1000}}},
        tasks={("office31", "webcam->amazon"): {"train": {"lr": 1e-3}},
               ("office31", "dslr->amazon"): {"train": {"lr": 1e-3}}},
        digits_mini={
            "disc_hidden": release.Cheaper(256, "cost, as for cdan"),
            "grl_max_iter": DIGITS_MINI_GRL},
        items=(*release.script_items("gvb", domain_loss="bce_eps", grl=True),
               *release.script_protocol_items("gvb")))

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, *,
                 trade_off: float = 1.0, gvbg_weight: float = 1.0, gvbd_weight: float = 1.0,
                 disc_hidden: int = 1024, grl_max_iter: float | None = 10000.0,
                 domain_loss: str = "released", init: str = "released",
                 optimizer: str = "released", augment: str = "released",
                 grl_counter: str = "released") -> None:
        check_positive("gvb", disc_hidden=disc_hidden)
        super().__init__(backbone, feature_dim, num_classes, 0, domain_loss=domain_loss,
                         init=init, optimizer=optimizer, augment=augment,
                         grl_counter=grl_counter)
        self.bce_form = "bce_eps" if domain_loss == release.RELEASED else domain_loss
        self.grl_counter = grl_counter
        if grl_max_iter is not None:
            check_positive("gvb", grl_max_iter=grl_max_iter)
        for key, value in {"trade_off": trade_off, "gvbg_weight": gvbg_weight,
                           "gvbd_weight": gvbd_weight}.items():
            if value < 0:
                raise ValueError(f"method 'gvb': {key} must be >= 0, got {value}")
        self.trade_off = float(trade_off)
        self.gvbg_weight = float(gvbg_weight)
        self.gvbd_weight = float(gvbd_weight)
        self.grl_max_iter = grl_max_iter
        self.bridge = nn.Linear(feature_dim, num_classes)
        init_linear(self.bridge, init_kind(init))
        self.discriminator = BridgedDiscriminator(num_classes, disc_hidden, init=init_kind(init))

    def heads(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(bridged class output, generator-bridge output)."""
        bridge = self.bridge(features)
        return self.head(features)[1] - bridge, bridge

    def predict(self, x: Tensor) -> Tensor:
        return self.heads(self.backbone(x))[0]

    def losses(self, batch: Batch, coeff: float, entropy_coeff: float,
               monitor: dict[str, Tensor | float] | None = None) -> dict[str, Tensor]:
        """The four losses of one iteration with GRL coefficients `coeff` (discriminator
        input) and `entropy_coeff` (entropy weights); `monitor` gets the discriminator's
        accuracy and `coeff`."""
        n_src = batch.x_src.shape[0]
        outs = [self.heads(self.backbone(x)) for x in (batch.x_src, batch.x_tgt)]
        outputs = torch.cat([o[0] for o in outs])
        bridges = torch.cat([o[1] for o in outs])
        probs = F.softmax(outputs.float(), dim=1)
        domain, dbridge = self.discriminator(reverse_gradient(probs, coeff))
        if monitor is not None:
            monitor.update(adversarial_monitor(domain, n_src, coeff))
        return {
            "transfer": entropy_weighted_domain_loss(domain, n_src, entropy(probs),
                                                     offset=0.0, coeff=entropy_coeff,
                                                     form=self.bce_form),
            "cls": cross_entropy(outs[0][0], batch.y_src),
            "gvbg": bridges.abs().mean(),
            "gvbd": dbridge.abs().mean(),
        }

    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        fn = partial(self.losses, batch, grl_coeff(info, self.grl_max_iter, self.grl_counter),
                     grl_coeff(info, self.grl_max_iter))
        measure = self.generator_groups()
        pairs = (Pair("transfer", "cls", measure, scales=(self.trade_off, 1.0)),
                 Pair("gvbg", "gvbd", measure, scales=(self.gvbg_weight, self.gvbd_weight)))
        yield self.adversarial_stage(fn, pairs)
