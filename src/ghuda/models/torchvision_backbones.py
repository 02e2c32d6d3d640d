"""ResNet-50 / ResNet-101 / ViT-B/16 from torchvision, with pre-trained weights from a cache.

The released code starts every paper experiment from ImageNet weights (REFERENCE 1.5).
ResNets use the torchvision IMAGENET1K_V1 files (the ones ``pretrained=True`` gave the released
code), read from torchvision's cache ``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir()``).
When a file is missing it is downloaded, unless ``GHUDA_OFFLINE=1`` is set or the download
fails: then `PretrainedWeightsMissing` names the exact file to place and where. ``pretrained:
false`` in the config skips all of this (random initialisation).

``vit_b16`` takes the option ``model.options.weights`` (`VIT_WEIGHTS`):

- ``augreg_in21k_ft_in1k`` (default, as released: SSRT's ssrt/model/helpers.py ~365-371): the
  AugReg ViT-B/16, ImageNet-21k pre-trained and fine-tuned on ImageNet-1k at 224 (timm's
  ``vit_base_patch16_224.augreg_in21k_ft_in1k``). Read from ``model.options.weights_file`` when
  given (the JAX ``.npz``, or timm's ``pytorch_model.bin`` / ``model.safetensors``; never
  downloaded), else from ``$TORCH_HOME/hub/checkpoints/`` + `vit_weights.AUGREG_NPZ`
  (downloaded from `vit_weights.AUGREG_URL` when missing, as above). Converted to torchvision's
  layout by `ghuda.models.vit_weights`. AugReg was trained on inputs normalised with mean = std
  = 0.5, but the released SSRT pipeline (ssrt/dataset/data_provider.py ~10) feeds it
  ImageNet-normalised images; ghuda does the same (its image pipeline is unchanged).
- ``imagenet1k``: torchvision's IMAGENET1K_V1 ViT-B/16 (a listed deviation from the release).

torchvision is imported only here, so the digits-mini path never pays for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ghuda.models import vit_weights
from ghuda.models.vit import ViTBackbone

OFFLINE_ENV = "GHUDA_OFFLINE"
# model.options.weights of vit_b16; the first is the default (the released weights)
VIT_WEIGHTS = ("augreg_in21k_ft_in1k", "imagenet1k")

# name -> (torchvision builder, weights enum name)
_SPECS: dict[str, tuple[str, str]] = {
    "resnet50": ("resnet50", "ResNet50_Weights"),
    "resnet101": ("resnet101", "ResNet101_Weights"),
    "vit_b16": ("vit_b_16", "ViT_B_16_Weights"),
}
# name -> (model class the builder constructs, the constructor arguments the builder fixes)
_MODEL_CLASSES: dict[str, tuple[str, tuple[str, ...]]] = {
    "resnet50": ("ResNet", ("block", "layers")),
    "resnet101": ("ResNet", ("block", "layers")),
    "vit_b16": ("VisionTransformer", ("patch_size", "num_layers", "num_heads", "hidden_dim",
                                      "mlp_dim")),
}
# backbone name -> torchvision weights enum, for `imagenet_weights` (ResNet-18: the retrieval
# extension's TIRG image encoder, not a UDA backbone)
_WEIGHTS = {**{name: spec[1] for name, spec in _SPECS.items()}, "resnet18": "ResNet18_Weights"}


class PretrainedWeightsMissing(RuntimeError):
    """Pre-trained weights are missing (neither cached nor downloadable), unreadable or unfit."""


def weights_file(name: str) -> tuple[Path, str]:
    """(cache path, download URL) of the ImageNet weights of backbone `name`."""
    import torchvision.models as tvm

    weights = getattr(tvm, _WEIGHTS[name]).IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url), weights.url


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "") in {"1", "true", "yes"}


def imagenet_weights(name: str) -> dict[str, Tensor]:
    """The IMAGENET1K_V1 state dict of backbone `name` from the cache (downloaded when missing
    and allowed); `PretrainedWeightsMissing` says which file to place where."""
    path, url = weights_file(name)
    if not path.is_file():
        reason = f"{OFFLINE_ENV}=1 is set"
        if not _offline():
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


def option_names(name: str) -> list[str]:
    """``model.options`` of backbone `name`: the torchvision model's constructor arguments
    that its builder leaves free (and, for vit_b16, ``weights`` and ``weights_file``)."""
    import inspect

    import torchvision.models as tvm

    cls, fixed = _MODEL_CLASSES[name]
    params = list(inspect.signature(getattr(tvm, cls).__init__).parameters)[1:]
    free = [p for p in params if p not in fixed]
    return [*free, "weights", "weights_file"] if name == "vit_b16" else free


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Check the weight options (``weights``, ``weights_file``); raises `ValueError`."""
    given = sorted(key for key in ("weights", "weights_file") if key in options)
    if name != "vit_b16":
        if given:
            raise ValueError(f"model.options.{given[0]}: backbone {name!r} has no weights "
                             "choice (only vit_b16 has)")
        return
    weights = options.get("weights", VIT_WEIGHTS[0])
    if weights not in VIT_WEIGHTS:
        raise ValueError(f"model.options.weights: unknown value {weights!r}; allowed values: "
                         f"{', '.join(VIT_WEIGHTS)}")
    file = options.get("weights_file")
    if file is not None and not isinstance(file, str):
        raise ValueError(f"model.options.weights_file: expected a path, got {file!r}")
    if file is not None and weights != VIT_WEIGHTS[0]:
        raise ValueError(f"model.options.weights_file: read only with weights: {VIT_WEIGHTS[0]}")


