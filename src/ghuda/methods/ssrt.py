"""`ssrt`: Safe Self-Refinement for Transformer-based domain adaptation (ViT backbones).

Sun et al., "Safe Self-Refinement for Transformer-based Domain Adaptation", CVPR 2022; facts
from the GH release (`ssrt/model/SSRT.py`, `ssrt/model/grl.py`, `ssrt/trainer/*`,
`ssrt/main_SSRT_GH*.py`).

Network: a ViT backbone (`ghuda.models.vit.ViTBackbone`: ``embed``, ``blocks``, ``pool``) ->
bottleneck ``Linear(D, b)-BN-ReLU-Dropout(0.5)`` (weights N(0, 0.005), bias 0.1) ->
classifier ``Linear(b, b)-ReLU-Dropout(0.5)-Linear(b, C)``; discriminator
``Linear(b, b)-ReLU-Dropout(0.5)-Linear(b, 1)`` behind a warm-start gradient reversal layer
(GRL) whose coefficient rises from 0 to 0.1: ``0.2/(1+exp(-i/grl_max_iter)) - 0.1``.

Self-refinement: each training forward draws one layer from `sr_layers` (released [0, 4, 8]
of 12 blocks; -1 means the raw image) and, before that block, appends a perturbed copy of the
target tokens, ``y_t + alpha*(y_t[reversed] - y_t).detach()`` (each target sample moved toward
another one of the batch), so the batch grows to n_src + 2 n_tgt rows.

Losses (one stage "main" per iteration, every group stepped), with r the safe-training ramp:

- ``cls`` = cls_weight * CE on source;
- ``transfer`` = domain_weight * 2 * BCE(domain logits of the unperturbed rows; source 1,
  target 0) + sr_weight * r * self-refinement loss, the latter a confidence-masked KL between
  clean and perturbed target predictions, teacher = clean with probability sr_loss_p (else
  perturbed), only samples whose teacher confidence exceeds sr_epsilon, both sides carrying
  gradient (as released).

Harmonized pair (REFERENCE 1.4): L1 = ``cls``, L2 = ``transfer`` (domain + self-refinement),
both with their weights, measured on the ViT backbone only (released
``getgrad(model_instance.net.base_network)``).

Safe training (released ``use_safe_training``): perturbation magnitude and sr weight are
scaled by ``r = sin(pi/2 * (i - phase)/period)`` up to 1 once ``i >= phase + period``; every
`safe_period` iterations the per-iteration diversity (number of distinct predicted target
classes in the batch) is checked at 2^0..2^safe_levels scales; a drop of more than one class
between consecutive sub-interval means while r > 0.1 restarts the ramp (phase = now) and
doubles the period when the previous restart is less than a period ago. The released code
also "restores a model snapshot" then, but its snapshot is ``net.state_dict()`` without a copy
— references to the live tensors — so the restore changes no weight; this module reproduces
that effective behaviour (ramp restart only) and keeps no snapshot.

Parameter groups and lr multipliers (released ``parameter_list``): ``backbone`` x0.1,
``bottleneck``, ``classifier``, ``discriminator`` x1 — relative to the configured lr.

Hyper-parameters: the constructor defaults are the released Office-31 values (bottleneck_dim
1024 (Office-Home 2048), sr_weight 0.2, sr_alpha 0.3 (Office-31 0.2, `RELEASE`), sr_layers
[0, 4, 8] of 12 blocks (None scales them to the backbone's depth: [0, 1, 2] for the tiny ViT),
sr_epsilon 0.4, sr_loss_p 0.5, grl_max_iter 1000, safe_period 1000, safe_levels 4).
digits-mini sets the step-based schedules to a tenth of the run (None; safe_period at least
2**safe_levels), the released proportion on Office-31 (1000 of 10,000 iterations): its runs are
a few hundred steps, where the released constants would leave the reversal coefficient near
0.04 and never check diversity (`RELEASE.digits_mini`).

Released domain loss (``domain_loss: released``, ssrt/model/SSRT.py ~295): ``2 * nn.BCELoss()
(sigmoid(x))`` on the unperturbed rows; ``logits`` is the alternative. The released backbone
weights are ViT-B/16 AugReg (ImageNet-21k, fine-tuned on 1k): ``model.options.weights``.

Simplifications: r of the current iteration scales the perturbation (released: the previous
iteration's, full strength at iteration 0); the random layer and direction come from torch's
generator (checkpointed by the engine) instead of Python's ``random``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ghuda.methods import release
from ghuda.methods.base import Batch, Method, Pair, Stage, StepInfo
from ghuda.methods.checks import check_in_unit, check_positive, check_switches
from ghuda.methods.lookahead import reevaluator
from ghuda.methods.losses import cross_entropy, domain_adversarial_loss
from ghuda.methods.networks import params_of
from ghuda.methods.registry import register
from ghuda.models.heads import grl_coefficient

RELEASED_LAYERS = (0, 4, 8)
RELEASED_DEPTH = 12


def mix_targets(y: Tensor, n_src: int, alpha: float) -> Tensor:
    """Perturbed copy of the target rows: each moves by `alpha` toward its reversed partner."""
    tgt = y[n_src:]
    return tgt + (tgt.flip(0) - tgt).detach() * alpha


def self_refinement_loss(clean: Tensor, perturbed: Tensor, epsilon: float,
                         clean_teaches: bool) -> Tensor:
    """Confidence-masked ``KL(teacher || student)`` between clean and perturbed predictions."""
    teacher, student = (clean, perturbed) if clean_teaches else (perturbed, clean)
    log_t = F.log_softmax(teacher, dim=1)
    kl = (log_t.exp() * (log_t - F.log_softmax(student, dim=1))).sum(1)
    mask = (log_t.exp().max(1).values > epsilon).to(kl.dtype)
    return (kl * mask).sum() / (mask.sum() + 1e-6)


def diversity_dropped(divs: Sequence[int], last: Sequence[int] | None, levels: int) -> bool:
    """Released multi-scale check: some sub-interval mean diversity falls by more than 1.

    At level l the period splits into 2^l parts; the last part of the previous period
    (`last`, when given) is prepended.
    """
    for level in range(levels + 1):
        parts = [float(p.mean()) for p in np.array_split(np.asarray(divs, float), 2 ** level)]
        if last is not None:
            parts.insert(0, float(np.array_split(np.asarray(last, float), 2 ** level)[-1].mean()))
        if any(b < a - 1.0 for a, b in itertools.pairwise(parts)):
            return True
    return False


def _linear(in_dim: int, out_dim: int, std: float, bias: float) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.normal_(layer.weight, 0.0, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def _two_layer(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(_linear(in_dim, hidden, 0.01, 0.0), nn.ReLU(), nn.Dropout(0.5),
                         _linear(hidden, out_dim, 0.01, 0.0))


@register("ssrt")
class SSRT(Method):
    """SSRT; see the module docstring for losses, pair, safe training, groups and defaults."""

    label: ClassVar[str] = "SSRT"

    requires_backbone: ClassVar[str | None] = "vit"
    RELEASE: ClassVar[release.Release] = release.Release(
        # ssrt/main_SSRT_GH*.py, ssrt/trainer/argument_parser.py: batch 32, inv schedule,
        # SGD Nesterov, weight decay 5e-4, 1000 iterations per epoch
        script="ssrt",
        train={"batch_size": 32, "lr_schedule": "inv", "nesterov": True,
               "weight_decay": 5e-4, "steps": 10000, "lr": 1e-3},
        datasets={
            "office31": {"params": {"sr_alpha": 0.2}},
            "office_home": {"params": {"bottleneck_dim": 2048},
                            "train": {"steps": 20000, "lr": 4e-3}},
            "visda2017": {"train": {"steps": 20000, "lr": 2e-3}},
            "domainnet": {"train": {"steps": 40000, "lr": 4e-3}}},
        digits_mini={
            "bottleneck_dim": release.Cheaper(256, "cost (tiny ViT of 64-d tokens)"),
            "grl_max_iter": release.Cheaper(None, "a tenth of the run (released proportion)"),
            "safe_period": release.Cheaper(None, "a tenth of the run (released proportion)")},
        items=(release.domain_loss_item("2 * sigmoid + nn.BCELoss (log clamped at -100)",
                                        "ssrt/model/SSRT.py:295"),
               release.Item(
                   item="backbone weights",
                   released="ViT-B/16 AugReg, ImageNet-21k pre-trained, fine-tuned on 1k",
                   source="ssrt/model/helpers.py:369-371", switch="model.options.weights",
                   released_value="augreg_in21k_ft_in1k",
                   alternative="imagenet1k: torchvision's ImageNet-1k weights",
                   why="torchvision ships only the ImageNet-1k weights"),
               release.resized_crop_item("Resize((256,256)) + RandomResizedCrop(224) + flip",
                                         "ssrt/dataset/data_provider.py:33-34"),
               release.Item(
                   item="GRL counter during evaluation",
                   released="SSRTNet.forward calls the auto-stepping GRL also in eval mode, so "
                            "every evaluation batch (source, target and test loaders, batch "
                            "32) advances the counter: about 139 steps per Office-31 A->W "
                            "evaluation, every 2000 iterations",
                   source="ssrt/model/SSRT.py:138-149, ssrt/model/grl.py:65-77, "
                          "ssrt/trainer/evaluate.py:7-23,57-80, ssrt/trainer/train.py:125-126",
                   switch=release.NO_SWITCH, released_value=None,
                   alternative="ghuda's coefficient counts training iterations only",
                   why="the shift is below 0.003 of a coefficient that saturates at 0.1 "
                       "(A->W: 139 of ~2000 steps where its slope is 2e-5 per step); it "
                       "depends on the evaluation loaders' sizes, which ghuda's held-out "
                       "source split and evaluation batch size do not share",
                   status=release.NOT_REPRODUCED)))

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, *,
                 bottleneck_dim: int = 1024, cls_weight: float = 1.0,
                 domain_weight: float = 1.0, sr_weight: float = 0.2, sr_alpha: float = 0.3,
                 sr_layers: Sequence[int] | None = None, sr_epsilon: float = 0.4,
                 sr_loss_p: float = 0.5, grl_max_iter: float | None = 1000.0,
                 safe_training: bool = True, safe_period: int | None = 1000,
                 safe_levels: int = 4, domain_loss: str = "released",
                 augment: str = "released") -> None:
        super().__init__(backbone, feature_dim, num_classes)
        check_switches("ssrt", domain_loss=domain_loss, augment=augment)
        self.bce_form = "bce" if domain_loss == release.RELEASED else domain_loss
        if not all(hasattr(backbone, a) for a in ("embed", "blocks", "pool")):
            raise ValueError(
                f"method 'ssrt' needs a ViT backbone exposing embed/blocks/pool "
                f"(ghuda.models.vit.ViTBackbone: tiny_vit or vit_b16), got "
                f"{type(backbone).__name__}")
        check_positive("ssrt", bottleneck_dim=bottleneck_dim)
        if grl_max_iter is not None:
            check_positive("ssrt", grl_max_iter=grl_max_iter)
        check_in_unit("ssrt", sr_alpha=sr_alpha, sr_epsilon=sr_epsilon, sr_loss_p=sr_loss_p)
        for key, value in {"cls_weight": cls_weight, "domain_weight": domain_weight,
                           "sr_weight": sr_weight, "safe_levels": safe_levels}.items():
            if value < 0:
                raise ValueError(f"method 'ssrt': {key} must be >= 0, got {value}")
        if safe_period is not None and safe_period < 2 ** safe_levels:
            raise ValueError(f"method 'ssrt': safe_period ({safe_period}) must be at least "
                             f"2**safe_levels ({2 ** safe_levels})")
        depth = len(backbone.blocks)
        if sr_layers is None:
            sr_layers = sorted({layer * depth // RELEASED_DEPTH for layer in RELEASED_LAYERS})
        bad = [layer for layer in sr_layers if not -1 <= layer < depth]
        if bad:
            raise ValueError(f"method 'ssrt': sr_layers {bad} out of range for a backbone "
                             f"of {depth} blocks (allowed -1..{depth - 1})")
        self.sr_layers = [int(layer) for layer in sr_layers]
        self.weights = {"cls": float(cls_weight), "domain": float(domain_weight),
                        "sr": float(sr_weight)}
        self.sr_alpha, self.sr_epsilon, self.sr_loss_p = sr_alpha, sr_epsilon, sr_loss_p
        self.grl_max_iter = grl_max_iter
        self.safe_training, self.safe_levels = bool(safe_training), int(safe_levels)
        self.safe_period = safe_period
        # "period" (the ramp length, doubled on restarts) is set at the first iteration when
        # safe_period is None, from the run length.
        self.safe: dict[str, Any] = {"phase": 0, "period": safe_period, "last_restore": 0,
                                     "restore": False, "divs": [], "divs_last": None}
        self.bottleneck = nn.Sequential(_linear(feature_dim, bottleneck_dim, 0.005, 0.1),
                                        nn.BatchNorm1d(bottleneck_dim), nn.ReLU(),
                                        nn.Dropout(0.5))
        self.classifier = _two_layer(bottleneck_dim, bottleneck_dim, num_classes)
        self.discriminator = _two_layer(bottleneck_dim, bottleneck_dim, 1)

    # ---- contract ----
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": params_of(self.backbone), "bottleneck": params_of(self.bottleneck),
                "classifier": params_of(self.classifier),
                "discriminator": params_of(self.discriminator)}

    @classmethod
    def train_crop(cls, params: dict[str, Any], domain: str) -> str:
        return release.resized_crop(params)

    def lr_multipliers(self) -> dict[str, float]:
        """Backbone at 0.1x the configured lr, new layers at 1x (released)."""
        return {"backbone": 0.1, "bottleneck": 1.0, "classifier": 1.0, "discriminator": 1.0}

    def predict(self, x: Tensor) -> Tensor:
        return self.classifier(self.bottleneck(self.backbone(x)))

    def get_extra_state(self) -> dict[str, Any]:
        """Safe-training bookkeeping, so that a resumed run continues identically."""
        return {**self.safe, "divs": list(self.safe["divs"])}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.safe = {**state, "divs": list(state["divs"])}

    # ---- forward ----
    def perturbed_features(self, x: Tensor, n_src: int, layer: int | None,
                           alpha: float) -> Tensor:
        """Backbone features of `x`, plus those of the target rows perturbed at `layer`."""
        if layer == -1:
            x = torch.cat((x, mix_targets(x, n_src, alpha)))
        tokens = self.backbone.embed(x)
        for i, block in enumerate(self.backbone.blocks):
            if i == layer:
                tokens = torch.cat((tokens, mix_targets(tokens, n_src, alpha)))
            tokens = block(tokens)
        return self.backbone.pool(tokens)

    def losses_and_logits(self, batch: Batch, coeff: float, layer: int | None, alpha: float,
                          sr_scale: float, clean_teaches: bool
                          ) -> tuple[dict[str, Tensor], Tensor]:
        """``cls`` and ``transfer`` (domain + self-refinement), weighted; clean target logits."""
        n_src, n = batch.x_src.shape[0], batch.x_src.shape[0] + batch.x_tgt.shape[0]
        x = torch.cat((batch.x_src, batch.x_tgt))
        feats = self.bottleneck(self.perturbed_features(x, n_src, layer, alpha))
        logits = self.classifier(feats)
        transfer = self.weights["domain"] * 2.0 * domain_adversarial_loss(
            self.discriminator, feats[:n_src], feats[n_src:n], coeff, self.bce_form)
        if layer is not None and self.weights["sr"] > 0:
            transfer = transfer + self.weights["sr"] * sr_scale * self_refinement_loss(
                logits[n_src:n], logits[n:], self.sr_epsilon, clean_teaches)
        losses = {"cls": self.weights["cls"] * cross_entropy(logits[:n_src], batch.y_src),
                  "transfer": transfer}
        return losses, logits[n_src:n].detach()

    def losses(self, *args: Any) -> dict[str, Tensor]:
        """The losses of `losses_and_logits` alone (for `Stage.reevaluate`)."""
        return self.losses_and_logits(*args)[0]

    # ---- schedules ----
    def check_interval(self, total_steps: int) -> int:
        """Iterations between diversity checks (released adap_adjust_T)."""
        if self.safe_period is not None:
            return self.safe_period
        return max(2 ** self.safe_levels, total_steps // 10)

    def grl_coeff(self, info: StepInfo) -> float:
        """Warm-start reversal coefficient, 0 -> 0.1 (released alpha 1, max_iters 1000)."""
        max_iter = self.grl_max_iter or max(1.0, info.total_steps / 10)
        return grl_coefficient(info.step, high=0.1, low=0.0, alpha=1.0, max_iter=max_iter)

    # ---- safe training ----
    def ramp(self, step: int) -> float:
        """r in [0, 1]: the sine warm-up of the self-refinement strength (1 when off)."""
        if not self.safe_training:
            return 1.0
        phase, period = self.safe["phase"], self.safe["period"]
        if step >= phase + period:
            return 1.0
        return math.sin((step - phase) / period * math.pi / 2)

    def _safe_begin(self, step: int, interval: int) -> None:
        if self.safe["period"] is None:
            self.safe["period"] = interval
        if self.safe["restore"] and step > 0:
            self.safe["last_restore"] = step
            self.safe["restore"] = False
        if step % interval == 0:
            self.safe["divs"] = []

    def _safe_end(self, step: int, interval: int, diversity: int, r: float) -> None:
        s = self.safe
        s["divs"].append(diversity)
        if step > 0 and (step + 1) % interval == 0:
            if r > 0.1 and diversity_dropped(s["divs"], s["divs_last"], self.safe_levels):
                s["restore"] = True
                s["phase"] = step
                if step - s["last_restore"] <= s["period"]:
                    s["period"] *= 2
            else:
                s["divs_last"] = list(s["divs"])

    # ---- iteration ----
    def stages(self, batch: Batch, info: StepInfo) -> Iterator[Stage]:
        interval = self.check_interval(info.total_steps)
        if self.safe_training:
            self._safe_begin(info.step, interval)
        r = self.ramp(info.step)
        layer = (self.sr_layers[int(torch.randint(len(self.sr_layers), ()))]
                 if self.sr_layers else None)
        clean_teaches = float(torch.rand(())) <= self.sr_loss_p
        args = (batch, self.grl_coeff(info), layer, self.sr_alpha * r, r, clean_teaches)
        losses, target_logits = self.losses_and_logits(*args)
        if self.safe_training:
            self._safe_end(info.step, interval, int(target_logits.argmax(1).unique().numel()), r)
        yield Stage("main", losses, step=("backbone", "bottleneck", "classifier",
                                          "discriminator"),
                    pairs=(Pair("cls", "transfer", ("backbone",)),),
                    reevaluate=reevaluator(self, partial(self.losses, *args)))
