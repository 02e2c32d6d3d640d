"""vit_b16 weights: AugReg from a JAX .npz or a timm file, converted to torchvision's layout.

The exporters below are the inverse maps, written from the layout facts; `_jax_forward` runs a
ViT directly on the JAX arrays with JAX semantics (NHWC conv, ``x @ kernel``, attention
einsums), so a transpose that the converter and the exporter got wrong together still fails.
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch
from torch import Tensor
from torchvision.models.vision_transformer import VisionTransformer

from ghuda import models
from ghuda.config import ConfigError, load
from ghuda.engine.cli import EXIT_WEIGHTS, main
from ghuda.models import torchvision_backbones as tvb
from ghuda.models import vit_weights

SMALL = {"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 4, "hidden_dim": 32,
         "mlp_dim": 64, "num_classes": 10}
LAYER = "encoder.layers.encoder_layer_{}."


def _small_vit(seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    net = VisionTransformer(**SMALL)
    with torch.no_grad():  # torchvision zero-initialises some tensors: make every one distinct
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net.eval()


def _to_jax(state: dict[str, Tensor], heads: int) -> dict[str, np.ndarray]:
    """torchvision state dict -> flattened JAX ViT checkpoint."""
    def a(t: Tensor) -> np.ndarray:
        return t.detach().numpy().copy()

    hidden = state["class_token"].shape[-1]
    out = {"cls": a(state["class_token"]),
           "embedding/kernel": a(state["conv_proj.weight"].permute(2, 3, 1, 0)),
           "embedding/bias": a(state["conv_proj.bias"]),
           "Transformer/posembed_input/pos_embedding": a(state["encoder.pos_embedding"]),
           "Transformer/encoder_norm/scale": a(state["encoder.ln.weight"]),
           "Transformer/encoder_norm/bias": a(state["encoder.ln.bias"]),
           "head/kernel": a(state["heads.head.weight"].T),
           "head/bias": a(state["heads.head.bias"])}
    i = 0
    while LAYER.format(i) + "ln_1.weight" in state:
        src, dst = LAYER.format(i), f"Transformer/encoderblock_{i}/"
        mha = dst + "MultiHeadDotProductAttention_1/"
        weights = state[src + "self_attention.in_proj_weight"].chunk(3)
        biases = state[src + "self_attention.in_proj_bias"].chunk(3)
        for name, w, b in zip(("query", "key", "value"), weights, biases, strict=True):
            out[f"{mha}{name}/kernel"] = a(w.T.reshape(hidden, heads, -1))
            out[f"{mha}{name}/bias"] = a(b.reshape(heads, -1))
        out[mha + "out/kernel"] = a(state[src + "self_attention.out_proj.weight"].T
                                    .reshape(heads, -1, hidden))
        out[mha + "out/bias"] = a(state[src + "self_attention.out_proj.bias"])
        for jax_norm, tv_norm in (("LayerNorm_0", "ln_1"), ("LayerNorm_2", "ln_2")):
            out[f"{dst}{jax_norm}/scale"] = a(state[f"{src}{tv_norm}.weight"])
            out[f"{dst}{jax_norm}/bias"] = a(state[f"{src}{tv_norm}.bias"])
        for j, linear in ((0, "mlp.0"), (1, "mlp.3")):
            out[f"{dst}MlpBlock_3/Dense_{j}/kernel"] = a(state[f"{src}{linear}.weight"].T)
            out[f"{dst}MlpBlock_3/Dense_{j}/bias"] = a(state[f"{src}{linear}.bias"])
        i += 1
    return out


def _to_timm(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """torchvision state dict -> timm ``VisionTransformer`` keys."""
    names = {"class_token": "cls_token", "encoder.pos_embedding": "pos_embed",
             "conv_proj": "patch_embed.proj", "encoder.ln": "norm", "heads.head": "head"}
    block = {"ln_1": "norm1", "self_attention.in_proj_weight": "attn.qkv.weight",
             "self_attention.in_proj_bias": "attn.qkv.bias", "self_attention.out_proj": "attn.proj",
             "ln_2": "norm2", "mlp.0": "mlp.fc1", "mlp.3": "mlp.fc2"}
    out = {}
    for key, value in state.items():
        if key.startswith("encoder.layers."):
            i, rest = key.removeprefix("encoder.layers.encoder_layer_").split(".", 1)
            prefix = next(p for p in block if rest.startswith(p))
            out[f"blocks.{i}.{block[prefix]}{rest[len(prefix):]}"] = value.clone()
        else:
            prefix = next(p for p in names if key.startswith(p))
            out[names[prefix] + key[len(prefix):]] = value.clone()
    return out


def _jax_forward(w: dict[str, np.ndarray], x: Tensor) -> Tensor:
    """Logits of the JAX ViT with arrays `w` (exact GELU, as torchvision and timm use)."""
    t = {k: torch.from_numpy(v) for k, v in w.items()}
    kh, kw, _, hidden = t["embedding/kernel"].shape
    b, c, h, wd = x.shape
    nhwc = x.permute(0, 2, 3, 1).reshape(b, h // kh, kh, wd // kw, kw, c)
    tokens = torch.einsum("byhxwc,hwco->byxo", nhwc, t["embedding/kernel"])
    tokens = tokens.reshape(b, -1, hidden) + t["embedding/bias"]
    tokens = torch.cat([t["cls"].expand(b, -1, -1), tokens], 1)
    tokens = tokens + t["Transformer/posembed_input/pos_embedding"]

    def norm(y: Tensor, key: str) -> Tensor:
        return torch.nn.functional.layer_norm(y, (hidden,), t[key + "/scale"], t[key + "/bias"],
                                              eps=1e-6)

    i = 0
    while f"Transformer/encoderblock_{i}/LayerNorm_0/scale" in t:
        blk = f"Transformer/encoderblock_{i}/"
        mha = blk + "MultiHeadDotProductAttention_1/"
        y = norm(tokens, blk + "LayerNorm_0")
        q, k, v = (torch.einsum("btd,dhk->bthk", y, t[f"{mha}{n}/kernel"]) + t[f"{mha}{n}/bias"]
                   for n in ("query", "key", "value"))
        att = torch.einsum("bqhk,bshk->bhqs", q, k).div(q.shape[-1] ** 0.5).softmax(-1)
        o = torch.einsum("bhqs,bshk->bqhk", att, v)
        tokens = tokens + torch.einsum("bqhk,hkd->bqd", o, t[mha + "out/kernel"]) \
            + t[mha + "out/bias"]
        y = norm(tokens, blk + "LayerNorm_2")
        mlp = blk + "MlpBlock_3/"
        y = torch.nn.functional.gelu(y @ t[mlp + "Dense_0/kernel"] + t[mlp + "Dense_0/bias"])
        tokens = tokens + y @ t[mlp + "Dense_1/kernel"] + t[mlp + "Dense_1/bias"]
        i += 1
    cls = norm(tokens, "Transformer/encoder_norm")[:, 0]
    return cls @ t["head/kernel"] + t["head/bias"]


def _assert_same_state(got: dict[str, Tensor], want: dict[str, Tensor]) -> None:
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].shape == value.shape, key
        assert torch.equal(got[key], value), key


def test_jax_layout_runs_like_the_torchvision_model():
    """The exporter (so the converter, its inverse) agrees with JAX semantics."""
    ref = _small_vit()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = ref(x)
        got = _jax_forward(_to_jax(ref.state_dict(), SMALL["num_heads"]), x)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fmt", ["npz", "bin", "safetensors"])
def test_file_round_trip_is_exact(tmp_path, fmt):
    ref = _small_vit()
    state = ref.state_dict()
    path = tmp_path / f"weights.{fmt}"
    if fmt == "npz":
        np.savez(path, **_to_jax(state, SMALL["num_heads"]))
    elif fmt == "bin":
        torch.save(_to_timm(state), path)
    else:
        save_file = pytest.importorskip("safetensors.torch").save_file
        save_file(_to_timm(state), str(path))
    converted = vit_weights.read_weights(path)
    _assert_same_state(converted, state)
    net = VisionTransformer(**SMALL).eval()
    net.load_state_dict(converted)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))


def test_safetensors_without_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ValueError, match="needs the safetensors package"):
        vit_weights.read_weights(tmp_path / "model.safetensors")


def test_full_size_vit_b16_layout_round_trip():
    import torchvision

    state = torchvision.models.vit_b_16(weights=None).state_dict()
    _assert_same_state(vit_weights.from_jax(_to_jax(state, 12)), state)
    _assert_same_state(vit_weights.from_timm(_to_timm(state)), state)


def test_jax_prefix_and_bad_layouts():
    arrays = _to_jax(_small_vit().state_dict(), SMALL["num_heads"])
    prefixed = {"opt/target/" + k: v for k, v in arrays.items()}
    _assert_same_state(vit_weights.from_jax(prefixed), vit_weights.from_jax(arrays))
    with pytest.raises(ValueError, match=r"without a torchvision place.*pre_logits"):
        vit_weights.from_jax({**arrays, "pre_logits/kernel": np.zeros((32, 32))})
    del arrays["Transformer/encoderblock_1/MlpBlock_3/Dense_1/bias"]
    with pytest.raises(ValueError, match=r"lacks the array.*encoderblock_1/MlpBlock_3/Dense_1"):
        vit_weights.from_jax(arrays)
    with pytest.raises(ValueError, match="not a JAX ViT"):
        vit_weights.from_jax({"cls": np.zeros((1, 1, 4))})
    with pytest.raises(ValueError, match="no 'cls_token'"):
        vit_weights.from_timm({"fc.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"without a torchvision place.*blocks\.0\.ls1\.gamma"):
        vit_weights.from_timm({"cls_token": torch.zeros(1), "blocks.0.ls1.gamma": torch.zeros(1)})


@pytest.fixture
def small_vit_b16(monkeypatch):
    """Make torchvision's vit_b_16 builder build the small ViT (same class, same keys)."""
    import torchvision.models as tvm

    monkeypatch.setattr(tvm, "vit_b_16",
                        lambda weights=None, **kw: VisionTransformer(**SMALL, **kw))


