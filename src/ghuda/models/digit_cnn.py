"""Small CNN for the 32x32 digits-mini benchmark.

Three stride-2 convolutions (32 -> 16 -> 8 -> 4) with batch norm, then one fully connected
layer: about 0.16 M parameters and 2 MFLOP per image, so that a few hundred training steps run
in seconds on one CPU thread (the default pipeline trains hundreds of such runs). The released
digits experiments use LeNet / DTN (REFERENCE 1.5); this network plays their role at a size a
2-core CPU can afford.

`input_norm` is a parameter-free per-image input normalisation: ``"gray"`` (default) averages
the colour channels and standardises each image to zero mean and unit variance (the usual
grayscale preprocessing of SVHN -> MNIST style tasks), ``"standardize"`` standardises each
image keeping colour, ``"none"`` feeds the input unchanged. It was chosen on SOURCE validation
accuracy of source-only training (configs/digits_mini.yaml documents the search).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

INPUT_NORMS = ("gray", "standardize", "none")


def standardize(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-image zero mean, unit variance over channels and pixels."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / (std + eps)


class DigitCNN(nn.Module):
    """Input normalisation, conv(k5,s2)-BN-ReLU, conv(k3,s2)-BN-ReLU blocks, Linear-ReLU."""

    kind = "cnn"

    def __init__(self, widths: Sequence[int] = (16, 32, 64), feature_dim: int = 128,
                 input_norm: str = "gray", in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        if not widths:
            raise ValueError("digit_cnn: widths must name at least one convolution")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"digit_cnn: input_norm {input_norm!r} is not one of "
                             f"{', '.join(INPUT_NORMS)}")
        self.input_norm = input_norm
        layers: list[nn.Module] = []
        channels, size = (1 if input_norm == "gray" else in_channels), image_size
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
        if self.input_norm == "gray":
            x = standardize(x.mean(dim=1, keepdim=True))
        elif self.input_norm == "standardize":
            x = standardize(x)
        return self.fc(self.conv(x))
