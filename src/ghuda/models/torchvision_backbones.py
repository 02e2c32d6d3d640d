"""ResNet-50 / ResNet-101 / ViT-B/16 from torchvision, with ImageNet weights from its cache.

The released code starts every paper experiment from ImageNet weights (REFERENCE 1.5). Weights
are the torchvision IMAGENET1K_V1 files (the ones ``pretrained=True`` gave the released code),
read from torchvision's cache ``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir()``). When a
file is missing it is downloaded, unless ``GHUDA_OFFLINE=1`` is set or the download fails: then
`PretrainedWeightsMissing` names the exact file to place and where. ``pretrained: false`` in
the config skips all of this (random initialisation).

torchvision is imported only here, so the digits-mini path never pays for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ghuda.models.vit import ViTBackbone

OFFLINE_ENV = "GHUDA_OFFLINE"

# name -> (torchvision builder, weights enum name)
_SPECS: dict[str, tuple[str, str]] = {
    "resnet50": ("resnet50", "ResNet50_Weights"),
    "resnet101": ("resnet101", "ResNet101_Weights"),
    "vit_b16": ("vit_b_16", "ViT_B_16_Weights"),
}


class PretrainedWeightsMissing(RuntimeError):
    """ImageNet weights are neither cached nor downloadable."""


def weights_file(name: str) -> tuple[Path, str]:
    """(cache path, download URL) of the ImageNet weights of backbone `name`."""
    import torchvision.models as tvm

    weights = getattr(tvm, _SPECS[name][1]).IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url), weights.url


def _load_weights(name: str) -> dict[str, Tensor]:
    path, url = weights_file(name)
    if not path.is_file():
        reason = f"{OFFLINE_ENV}=1 is set"
        if os.environ.get(OFFLINE_ENV, "") not in {"1", "true", "yes"}:
            try:
                return torch.hub.load_state_dict_from_url(url, progress=False, check_hash=True)
            except Exception as err:  # any network / hash failure: explain, do not guess
                reason = f"download failed: {err}"
        raise PretrainedWeightsMissing(
            f"ImageNet weights for backbone {name!r} are not cached ({reason}).\n"
            f"  Place the file {path.name} at:\n    {path}\n"
            f"  (download it from {url} on a machine with internet; the directory is "
            f"$TORCH_HOME/hub/checkpoints, TORCH_HOME defaulting to ~/.cache/torch),\n"
            f"  or set model.pretrained: false to train from random initialisation.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise PretrainedWeightsMissing(
            f"cannot read ImageNet weights {path} ({err}); delete the file and place a good "
            f"copy from {url}") from None


class ResNetFeatures(nn.Module):
    """A torchvision ResNet without its classifier: pooled 2048-d features."""

    kind = "cnn"

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.feature_dim = resnet.fc.in_features
        resnet.fc = nn.Identity()
        self.net = resnet

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TorchvisionViT(ViTBackbone):
    """torchvision's VisionTransformer behind the `ViTBackbone` interface (class token out)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit
        self.vit.heads = nn.Identity()
        self.feature_dim = vit.hidden_dim

    @property
    def blocks(self) -> nn.Sequential:  # type: ignore[override]
        return self.vit.encoder.layers

    def embed(self, x: Tensor) -> Tensor:
        tokens = self.vit._process_input(x)
        cls = self.vit.class_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat((cls, tokens), dim=1) + self.vit.encoder.pos_embedding
        return self.vit.encoder.dropout(tokens)

    def pool(self, tokens: Tensor) -> Tensor:
        return self.vit.encoder.ln(tokens)[:, 0]


def build(name: str, *, pretrained: bool, **options: Any) -> nn.Module:
    """Backbone `name` ("resnet50", "resnet101", "vit_b16"); options go to torchvision."""
    import torchvision.models as tvm

    builder = getattr(tvm, _SPECS[name][0])
    net = builder(weights=None, **options)
    if pretrained:
        state = _load_weights(name)
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            path, _ = weights_file(name)
            raise PretrainedWeightsMissing(
                f"ImageNet weights {path} do not fit backbone {name!r} with options "
                f"{options}: {err}") from None
    return TorchvisionViT(net) if name == "vit_b16" else ResNetFeatures(net)