@pytest.mark.parametrize("fmt", ["npz", "bin"])
def test_build_backbone_loads_augreg(tmp_path, monkeypatch, small_vit_b16, fmt):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(tvb.OFFLINE_ENV, "1")
    ref = _small_vit(seed=1)
    state = ref.state_dict()
    if fmt == "npz":  # the default place, default option value
        path = tvb.augreg_file()
        assert path == tmp_path / "hub" / "checkpoints" / vit_weights.AUGREG_NPZ
        path.parent.mkdir(parents=True)
        np.savez(path, **_to_jax(state, SMALL["num_heads"]))
        options = {}
    else:
        path = tmp_path / "pytorch_model.bin"
        torch.save(_to_timm(state), path)
        options = {"weights": "augreg_in21k_ft_in1k", "weights_file": str(path)}
    net = models.build_backbone("vit_b16", pretrained=True, **options).eval()
    _assert_same_state(net.vit.state_dict(),
                       {k: v for k, v in state.items() if not k.startswith("heads.")})
    ref.heads = torch.nn.Identity()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))


def test_missing_augreg_names_file_url_and_place(tmp_path, monkeypatch, small_vit_b16):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(tvb.OFFLINE_ENV, "1")
    with pytest.raises(tvb.PretrainedWeightsMissing) as info:
        models.build_backbone("vit_b16", pretrained=True)
    message = str(info.value)
    assert str(tmp_path / "hub" / "checkpoints" / vit_weights.AUGREG_NPZ) in message
    assert vit_weights.AUGREG_URL == (
        "https://storage.googleapis.com/vit_models/augreg/B_16-i21k-300ep-lr_0.001-aug_medium1"
        "-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.01-res_224.npz")
    assert vit_weights.AUGREG_URL in message
    assert "GHUDA_OFFLINE=1 is set" in message
    for hint in ("model.options.weights_file", "weights: imagenet1k", "pretrained: false"):
        assert hint in message
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(tvb.PretrainedWeightsMissing) as info:
        models.build_backbone("vit_b16", pretrained=True, weights_file=str(missing))
    assert str(missing) in str(info.value)
    assert vit_weights.AUGREG_URL in str(info.value)


