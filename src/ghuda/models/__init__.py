"""Backbones by name: digits-mini networks, the released Digits networks (LeNet, DTN,
`ghuda.models.release_digits`), torchvision's ImageNet backbones and EfficientNet-Lite0 with the
ImageNet weights a registry package ships (`ghuda.models.efficientnet`).

``build_backbone(name, pretrained=..., **options)`` returns an ``nn.Module`` mapping images to
feature vectors, with attributes ``feature_dim`` (int) and ``kind`` ("cnn" or "vit"; ViTs
implement `ghuda.models.vit.ViTBackbone`). Options are the constructor's keyword arguments
(``model.options`` in the run config); ``vit_b16`` also takes ``weights``
(``augreg_in21k_ft_in1k``, the released default, or ``imagenet1k``) and ``weights_file``, see
`ghuda.models.torchvision_backbones`; ``efficientnet_lite0`` takes ``input_size`` and
``frozen_stages`` (`ghuda.models.efficientnet.EfficientNetLite0`).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ghuda.models import efficientnet
from ghuda.models.digit_cnn import DigitCNN
from ghuda.models.efficientnet import EfficientNetLite0
from ghuda.models.release_digits import DTN, LeNet
from ghuda.models.vit import TinyViT, ViTBackbone

# name -> (kind, has ImageNet weights: the torchvision backbones and efficientnet_lite0)
BACKBONES: dict[str, tuple[str, bool]] = {
    "digit_cnn": ("cnn", False),
    # the released MCD Digits networks (ghuda.models.release_digits; configs/paper.yaml)
    "lenet": ("cnn", False),
    "dtn": ("cnn", False),
    "tiny_vit": ("vit", False),
    "resnet50": ("cnn", True),
    "resnet101": ("cnn", True),
    "vit_b16": ("vit", True),
    "efficientnet_lite0": ("cnn", True),
}
_LOCAL = {"digit_cnn": DigitCNN, "lenet": LeNet, "dtn": DTN, "tiny_vit": TinyViT}
# backbones built here whose constructor takes `pretrained` (weights shipped offline)
_SHIPPED = {"efficientnet_lite0": EfficientNetLite0}


def names() -> list[str]:
    """Backbone names accepted by `build_backbone`."""
    return list(BACKBONES)


def kind(name: str) -> str:
    """"cnn" or "vit"."""
    return BACKBONES[_check(name)][0]


def has_imagenet_weights(name: str) -> bool:
    """Whether `pretrained: true` is meaningful for backbone `name`."""
    return BACKBONES[_check(name)][1]


def option_names(name: str) -> list[str]:
    """Keyword options backbone `name` accepts under ``model.options``."""
    if name in _LOCAL:
        return [p for p in inspect.signature(_LOCAL[name]).parameters]
    if name in _SHIPPED:
        return [p for p in inspect.signature(_SHIPPED[name]).parameters if p != "pretrained"]
    from ghuda.models import torchvision_backbones

    return torchvision_backbones.option_names(_check(name))


def check_options(name: str, options: dict[str, Any]) -> None:
    """Check option values known before building (the ViT weight choice, EfficientNet-Lite0's
    options); raises ValueError naming the option."""
    if name in _SHIPPED:
        unknown = sorted(set(options) - set(option_names(name)))
        if unknown:
            raise ValueError(f"model.options.{unknown[0]}: backbone {name!r} has no such "
                             f"option; allowed options: {option_names(name)}")
        efficientnet.check_options(**options)
    elif name not in _LOCAL:
        from ghuda.models import torchvision_backbones

        torchvision_backbones.check_options(_check(name), options)


def build_backbone(name: str, *, pretrained: bool = False, **options: Any) -> nn.Module:
    """Build backbone `name`; `pretrained` loads ImageNet weights (torchvision backbones, from
    their cache; efficientnet_lite0, from the installed package)."""
    _check(name)
    if name in _LOCAL:
        if pretrained:
            raise ValueError(f"model.pretrained: backbone {name!r} has no ImageNet weights; "
                             "set model.pretrained: false")
        try:
            return _LOCAL[name](**options)
        except TypeError as err:
            raise ValueError(f"model.options for {name!r}: {err}; allowed options: "
                             f"{option_names(name)}") from None
    if name in _SHIPPED:
        check_options(name, options)
        return _SHIPPED[name](pretrained=pretrained, **options)
    from ghuda.models import torchvision_backbones

    try:
        return torchvision_backbones.build(name, pretrained=pretrained, **options)
    except TypeError as err:
        raise ValueError(f"model.options for {name!r}: {err}") from None


def _check(name: str) -> str:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {names()}")
    return name


__all__ = ["BACKBONES", "DTN", "DigitCNN", "EfficientNetLite0", "LeNet", "TinyViT", "ViTBackbone",
           "build_backbone", "names"]
