"""ViT weights in the JAX (big_vision / vit_jax ``.npz``) or timm layout, as torchvision's.

The released SSRT code starts ViT-B/16 from the AugReg checkpoint `AUGREG_NPZ` (ImageNet-21k
pre-trained, fine-tuned on ImageNet-1k at 224; timm's ``vit_base_patch16_224.augreg_in21k_ft_in1k``;
fuxianghuang1/GH ssrt/model/helpers.py ~365-371). `read_weights` reads that ``.npz`` or timm's
PyTorch copy of it (``pytorch_model.bin`` / ``.pth`` / ``.pt``, or ``model.safetensors`` when the
``safetensors`` package is installed) and returns the state dict of torchvision's
``VisionTransformer``. Depth, width, heads and MLP size come from the file. A file in neither
layout, or holding tensors this converter does not place (e.g. a ``pre_logits`` layer), is a
`ValueError` naming the keys.

Layout facts used (JAX ``Dense`` kernels are ``(in, out)``, torch ``Linear`` weights
``(out, in)``): attention query / key / value kernels ``(hidden, heads, head_dim)`` and biases
``(heads, head_dim)``, out kernel ``(heads, head_dim, hidden)``, the patch-embedding conv kernel
``(kh, kw, in, out)``; torchvision packs query, key and value (in that order) into
``in_proj_weight`` ``(3 * hidden, hidden)``, as timm does into ``attn.qkv``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

AUGREG_NPZ = ("B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k"
              "-lr_0.01-res_224.npz")
AUGREG_URL = "https://storage.googleapis.com/vit_models/augreg/" + AUGREG_NPZ

_LAYER = "encoder.layers.encoder_layer_{}."
# timm key (regex) -> torchvision key
_TIMM_RENAMES: list[tuple[str, str]] = [
    (r"cls_token", "class_token"),
    (r"pos_embed", "encoder.pos_embedding"),
    (r"patch_embed\.proj\.(weight|bias)", r"conv_proj.\1"),
    (r"blocks\.(\d+)\.norm1\.(weight|bias)", r"encoder.layers.encoder_layer_\1.ln_1.\2"),
    (r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)",
     r"encoder.layers.encoder_layer_\1.self_attention.in_proj_\2"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)",
     r"encoder.layers.encoder_layer_\1.self_attention.out_proj.\2"),
    (r"blocks\.(\d+)\.norm2\.(weight|bias)", r"encoder.layers.encoder_layer_\1.ln_2.\2"),
    (r"blocks\.(\d+)\.mlp\.fc1\.(weight|bias)", r"encoder.layers.encoder_layer_\1.mlp.0.\2"),
    (r"blocks\.(\d+)\.mlp\.fc2\.(weight|bias)", r"encoder.layers.encoder_layer_\1.mlp.3.\2"),
    (r"norm\.(weight|bias)", r"encoder.ln.\1"),
    (r"head\.(weight|bias)", r"heads.head.\1"),
]


def read_weights(path: Path) -> dict[str, Tensor]:
    """torchvision ``VisionTransformer`` state dict from a JAX ``.npz`` or a timm file."""
    if path.suffix == ".npz":
        with np.load(path) as arrays:
            return from_jax({key: arrays[key] for key in arrays.files})
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ValueError(f"{path.name}: reading .safetensors needs the safetensors package; "
                             "install it or use the .npz / pytorch_model.bin file") from None
        return from_timm(load_file(str(path)))
    return from_timm(torch.load(path, map_location="cpu", weights_only=True))


def from_timm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename timm ``VisionTransformer`` keys to torchvision's (the tensors keep their layout)."""
    out: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        for pattern, target in _TIMM_RENAMES:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, target, key)] = value
                break
        else:
            unknown.append(key)
    if "class_token" not in out:
        raise ValueError("not a timm ViT state dict: no 'cls_token'")
    if unknown:
        raise ValueError(f"timm ViT state dict holds tensors without a torchvision place: "
                         f"{sorted(unknown)[:8]}")
    return out


def from_jax(arrays: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
    """Convert a flattened JAX ViT checkpoint (keys joined by ``/``) to torchvision's layout."""
    prefix = "opt/target/" if "opt/target/embedding/kernel" in arrays else ""
    if f"{prefix}embedding/kernel" not in arrays:
        raise ValueError("not a JAX ViT checkpoint: no 'embedding/kernel' array")
    left = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}

    def take(key: str) -> Tensor:
        if key not in left:
            raise ValueError(f"JAX ViT checkpoint lacks the array {prefix + key!r}")
        return torch.from_numpy(np.array(left.pop(key)))

    def dense(key: str) -> Tensor:  # (in, out) -> (out, in)
        return take(key).T.contiguous()

    out = {
        "class_token": take("cls"),
        "conv_proj.weight": take("embedding/kernel").permute(3, 2, 0, 1).contiguous(),
        "conv_proj.bias": take("embedding/bias"),
        "encoder.pos_embedding": take("Transformer/posembed_input/pos_embedding"),
        "encoder.ln.weight": take("Transformer/encoder_norm/scale"),
        "encoder.ln.bias": take("Transformer/encoder_norm/bias"),
    }
    if "head/kernel" in left:
        out["heads.head.weight"] = dense("head/kernel")
        out["heads.head.bias"] = take("head/bias")
    i = 0
    while f"Transformer/encoderblock_{i}/LayerNorm_0/scale" in left:
        src, dst = f"Transformer/encoderblock_{i}/", _LAYER.format(i)
        mha = src + "MultiHeadDotProductAttention_1/"
        # (hidden, heads, head_dim) -> (heads * head_dim, hidden), stacked query, key, value
        qkv = [take(f"{mha}{n}/kernel").flatten(1).T for n in ("query", "key", "value")]
        out[dst + "self_attention.in_proj_weight"] = torch.cat(qkv).contiguous()
        out[dst + "self_attention.in_proj_bias"] = torch.cat(
            [take(f"{mha}{n}/bias").flatten() for n in ("query", "key", "value")])
        # (heads, head_dim, hidden) -> (hidden, heads * head_dim)
        out[dst + "self_attention.out_proj.weight"] = take(mha + "out/kernel").flatten(0, 1).T \
            .contiguous()
        out[dst + "self_attention.out_proj.bias"] = take(mha + "out/bias")
        for jax_norm, tv_norm in (("LayerNorm_0", "ln_1"), ("LayerNorm_2", "ln_2")):
            out[f"{dst}{tv_norm}.weight"] = take(f"{src}{jax_norm}/scale")
            out[f"{dst}{tv_norm}.bias"] = take(f"{src}{jax_norm}/bias")
        for dense_i, linear in ((0, "mlp.0"), (1, "mlp.3")):
            out[f"{dst}{linear}.weight"] = dense(f"{src}MlpBlock_3/Dense_{dense_i}/kernel")
            out[f"{dst}{linear}.bias"] = take(f"{src}MlpBlock_3/Dense_{dense_i}/bias")
        i += 1
    if left:
        raise ValueError(f"JAX ViT checkpoint holds arrays without a torchvision place: "
                         f"{sorted(left)[:8]}")
    return out