def augreg_file(weights_file: str | None = None) -> Path:
    """Where the AugReg ViT-B/16 weights are read: `weights_file`, else torchvision's cache."""
    if weights_file is not None:
        return Path(weights_file).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints" / vit_weights.AUGREG_NPZ


def _load_augreg(weights_file: str | None) -> dict[str, Tensor]:
    path, url = augreg_file(weights_file), vit_weights.AUGREG_URL
    alternatives = ("  or set model.options.weights: imagenet1k (torchvision's ImageNet-1k "
                    "weights, a deviation from the released code),\n"
                    "  or model.pretrained: false to train from random initialisation.")
    if weights_file is not None and not path.is_file():
        raise PretrainedWeightsMissing(
            f"AugReg ViT-B/16 weights not found: model.options.weights_file is {path}, which is "
            f"not a file.\n  Place there {vit_weights.AUGREG_NPZ} (download it from {url} on a "
            f"machine with internet) or timm's pytorch_model.bin / model.safetensors of "
            f"vit_base_patch16_224.augreg_in21k_ft_in1k,\n{alternatives}")
    if not path.is_file():
        reason = f"{OFFLINE_ENV}=1 is set"
        if not _offline():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(url, str(path), progress=False)
            except Exception as err:  # any network failure: explain, do not guess
                reason = f"download failed: {err}"
        if not path.is_file():
            raise PretrainedWeightsMissing(
                f"AugReg ViT-B/16 weights (model.options.weights: {VIT_WEIGHTS[0]}, as "
                f"released) are not cached ({reason}).\n"
                f"  Place the file {path.name} at:\n    {path}\n"
                f"  (download it from {url} on a machine with internet; the directory is "
                f"$TORCH_HOME/hub/checkpoints, TORCH_HOME defaulting to ~/.cache/torch),\n"
                f"  or set model.options.weights_file to a local copy (that .npz, or timm's "
                f"pytorch_model.bin / model.safetensors),\n{alternatives}")
    try:
        return vit_weights.read_weights(path)
    except Exception as err:
        raise PretrainedWeightsMissing(
            f"cannot read AugReg ViT-B/16 weights {path} ({err}); place a good copy of "
            f"{vit_weights.AUGREG_NPZ} from {url}") from None


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
    """Backbone `name` ("resnet50", "resnet101", "vit_b16"); `check_options` checks the weight
    options, the others go to torchvision."""
    import torchvision.models as tvm

    check_options(name, options)
    weights = options.pop("weights", VIT_WEIGHTS[0] if name == "vit_b16" else "imagenet1k")
    file_option = options.pop("weights_file", None)
    builder = getattr(tvm, _SPECS[name][0])
    net = builder(weights=None, **options)
    if pretrained:
        if weights == "imagenet1k":
            state, path = imagenet_weights(name), weights_file(name)[0]
        else:
            state, path = _load_augreg(file_option), augreg_file(file_option)
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            label = "ImageNet" if weights == "imagenet1k" else "AugReg"
            raise PretrainedWeightsMissing(
                f"{label} weights {path} do not fit backbone {name!r} with options "
                f"{options}: {err}") from None
    return TorchvisionViT(net) if name == "vit_b16" else ResNetFeatures(net)
