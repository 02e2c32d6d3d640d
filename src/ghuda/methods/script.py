"""The released CDAN-family script (cdan/train_image.py, gvb/train_image.py; REFERENCE 1.5b):
its policy (initialisation, weight decay, training crop) and `ScriptMethod`, the base of the
methods it trains (source_only, dann, cdan, gvb). `ghuda.methods.release` lists the switches'
values and records what the script does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor, nn

from ghuda.methods import release
from ghuda.methods.base import Method, Pair, Stage
from ghuda.methods.checks import check_switches
from ghuda.methods.lookahead import reevaluator
from ghuda.methods.networks import ClassifierHead, params_of

SMALL_DOMAINS = ("webcam", "dslr")


def init_kind(init: str) -> str:
    """`ghuda.models.heads.init_linear` kind of the ``init`` switch (released: Kaiming)."""
    return "kaiming" if init == release.RELEASED else init


def script_optimizer(groups: list[str], optimizer: str) -> dict[str, dict[str, Any]]:
    """Released weight decay: ``decay_mult`` 2 on every group (cdan/lr_schedule.py ~6,
    cdan/network.py get_parameters), i.e. 1e-3 effective for the nominal 5e-4."""
    return {g: {"decay_mult": 2.0} for g in groups} if optimizer == release.RELEASED else {}


def script_crop(augment: str, domain: str, *, per_domain: bool) -> str:
    """Released training crop: with `per_domain` (CDAN script, cdan/train_image.py ~90-98)
    RandomResizedCrop for webcam/dslr and RandomCrop otherwise; else RandomCrop (GVB,
    gvb/train_image.py ~67-68)."""
    if augment != release.RELEASED:
        return augment
    if per_domain and domain in SMALL_DOMAINS:
        return "random_resized_crop"
    return "random_crop"


class ScriptMethod(Method):
    """A method trained by the released CDAN-family script: backbone -> `ClassifierHead`
    (``head``), then the modules named in `EXTRA_GROUPS` (attributes set by the subclass),
    each one parameter group, in that order.

    `switches` (``init``, ``optimizer``, ``augment`` and the subclass's others) are validated
    in the order given; ``optimizer: released`` doubles every group's weight decay
    (`script_optimizer`), ``augment`` picks the training crop (`script_crop`, per domain for
    the CDAN script, `CROP_PER_DOMAIN`). Prediction is the classifier's output, features the
    bottleneck's.
    """

    EXTRA_GROUPS: ClassVar[tuple[str, ...]] = ()
    CROP_PER_DOMAIN: ClassVar[bool] = True

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 bottleneck_dim: int, **switches: str) -> None:
        super().__init__(backbone, feature_dim, num_classes)
        check_switches(self.name, **switches)
        self.optimizer = switches["optimizer"]
        self.head = ClassifierHead(feature_dim, num_classes, bottleneck_dim,
                                   init_kind(switches["init"]))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": params_of(self.backbone), **self.head.groups(),
                **{g: params_of(getattr(self, g)) for g in self.EXTRA_GROUPS}}

    def optimizer_overrides(self) -> dict[str, dict[str, Any]]:
        return script_optimizer(list(self.param_groups()), self.optimizer)

    @classmethod
    def train_crop(cls, params: dict[str, Any], domain: str) -> str:
        return script_crop(params.get("augment", release.RELEASED), domain,
                           per_domain=cls.CROP_PER_DOMAIN)

    def predict(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x))[1]

    def features(self, x: Tensor) -> Tensor:
        """The bottleneck features (the discriminators' input)."""
        return self.head.embed(self.backbone(x))

    def generator_groups(self) -> tuple[str, ...]:
        """Every group but the discriminator's: the released GH measure scope (REFERENCE 1.4)."""
        return tuple(g for g in self.param_groups() if g != "discriminator")

    def adversarial_stage(self, fn: Callable[..., dict[str, Tensor]],
                          pairs: tuple[Pair, ...]) -> Stage:
        """The one stage of an adversarial iteration: the losses of ``fn(monitor=...)`` (which
        fills the monitor), every group stepped, `reevaluate` recomputing ``fn()``."""
        monitor: dict[str, Tensor | float] = {}
        return Stage("main", fn(monitor=monitor), step=tuple(self.param_groups()), pairs=pairs,
                     reevaluate=reevaluator(self, fn), monitor=monitor)
