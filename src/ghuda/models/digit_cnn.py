"""Small CNN for the 32x32 digits-mini benchmark.

Three stride-2 convolutions (32 -> 16 -> 8 -> 4) with batch norm, then one fully connected
layer: about 0.16 M parameters and 2 MFLOP per image, so that a few hundred training steps run
in seconds on one CPU thread (the default pipeline trains hundreds of such runs). The released
digits experiments use LeNet / DTN (REFERENCE 1.5); this network plays their role at a size a
2-core CPU can afford.

`input_norm` is a parameter-free per-image input normalisation (`ghuda.models.inputs`;
default ``"gray"``), chosen on SOURCE validation accuracy of source-only training
(configs/digits_mini.yaml documents the search).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ghuda.models.inputs import InputNorm


class DigitCNN(nn.Module):
    """Input normalisation, conv(k5,s2)-BN-ReLU, conv(k3,s2)-BN-ReLU blocks, Linear-ReLU."""

    kind = "cnn"

    def __init__(self, widths: Sequence[int] = (16, 32, 64), feature_dim: int = 128,
                 input_norm: str = "gray", in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        if not widths:
            raise ValueError("digit_cnn: widths must name at least one convolution")
        self.input_norm = InputNorm(input_norm, in_channels, "digit_cnn")
        layers: list[nn.Module] = []
        channels, size = self.input_norm.out_channels, image_size
        for i, width in enumerate(widths):
            kernel = 5 if i == 0 else 3
            layers += [nn.Conv2d(channels, width, kernel, stride=2, padding=kernel // 2),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels, size = width, (size + 1) // 2
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, feature_dim),
                                nn.ReLU(inplace=True))
        self.feature_dim = feature_dim
        for m in self.conv.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(self.input_norm(x)))