def test_failed_download_is_explained(tmp_path, monkeypatch, small_vit_b16):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(tvb.OFFLINE_ENV, raising=False)

    def fail(url: str, dst: str, **kwargs: object) -> None:
        raise OSError(f"no network for {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    with pytest.raises(tvb.PretrainedWeightsMissing, match="download failed: no network"):
        models.build_backbone("vit_b16", pretrained=True)


def test_unreadable_or_unfitting_augreg_file(tmp_path, small_vit_b16):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(tvb.PretrainedWeightsMissing, match="cannot read AugReg"):
        models.build_backbone("vit_b16", pretrained=True, weights_file=str(bad))
    other = tmp_path / "other.bin"
    torch.save(_to_timm(VisionTransformer(**{**SMALL, "hidden_dim": 16}).state_dict()), other)
    with pytest.raises(tvb.PretrainedWeightsMissing, match=r"AugReg weights .* do not fit"):
        models.build_backbone("vit_b16", pretrained=True, weights_file=str(other))


def test_imagenet1k_keeps_torchvision_weights(tmp_path, monkeypatch, small_vit_b16):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(tvb.OFFLINE_ENV, "1")
    ref = _small_vit(seed=2)
    path, _ = tvb.weights_file("vit_b16")
    path.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), path)
    net = models.build_backbone("vit_b16", pretrained=True, weights="imagenet1k")
    assert torch.equal(net.vit.class_token, ref.class_token)


