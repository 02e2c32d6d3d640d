"""Network pieces shared by the UDA methods: the released classifier head, the forwards of a
source/target batch and CDAN's multilinear maps (REFERENCE 1.4-1.5b).

The released CDAN/GVB network is backbone -> bottleneck (Linear, 256-d) -> classifier (Linear).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ghuda.methods.base import Batch
from ghuda.models.heads import init_linear


class ClassifierHead(nn.Module):
    """Optional Linear bottleneck followed by a Linear classifier (the released ResNetFc).

    ``bottleneck_dim = 0`` classifies the backbone features directly.
    """

    def __init__(self, in_dim: int, num_classes: int, bottleneck_dim: int = 256,
                 init: str = "kaiming") -> None:
        super().__init__()
        if bottleneck_dim < 0:
            raise ValueError(f"bottleneck_dim must be >= 0, got {bottleneck_dim}")
        self.bottleneck = nn.Linear(in_dim, bottleneck_dim) if bottleneck_dim else None
        self.out_dim = bottleneck_dim or in_dim
        self.fc = nn.Linear(self.out_dim, num_classes)
        init_linear(self, init)

    def embed(self, features: Tensor) -> Tensor:
        """Bottleneck features (the input of the classifier and of the discriminators)."""
        return features if self.bottleneck is None else self.bottleneck(features)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        z = self.embed(features)
        return z, self.fc(z)

    def groups(self) -> dict[str, list[nn.Parameter]]:
        """{"bottleneck": ..., "classifier": ...}; no bottleneck group when there is none."""
        out = {} if self.bottleneck is None else {"bottleneck": list(self.bottleneck.parameters())}
        out["classifier"] = list(self.fc.parameters())
        return out


def params_of(*modules: nn.Module) -> list[nn.Parameter]:
    """Trainable parameters of `modules`, in order (one parameter group)."""
    return [p for m in modules for p in m.parameters() if p.requires_grad]


def joint_forward(backbone: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """Backbone features of source and target from one forward pass of the joint batch."""
    n = batch.x_src.shape[0]
    features = backbone(torch.cat((batch.x_src, batch.x_tgt), dim=0))
    return features[:n], features[n:]


def separate_forward(backbone: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """Source and target features from two forward passes (per-domain batch-norm statistics),
    as the released CDAN-family script does (cdan/train_image.py ~202-203)."""
    return backbone(batch.x_src), backbone(batch.x_tgt)


class RandomizedMultilinearMap(nn.Module):
    """CDAN's randomized multilinear map ``(f R_f) * (g R_g) / sqrt(d)`` (Long et al. 2018).

    `R_f` (feature_dim x d) and `R_g` (num_classes x d) are fixed standard-normal matrices,
    kept as buffers so checkpoints carry them; ``E[<T(f,g), T(f',g')>] = <f,f'><g,g'>``, the
    inner product of the full outer products f (x) g. Released: d = 1024.
    """

    def __init__(self, feature_dim: int, num_classes: int, dim: int = 1024) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"randomized multilinear map: dim must be >= 1, got {dim}")
        self.dim = dim
        self.register_buffer("r_features", torch.randn(feature_dim, dim))
        self.register_buffer("r_classes", torch.randn(num_classes, dim))

    def forward(self, features: Tensor, probs: Tensor) -> Tensor:
        return (features @ self.r_features) * (probs @ self.r_classes) / math.sqrt(self.dim)


def multilinear_map(features: Tensor, probs: Tensor) -> Tensor:
    """The full multilinear map: the flattened outer product ``g (x) f`` (CDAN, no random)."""
    return torch.bmm(probs.unsqueeze(2), features.unsqueeze(1)).flatten(1)
