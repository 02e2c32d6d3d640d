"""The digit networks of the released MCD Digits commands: LeNet and DTN (issue 24, item 1).

Facts from the GH release (fuxianghuang1/GH@7684eaf; ``mcd/mcd.sh`` 66-71,
``mcd/tllib/vision/models/digits.py`` 8-55, ``mcd/utils.py`` 147-219):

- MNIST <-> USPS: ``-a lenet`` on 28 x 28 GREY images (tllib's MNIST / USPS load ``mode="L"``),
  ``--resize-size 28``, normalised with mean 0.5 and std 0.5 (values in [-1, 1]), no flip.
  LeNet: ``Conv(1, 20, 5)-MaxPool(2)-ReLU-Conv(20, 50, 5)-Dropout2d(0.5)-MaxPool(2)-ReLU-
  Flatten-Linear(800, 500)-ReLU-Dropout(0.5)``: 500-d features.
- SVHN -> MNIST: ``-a dtn`` on 32 x 32 RGB (SVHNRGB -> MNISTRGB, grey MNIST replicated to three
  channels), ``--resize-size 32``, mean / std 0.5 per channel. DTN: three
  ``Conv(k5, s2, p2)-BN-Dropout2d(p)-ReLU`` blocks (64, 128, 256 channels; p = 0.1, 0.3, 0.5),
  ``Flatten-Linear(4096, 512)-BN1d-ReLU-Dropout(0.5)``: 512-d features.

ghuda's digits images arrive as 3 x 32 x 32 in [-1, 1] (`ghuda.data.transforms`: (x - 0.5) /
0.5 of [0, 1], grey digits replicated to RGB and resized bilinearly to 32). That is DTN's
released input already. LeNet's released input is recovered inside the network (``input:
released``): the channel mean (exact for replicated grey) resized bilinearly to 28 x 28
(antialiased); ``input: none`` feeds a 1 x 28 x 28 input unchanged. The release resized USPS's
16 x 16 images straight to 28 with PIL's ``Image.resize`` default filter; ghuda's 28 x 28 comes
from its 32 x 32 copy: the same digit up to interpolation. Layers keep PyTorch's default
initialisation, as released (the release trains these from scratch, ``--scratch``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

LENET_INPUTS = ("released", "none")


class LeNet(nn.Module):
    """tllib's LeNet (500-d features) behind the released 28 x 28 grey input."""

    kind = "cnn"

    def __init__(self, input: str = "released", image_size: int = 28) -> None:
        super().__init__()
        if input not in LENET_INPUTS:
            raise ValueError(f"lenet: input {input!r} is not one of {', '.join(LENET_INPUTS)}")
        self.input, self.image_size = input, int(image_size)
        self.features = nn.Sequential(
            nn.Conv2d(1, 20, kernel_size=5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(20, 50, kernel_size=5), nn.Dropout2d(p=0.5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(start_dim=1), nn.Linear(50 * 4 * 4, 500), nn.ReLU(), nn.Dropout(p=0.5))
        self.feature_dim = 500

    def prepare(self, x: Tensor) -> Tensor:
        """The released input: grey, 28 x 28, values as given ((x - 0.5) / 0.5)."""
        if self.input == "none":
            return x
        x = x.mean(dim=1, keepdim=True)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              align_corners=False, antialias=True)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.features(self.prepare(x))


class DTN(nn.Module):
    """tllib's DTN (512-d features) on 32 x 32 RGB in [-1, 1]."""

    kind = "cnn"

    def __init__(self) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        channels = 3
        for width, p in ((64, 0.1), (128, 0.3), (256, 0.5)):
            blocks += [nn.Conv2d(channels, width, kernel_size=5, stride=2, padding=2),
                       nn.BatchNorm2d(width), nn.Dropout2d(p), nn.ReLU()]
            channels = width
        self.features = nn.Sequential(
            *blocks, nn.Flatten(start_dim=1), nn.Linear(256 * 4 * 4, 512), nn.BatchNorm1d(512),
            nn.ReLU(), nn.Dropout())
        self.feature_dim = 512

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)