def test_bad_weight_options():
    with pytest.raises(ValueError, match=re.escape(
            "model.options.weights: unknown value 'in22k'; allowed values: "
            "augreg_in21k_ft_in1k, imagenet1k")):
        models.build_backbone("vit_b16", weights="in22k")
    with pytest.raises(ValueError, match="weights_file: read only with weights: augreg"):
        models.build_backbone("vit_b16", weights="imagenet1k", weights_file="x.npz")
    with pytest.raises(ValueError, match="weights_file: expected a path"):
        models.check_options("vit_b16", {"weights_file": 3})
    with pytest.raises(ValueError, match=r"model.options.weights: backbone 'resnet50' has no"):
        models.build_backbone("resnet50", weights="imagenet1k")
    models.check_options("digit_cnn", {"input_norm": "gray"})


def test_config_rejects_a_bad_weights_value():
    with pytest.raises(ConfigError, match=r"model.options.weights: unknown value 'jft'"):
        load(None, ["model.backbone=vit_b16", "model.options.weights=jft"])
    cfg = load(None, ["model.backbone=vit_b16", "model.options.weights=imagenet1k"])
    assert cfg["model"]["options"] == {"weights": "imagenet1k"}


def test_cli_exit_status_for_missing_augreg(tmp_path, monkeypatch, capsys, digits_mini_root,
                                            small_vit_b16):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(tvb.OFFLINE_ENV, "1")
    rc = main(["--set", f"dataset.root={digits_mini_root}", "--set", "model.backbone=vit_b16",
               "--set", "model.pretrained=true", "--out", str(tmp_path / "run")])
    assert rc == EXIT_WEIGHTS
    assert vit_weights.AUGREG_NPZ in capsys.readouterr().err
