"""Parameter-free per-image input normalisation for the digits-mini backbones.

``"gray"`` averages the colour channels and standardises each image to zero mean and unit
variance (the usual grayscale preprocessing of SVHN -> MNIST style tasks), ``"standardize"``
standardises each image keeping colour, ``"none"`` passes the input unchanged. Chosen on
SOURCE validation accuracy (configs/digits_mini.yaml documents the search).
"""

from __future__ import annotations

from torch import Tensor, nn

INPUT_NORMS = ("gray", "standardize", "none")


def standardize(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-image zero mean, unit variance over channels and pixels."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / (std + eps)


class InputNorm(nn.Module):
    """One of `INPUT_NORMS`; `out_channels` is what the first layer receives."""

    def __init__(self, mode: str, in_channels: int, owner: str) -> None:
        super().__init__()
        if mode not in INPUT_NORMS:
            raise ValueError(f"{owner}: input_norm {mode!r} is not one of "
                             f"{', '.join(INPUT_NORMS)}")
        self.mode = mode
        self.out_channels = 1 if mode == "gray" else in_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "gray":
            return standardize(x.mean(dim=1, keepdim=True))
        if self.mode == "standardize":
            return standardize(x)
        return x

    def extra_repr(self) -> str:
        return self.mode
