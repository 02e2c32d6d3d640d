"""Backbones: shapes, the ViT interface, torchvision builds, the offline-weights error."""

from __future__ import annotations

import pytest
import torch

from ghuda import models
from ghuda.engine.cli import EXIT_WEIGHTS, main
from ghuda.models import torchvision_backbones as tvb


@pytest.mark.parametrize("input_norm", ["gray", "standardize", "none"])
def test_digit_cnn_features(input_norm):
    net = models.build_backbone("digit_cnn", input_norm=input_norm, feature_dim=48)
    out = net(torch.randn(5, 3, 32, 32))
    assert out.shape == (5, 48)
    assert net.feature_dim == 48
    assert net.kind == "cnn"
    assert (out >= 0).all()  # ends in a ReLU


def test_digit_cnn_gray_ignores_colour_and_contrast():
    net = models.build_backbone("digit_cnn").eval()
    x = torch.rand(2, 1, 32, 32).expand(-1, 3, -1, -1)
    y = 0.3 * x + 0.1  # same picture, other brightness / contrast
    assert torch.allclose(net(x), net(y), rtol=1e-3, atol=1e-3)  # up to the eps of the std


@pytest.mark.parametrize("stem", ["conv", "patch"])
def test_tiny_vit_interface(stem):
    net = models.build_backbone("tiny_vit", dim=32, depth=2, heads=2, stem=stem).eval()
    x = torch.randn(3, 3, 32, 32)
    tokens = net.embed(x)
    assert tokens.shape == (3, 1 + 16, 32)
    assert len(net.blocks) == 2
    assert torch.equal(net(x), net.pool(net.blocks(tokens)))
    assert net.kind == "vit"
    assert net.feature_dim == 32


def test_unknown_backbone_and_options():
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        models.build_backbone("vgg")
    with pytest.raises(ValueError, match=r"model\.options for 'digit_cnn'"):
        models.build_backbone("digit_cnn", depth=3)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        models.build_backbone("tiny_vit", pretrained=True)
    with pytest.raises(ValueError, match="input_norm"):
        models.build_backbone("digit_cnn", input_norm="sepia")
    with pytest.raises(ValueError, match="power-of-two patch_size"):
        models.build_backbone("tiny_vit", patch_size=3, image_size=30)
    with pytest.raises(ValueError, match="stem"):
        models.build_backbone("tiny_vit", stem="hourglass")


@pytest.mark.parametrize(("name", "dim", "size"), [("resnet50", 2048, 64),
                                                   ("vit_b16", 768, 224)])
def test_torchvision_backbones_without_weights(name, dim, size):
    net = models.build_backbone(name, pretrained=False).eval()
    with torch.inference_mode():
        out = net(torch.randn(1, 3, size, size))
    assert out.shape == (1, dim)
    assert net.feature_dim == dim
    if name == "vit_b16":
        assert len(net.blocks) == 12
        assert net.embed(torch.randn(1, 3, 224, 224)).shape == (
            1, 197, 768)


def test_missing_weights_offline_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(tvb.OFFLINE_ENV, "1")
    path, url = tvb.weights_file("resnet50")
    assert path == tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"
    with pytest.raises(tvb.PretrainedWeightsMissing) as info:
        models.build_backbone("resnet50", pretrained=True)
    message = str(info.value)
    assert str(path) in message
    assert url in message
    assert "pretrained: false" in message


def test_corrupt_or_wrong_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, _ = tvb.weights_file("resnet50")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with pytest.raises(tvb.PretrainedWeightsMissing, match="cannot read ImageNet weights"):
        models.build_backbone("resnet50", pretrained=True)
    torch.save({"fc.weight": torch.zeros(1)}, path)
    with pytest.raises(tvb.PretrainedWeightsMissing, match="do not fit"):
        models.build_backbone("resnet50", pretrained=True)


def test_cached_weights_are_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(tvb.OFFLINE_ENV, "1")
    import torchvision

    reference = torchvision.models.resnet50(weights=None)
    path, _ = tvb.weights_file("resnet50")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    net = models.build_backbone("resnet50", pretrained=True)
    assert torch.equal(net.net.conv1.weight, reference.conv1.weight)


def test_cli_exit_status_for_missing_weights(tmp_path, monkeypatch, capsys, digits_mini_root):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(tvb.OFFLINE_ENV, "1")
    rc = main(["--set", f"dataset.root={digits_mini_root}", "--set", "model.backbone=resnet50",
               "--set", "model.pretrained=true", "--out", str(tmp_path / "run")])
    assert rc == EXIT_WEIGHTS
    assert "resnet50-0676ba61.pth" in capsys.readouterr().err
