"""Vision transformers behind one interface, so SSRT-style methods can act between blocks.

`ViTBackbone` exposes ``embed(x)`` (patch tokens with the class token and position
embedding, shape ``(B, 1 + N, D)``), ``blocks`` (an indexable sequence of transformer blocks)
and ``pool(tokens)`` (final norm, class token). ``forward(x)`` chains them. `TinyViT` is the
small pre-norm ViT used on digits-mini; torchvision's ViT-B/16 is wrapped to the same
interface in `ghuda.models.torchvision_backbones`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ghuda.models.inputs import InputNorm


class ViTBackbone(nn.Module):
    """Interface of ViT backbones: `embed`, `blocks`, `pool`; `feature_dim` is D."""

    kind = "vit"
    feature_dim: int
    blocks: nn.Sequential

    def embed(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def pool(self, tokens: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.blocks(self.embed(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


def conv_stem(in_channels: int, dim: int, patch_size: int) -> nn.Sequential:
    """Hybrid-ViT patch embedding: log2(patch_size) stride-2 conv3x3-BN-ReLU layers (widths
    doubling up to `dim`, the last one linear), one token per patch_size x patch_size cell."""
    steps = patch_size.bit_length() - 1
    if patch_size < 2 or 1 << steps != patch_size:
        raise ValueError(f"tiny_vit: the conv stem needs a power-of-two patch_size >= 2, got "
                         f"{patch_size}")
    layers: list[nn.Module] = []
    channels = in_channels
    for i in range(1, steps):
        width = max(dim >> (steps - i), 8)
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width),
                   nn.ReLU(inplace=True)]
        channels = width
    layers.append(nn.Conv2d(channels, dim, 3, stride=2, padding=1))
    return nn.Sequential(*layers)


class TinyViT(ViTBackbone):
    """A small ViT for 32x32 images (defaults: 8x8 patches, D=64, 2 blocks, 4 heads), with
    the digits-mini input normalisation of `ghuda.models.inputs` (default gray).

    ``stem="conv"`` (default) embeds patches with a small convolutional stem (the hybrid ViT of
    Dosovitskiy et al.); ``"patch"`` is the plain linear patch projection. Trained from scratch
    for a few hundred SGD steps, the plain ViT stays near chance on digits-mini's source
    validation split. Source-validation accuracy after 600 source-only steps (lr 0.01, seed 0):
    patch stem 12% (depth 4); conv stem depth 4 / 3 / 2: 63% / 66% / 77% -> conv, depth 2.
    """

    def __init__(self, image_size: int = 32, patch_size: int = 8, dim: int = 64, depth: int = 2,
                 heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.0,
                 input_norm: str = "gray", stem: str = "conv", in_channels: int = 3) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"tiny_vit: image_size {image_size} is not a multiple of "
                             f"patch_size {patch_size}")
        if dim % heads:
            raise ValueError(f"tiny_vit: dim {dim} is not a multiple of heads {heads}")
        num_patches = (image_size // patch_size) ** 2
        self.input_norm = InputNorm(input_norm, in_channels, "tiny_vit")
        if stem not in ("conv", "patch"):
            raise ValueError(f"tiny_vit: stem {stem!r} is not one of conv, patch")
        channels = self.input_norm.out_channels
        self.patch_embed = (conv_stem(channels, dim, patch_size) if stem == "conv" else
                            nn.Conv2d(channels, dim, patch_size, stride=patch_size))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.pos_drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(Block(dim, heads, mlp_ratio, dropout)
                                      for _ in range(depth)))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.feature_dim = dim
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def embed(self, x: Tensor) -> Tensor:
        tokens = self.patch_embed(self.input_norm(x)).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        return self.pos_drop(torch.cat((cls, tokens), dim=1) + self.pos_embed)

    def pool(self, tokens: Tensor) -> Tensor:
        return self.norm(tokens)[:, 0]
