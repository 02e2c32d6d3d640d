"""SSD detectors from torchvision's detection toolkit.

`torchvision.models.detection.SSD` with a custom backbone returning feature maps and a
`DefaultBoxGenerator` for the anchors; its training forward returns exactly the two multibox
losses {"bbox_regression", "classification"} (hard negative mining 3:1, both normalised by the
number of positive anchors), its eval forward decodes boxes and applies per-class NMS
(`torchvision.ops.batched_nms`).

- ``small_cnn`` (det_mini): a 5-conv CNN with BatchNorm giving 16x16, 8x8 and 4x4 maps of a
  64 px input, anchors sized for 14-30 px glyphs.
- ``resnet50`` (PASCAL VOC, DSSD320-sized input): torchvision's ResNet-50 (ImageNet weights
  through `ghuda.models.torchvision_backbones`' cache), maps from layer2 / layer3 / layer4 plus
  three extra stride-2 blocks (40, 20, 10, 5, 3, 1 at 320 px), SSD's anchor layout. Plain SSD
  heads: DSSD's deconvolution and prediction modules are not implemented (FIDELITY).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD

BACKBONES = ("small_cnn", "resnet50")
# smallest input giving every feature map at least one cell (resnet50: the last extra block
# needs a 3x3 input, i.e. a layer4 map of at least 9 cells: 257 px)
MIN_IMAGE_SIZE = {"small_cnn": 32, "resnet50": 257}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Three feature maps at strides 4, 8 and 16."""

    def __init__(self) -> None:
        super().__init__()
        self.out_channels = [64, 96, 128]
        self.stage1 = nn.Sequential(_conv(3, 32, 2), _conv(32, 48, 2), _conv(48, 64))
        self.stage2 = nn.Sequential(_conv(64, 96, 2), _conv(96, 96))
        self.stage3 = _conv(96, 128, 2)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        f1 = self.stage1(x)
        f2 = self.stage2(f1)
        return OrderedDict([("0", f1), ("1", f2), ("2", self.stage3(f2))])


def _extra(cin: int, mid: int, cout: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, mid, 1), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, cout, 3, 2, padding), nn.ReLU(inplace=True))


class ResNetSSDBackbone(nn.Module):
    """ResNet-50 layer2..layer4 maps plus SSD-style extra layers (the shared neck)."""

    def __init__(self, pretrained: bool) -> None:
        super().__init__()
        from ghuda.models.torchvision_backbones import build

        net = build("resnet50", pretrained=pretrained).net
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1)
        self.layer2, self.layer3, self.layer4 = net.layer2, net.layer3, net.layer4
        self.extras = nn.ModuleList([_extra(2048, 256, 512, 1), _extra(512, 128, 256, 1),
                                     _extra(256, 128, 256, 0)])
        self.out_channels = [512, 1024, 2048, 512, 256, 256]

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        maps = [self.layer2(self.stem(x))]
        maps.append(self.layer3(maps[-1]))
        maps.append(self.layer4(maps[-1]))
        for block in self.extras:
            maps.append(block(maps[-1]))
        return OrderedDict((str(i), m) for i, m in enumerate(maps))


def build_ssd(backbone: str, num_classes: int, image_size: int, pretrained: bool) -> SSD:
    """An SSD for `num_classes` object classes (+ background) on square `image_size` inputs."""
    if backbone == "small_cnn":
        anchors = DefaultBoxGenerator([[2], [2], [2]], scales=[0.2, 0.32, 0.5, 0.7])
        return SSD(SmallCNN(), anchors, (image_size, image_size), num_classes + 1,
                   image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25],
                   detections_per_img=100, topk_candidates=200)
    # SSD300's VOC anchor layout (torchvision's ssd300_vgg16), on our six ResNet maps
    anchors = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                                  scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05])
    return SSD(ResNetSSDBackbone(pretrained), anchors, (image_size, image_size), num_classes + 1,
               image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD, detections_per_img=200,
               topk_candidates=400)
