"""TIRG "last conv" (Vo et al., CVPR 2019) as the released retrieval script builds it.

- image encoder: a conv trunk to the last conv map, global average pooling, then
  fc = Linear(C -> embed_dim); ResNet-18 (C = 512) as released, or `SmallCNN` (C = 64) for
  css_mini;
- text encoder: vocabulary of the training modification texts (lower-case, punctuation
  removed, whitespace split; id 0 is '<UNK>', the id of unknown words), Embedding(vocab,
  embed_dim), a one-layer GRU (hidden = embed_dim; named LSTM in the release), the output at
  each text's last token, Dropout(0.1) + Linear(embed_dim, embed_dim);
- composition on the last conv map x [C, H, W]: z = cat(x, text tiled over H x W); branches
  `mod` and `gate`: BatchNorm2d(C+E) -> Conv3x3(C+E -> C+E) -> ReLU -> Conv3x3(C+E -> C);
  x' = a[0] * sigmoid(gate(z)) * x + a[1] * mod(z), a = Parameter([1, 10, 1, 1]); then the
  image encoder's pooling and fc;
- normalisation shared by query and target: f = s * x / ||x||, learnable s (init 4).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ghuda.models.torchvision_backbones import imagenet_weights

_STRIP = str.maketrans("", "", string.punctuation)


def tokenize(text: str) -> list[str]:
    """Lower-case, remove punctuation, split on whitespace (the released vocabulary's rule)."""
    return str(text).lower().translate(_STRIP).split()


class Vocab:
    """Word ids in order of first appearance in the training texts; '<UNK>' = 0."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.ids = {"<UNK>": 0}
        for text in texts:
            for word in tokenize(text):
                self.ids.setdefault(word, len(self.ids))

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """(ids [B, L] zero-padded, lengths [B]); an empty text is the single token <UNK>."""
        seqs = [[self.ids.get(w, 0) for w in tokenize(t)] or [0] for t in texts]
        ids = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = torch.tensor(s)
        return ids, torch.tensor([len(s) for s in seqs])


class TextEncoder(nn.Module):
    """Embedding -> one-layer GRU -> output at the last token -> Dropout(0.1) + Linear."""

    def __init__(self, vocab: Vocab, dim: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.embedding = nn.Embedding(len(vocab), dim)
        self.gru = nn.GRU(dim, dim, batch_first=True)
        self.fc = nn.Sequential(nn.Dropout(0.1), nn.Linear(dim, dim))

    def forward(self, texts: Sequence[str]) -> Tensor:
        ids, lengths = self.vocab.encode(texts)
        device = self.embedding.weight.device
        out, _ = self.gru(self.embedding(ids.to(device)))
        last = out[torch.arange(len(texts), device=device), lengths.to(device) - 1]
        return self.fc(last)


def _block(cin: int, cout: int, pool: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True), nn.MaxPool2d(pool)]


class SmallCNN(nn.Sequential):
    """css_mini's trunk: three conv3x3-BN-ReLU-maxpool blocks, 36x36 -> 3x3 (one position per
    grid cell), then conv3x3-BN without ReLU: a 64-channel map whose zero padding tells the
    cells apart and whose pooled features have no large common component at initialisation
    (with a final ReLU every image starts at nearly the same feature and training collapsed
    to log 2)."""

    channels = 64

    def __init__(self) -> None:
        super().__init__(*_block(3, 16, 2), *_block(16, 32, 2), *_block(32, 64, 3),
                         nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64))


def resnet18_trunk(pretrained: bool) -> nn.Sequential:
    """torchvision ResNet-18 up to layer4 (C = 512), ImageNet IMAGENET1K_V1 weights when
    `pretrained` (read from torchvision's cache, downloaded unless GHUDA_OFFLINE=1)."""
    import torchvision.models as tvm

    net = tvm.resnet18(weights=None)
    if pretrained:
        net.load_state_dict(imagenet_weights("resnet18"))
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2,
                          net.layer3, net.layer4)
    trunk.channels = 512
    return trunk


class ImageEncoder(nn.Module):
    """Conv trunk, then global average pooling and fc = Linear(C -> embed_dim)."""

    def __init__(self, trunk: nn.Module, dim: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.fc = nn.Linear(trunk.channels, dim)

    def head(self, conv_map: Tensor) -> Tensor:
        return self.fc(conv_map.mean(dim=(2, 3)))

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.trunk(images))


def _branch(c: int, e: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(c + e), nn.Conv2d(c + e, c + e, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(c + e, c, 3, padding=1))


class Compose(nn.Module):
    """TIRG's last-conv composition: x' = a[0] sigmoid(gate(z)) x + a[1] mod(z)."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor([1.0, 10.0, 1.0, 1.0]))
        self.mod = _branch(channels, dim)
        self.gate = _branch(channels, dim)

    def forward(self, conv_map: Tensor, text: Tensor) -> Tensor:
        tiled = text[:, :, None, None].expand(-1, -1, *conv_map.shape[2:])
        z = torch.cat([conv_map, tiled], dim=1)
        return self.a[0] * torch.sigmoid(self.gate(z)) * conv_map + self.a[1] * self.mod(z)


class Normalization(nn.Module):
    """f = s * x / ||x|| with a learnable scalar s (init 4.0)."""

    def __init__(self, scale: float = 4.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x / x.norm(dim=1, keepdim=True)
