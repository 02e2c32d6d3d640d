"""Default image transforms (PIL image in, float CxHxW tensor out).

Office-31 / Office-Home / VisDA-2017 / DomainNet follow the released code (REFERENCE 1.5b):
train = Resize((256, 256)), then a 224 crop of kind `crop` — ``random_resized_crop``
(RandomResizedCrop: CDAN+E on webcam/dslr, MCD, SSRT), ``random_crop`` (RandomCrop: GVB-GD,
CDAN+E on the other domains) or ``center_crop`` (CenterCrop: MCD on VisDA-2017, mcd/mcd.sh 28
``--train-resizing cen.crop``); the method chooses (`Method.train_crop`) — then
RandomHorizontalFlip and ImageNet normalisation; eval = Resize((256, 256)), CenterCrop(224),
same normalisation.
Digits (digits-mini, MNIST, USPS, SVHN): 32x32 RGB scaled to [-1, 1], no augmentation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DIGIT_SIZE = 32

Transform = Callable[[object], torch.Tensor]


def uint8_to_unit_range(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float32 N x 3 x H x W in [-1, 1] (x / 127.5 - 1)."""
    t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return t.div_(127.5).sub_(1.0).contiguous()


def digits() -> Transform:
    """PIL -> 3 x 32 x 32 in [-1, 1] (same values as `uint8_to_unit_range`)."""
    from torchvision import transforms as T

    return T.Compose([T.Lambda(lambda im: im.convert("RGB")), T.Resize((DIGIT_SIZE, DIGIT_SIZE)),
                      T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)])


CROPS = ("random_resized_crop", "random_crop", "center_crop")


def imagenet_train(resize: int = 256, crop: int = 224,
                   kind: str = "random_resized_crop") -> Transform:
    """Training transform with a crop of `kind` (one of `CROPS`)."""
    from torchvision import transforms as T

    crops = {"random_resized_crop": T.RandomResizedCrop, "random_crop": T.RandomCrop,
             "center_crop": T.CenterCrop}
    if kind not in crops:
        raise ValueError(f"unknown training crop {kind!r}; allowed: {', '.join(CROPS)}")
    return T.Compose([T.Resize((resize, resize)), crops[kind](crop),
                      T.RandomHorizontalFlip(), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def imagenet_eval(resize: int = 256, crop: int = 224) -> Transform:
    from torchvision import transforms as T

    return T.Compose([T.Resize((resize, resize)), T.CenterCrop(crop), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
