"""The retrieval losses and metric: soft-triplet loss, the noised query, Recall@K.

Facts of the released script (Retrieval/maincss_convharmonic.py, TIRG's soft-triplet loss):

- the B query and B target features are stacked (2B points, labels [0..B-1, 0..B-1]); for
  each anchor i the candidate triplets (i, j, k) have j != i of the same label (exactly one)
  and k of a different label; they are shuffled and 3 per anchor are kept;
- loss = mean over triplets of log(1 + exp(d_ij - d_ik)), d the squared Euclidean distance
  clamped at >= 0;
- the released hand-written backward omits the factor 2 of d(||a - b||^2): its gradient is
  exactly half the true gradient of that loss value (`triplet_grad: released`, the default);
- the noised query is clip(img + eps * N(0, 1), 0, 1) with `img` already ImageNet-normalised
  (`noise_space: normalized`, the default).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ghuda.data.transforms import IMAGENET_MEAN, IMAGENET_STD

TRIPLET_GRADS = ("released", "exact")
NOISE_SPACES = ("normalized", "pixel")
RECALL_KS = (1, 5, 10, 50, 100)


def imagenet_normalize(pixels: Tensor) -> Tensor:
    """(x - mean) / std per channel of a float [N, 3, H, W] batch in 0..1 (the released
    ToTensor + Normalize)."""
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device, dtype=pixels.dtype)
    std = torch.tensor(IMAGENET_STD, device=pixels.device, dtype=pixels.dtype)
    return (pixels - mean[:, None, None]) / std[:, None, None]


def noised(pixels: Tensor, eps: float, space: str, generator: torch.Generator) -> Tensor:
    """The noised query image, ImageNet-normalised, from a float batch in 0..1.

    ``normalized`` (released): clip(normalize(x) + eps * n, 0, 1) -- the clip also clips the
    normalised image; ``pixel``: normalize(clip(x + eps * n, 0, 1)). n ~ N(0, 1) is drawn from
    `generator`, never the global RNG.
    """
    if space not in NOISE_SPACES:
        raise ValueError(f"noise space {space!r}; allowed: {', '.join(NOISE_SPACES)}")
    noise = torch.randn(pixels.shape, generator=generator, device=generator.device)
    noise = noise.to(device=pixels.device, dtype=pixels.dtype)
    if space == "normalized":
        return (imagenet_normalize(pixels) + eps * noise).clamp(0.0, 1.0)
    return imagenet_normalize((pixels + eps * noise).clamp(0.0, 1.0))


def sample_triplets(batch: int, per_anchor: int, generator: torch.Generator) -> Tensor:
    """Triplets [T, 3] (anchor, positive, negative) over 2 * `batch` stacked points.

    Point i has label i mod `batch`; its positive is the other point of its label; its
    `per_anchor` negatives are a uniform random subset of the 2 * batch - 2 others (the
    released shuffle-and-keep-3; all of them when fewer).
    """
    if batch < 2:
        raise ValueError(f"the soft-triplet loss needs a batch of at least 2, got {batch}")
    n = 2 * batch
    idx = torch.arange(n, device=generator.device)
    scores = torch.rand((n, n), generator=generator, device=generator.device)
    same = (idx[:, None] % batch) == (idx[None, :] % batch)
    scores = scores.masked_fill(same, 2.0)  # above every uniform draw: never chosen
    k = min(per_anchor, n - 2)
    negatives = scores.topk(k, dim=1, largest=False).indices
    anchors = idx[:, None].expand(n, k)
    return torch.stack([anchors, (anchors + batch) % n, negatives], dim=2).reshape(-1, 3)


def soft_triplet_loss(query: Tensor, target: Tensor, triplets: Tensor,
                      grad: str = "released") -> Tensor:
    """Mean of log(1 + exp(d_ap - d_an)) over `triplets` of the stacked [query; target].

    ``grad="released"`` keeps that value but halves its gradient (the released backward);
    ``"exact"`` is plain autograd.
    """
    if grad not in TRIPLET_GRADS:
        raise ValueError(f"triplet gradient {grad!r}; allowed: {', '.join(TRIPLET_GRADS)}")
    points = torch.cat([query, target])
    triplets = triplets.to(points.device)
    a, p, n = points[triplets[:, 0]], points[triplets[:, 1]], points[triplets[:, 2]]
    d_ap = (a - p).pow(2).sum(1).clamp_min(0.0)
    d_an = (a - n).pow(2).sum(1).clamp_min(0.0)
    value = F.softplus(d_ap - d_an).mean()
    if grad == "released":
        return value.detach() + 0.5 * (value - value.detach())
    return value


def recall_at_k(queries: Tensor, gallery: Tensor, gallery_captions: Sequence[str],
                target_captions: Sequence[str], exclude: Sequence[int] | Tensor,
                ks: Sequence[int] = RECALL_KS, chunk: int = 1024) -> dict[int, float]:
    """Recall@K in percent of a retrieval with text feedback (the released protocol).

    Cosine similarity of L2-normalised query and gallery features; gallery item `exclude[q]`
    (the query's own source image; -1 for none) gets -inf and never counts as a hit; query q
    is a hit at K when any of its top-K gallery items has caption `target_captions[q]`.
    Similarity ties are broken by the lower gallery index (stable sort).
    """
    if len(queries) != len(target_captions) or len(queries) != len(exclude):
        raise ValueError("queries, target_captions and exclude must have the same length")
    if len(gallery) != len(gallery_captions):
        raise ValueError("gallery and gallery_captions must have the same length")
    if not len(queries) or not len(gallery):
        raise ValueError("Recall@K needs at least one query and one gallery item")
    ids: dict[str, int] = {}
    gallery_ids = torch.tensor([ids.setdefault(c, len(ids)) for c in gallery_captions])
    target_ids = torch.tensor([ids.get(c, -1) for c in target_captions])
    exclude = torch.as_tensor(exclude, dtype=torch.long)
    q = F.normalize(queries.float(), dim=1)
    g = F.normalize(gallery.float(), dim=1)
    top = min(max(ks), len(gallery))
    hits_at = torch.zeros(top)
    for start in range(0, len(q), chunk):
        stop = min(start + chunk, len(q))
        sims = (q[start:stop] @ g.T).cpu()
        rows = torch.arange(stop - start)
        skip = exclude[start:stop]
        sims[rows[skip >= 0], skip[skip >= 0]] = -torch.inf
        order = torch.sort(sims, dim=1, descending=True, stable=True).indices[:, :top]
        hit = gallery_ids[order] == target_ids[start:stop, None]
        hit &= order != skip[:, None]
        hits_at += hit.int().cummax(dim=1).values.sum(0).float()
    return {k: 100.0 * float(hits_at[min(k, top) - 1]) / len(q) for k in ks}
