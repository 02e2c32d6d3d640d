"""Recall@K, the soft-triplet loss and the noised query of the retrieval task (issue 16)."""

from __future__ import annotations

import math

import pytest
import torch

from ghuda.extensions.retrieval.losses import (
    imagenet_normalize,
    noised,
    recall_at_k,
    sample_triplets,
    soft_triplet_loss,
)


def _onehots(*rows: int, dim: int = 4) -> torch.Tensor:
    return torch.eye(dim)[list(rows)]


def test_recall_perfect_and_worst():
    gallery = _onehots(0, 1, 2, 3)
    caps = ["a", "b", "c", "d"]
    perfect = recall_at_k(_onehots(1, 2), gallery, caps, ["b", "c"], [-1, -1], ks=(1, 2, 4))
    assert perfect == {1: 100.0, 2: 100.0, 4: 100.0}
    # each query points away from its target: the target is the least similar item
    query = torch.tensor([[0.0, -1.0, 0.5, 0.4], [0.3, 0.2, -1.0, 0.1]])
    worst = recall_at_k(query, gallery, caps, ["b", "c"], [-1, -1], ks=(1, 3, 4))
    assert worst == {1: 0.0, 3: 0.0, 4: 100.0}
    # a target caption absent from the gallery is never a hit
    assert recall_at_k(_onehots(0), gallery, caps, ["z"], [-1], ks=(4,)) == {4: 0.0}


def test_recall_excludes_the_query_source_image():
    gallery = _onehots(0, 1, 2, dim=3)
    caps = ["s", "t", "t2"]
    query = torch.tensor([[1.0, 0.5, 0.2]])  # most similar to its own source (item 0)
    assert recall_at_k(query, gallery, caps, ["t"], [-1], ks=(1,)) == {1: 0.0}
    assert recall_at_k(query, gallery, caps, ["t"], [0], ks=(1,)) == {1: 100.0}
    # the excluded item never counts, even when its caption is the target's and K covers it
    assert recall_at_k(query, gallery, caps, ["s"], [0], ks=(1, 3)) == {1: 0.0, 3: 0.0}


def test_recall_caption_ties_and_similarity_ties():
    gallery = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    caps = ["x", "y", "y", "x"]  # two images per scene: any one of them is a hit
    query = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    got = recall_at_k(query, gallery, caps, ["y", "x", "y"], [-1, -1, -1], ks=(1, 2))
    # query 2's nearest is item 0 ("x"); its second, item 1, is a "y"
    assert got == {1: pytest.approx(200 / 3), 2: 100.0}
    # equal similarities: the lower gallery index ranks first (stable)
    tied = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert recall_at_k(_onehots(0, dim=2), tied, ["p", "q"], ["p"], [-1], ks=(1,)) == {1: 100.0}
    assert recall_at_k(_onehots(0, dim=2), tied, ["p", "q"], ["q"], [-1], ks=(1,)) == {1: 0.0}


def test_recall_is_cosine_and_chunked():
    torch.manual_seed(0)
    query, gallery = torch.randn(37, 5), torch.randn(11, 5)
    caps = [str(i % 4) for i in range(11)]
    targets = [str(i % 3) for i in range(37)]
    exclude = [i % 11 for i in range(37)]
    whole = recall_at_k(query, gallery, caps, targets, exclude, ks=(1, 5, 100))
    scaled = recall_at_k(3 * query, 0.1 * gallery, caps, targets, exclude, ks=(1, 5, 100),
                         chunk=4)
    assert whole == scaled
    assert whole[100] == 100.0


def test_triplet_sampling():
    g = torch.Generator().manual_seed(0)
    t = sample_triplets(4, 3, g)
    assert t.shape == (8 * 3, 3)
    assert torch.equal(t[:, 0].unique(), torch.arange(8))
    assert torch.equal(t[:, 1], (t[:, 0] + 4) % 8)  # the one positive
    assert torch.all(t[:, 2] % 4 != t[:, 0] % 4)  # negatives of another label
    for a in range(8):  # 3 distinct negatives per anchor
        assert len(set(t[t[:, 0] == a, 2].tolist())) == 3
    assert torch.equal(t, sample_triplets(4, 3, torch.Generator().manual_seed(0)))
    assert sample_triplets(2, 3, g).shape == (4 * 2, 3)  # only 2 negatives exist
    with pytest.raises(ValueError, match="at least 2"):
        sample_triplets(1, 3, g)


def test_soft_triplet_value_by_hand_and_released_half_gradient():
    query = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    triplets = torch.tensor([[0, 2, 1], [3, 1, 2]])
    # points: q0 (1,0), q1 (0,2), t0 (1,1), t1 (0,0)
    # (0,2,1): d(q0,t0)=1, d(q0,q1)=5 -> log(1+e^-4); (3,1,2): d(t1,q1)=4, d(t1,t0)=2
    expect = (math.log1p(math.exp(-4.0)) + math.log1p(math.exp(2.0))) / 2
    grads = {}
    for mode in ("released", "exact"):
        q, t = query.clone().requires_grad_(), target.clone().requires_grad_()
        value = soft_triplet_loss(q, t, triplets, grad=mode)
        assert value.item() == pytest.approx(expect, rel=1e-6)
        value.backward()
        grads[mode] = (q.grad, t.grad)
    for released, exact in zip(grads["released"], grads["exact"], strict=True):
        assert torch.allclose(released, 0.5 * exact)
        assert exact.abs().sum() > 0
    # the exact gradient of the anchor q0 by hand: s * (2 (q0 - t0) - 2 (q0 - q1)) / 2
    s = 1 / (1 + math.exp(4.0))
    hand = s * (2 * (query[0] - target[0]) - 2 * (query[0] - query[1])) / 2
    assert torch.allclose(grads["exact"][0][0], hand)
    with pytest.raises(ValueError, match="released, exact"):
        soft_triplet_loss(query, target, triplets, grad="other")


def test_noise_in_both_spaces():
    pixels = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    normal = noised(pixels, 0.3, "normalized", torch.Generator().manual_seed(0))
    noise = torch.randn(pixels.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(normal, (imagenet_normalize(pixels) + 0.3 * noise).clamp(0, 1))
    assert normal.min() >= 0
    assert normal.max() <= 1
    pixel = noised(pixels, 0.3, "pixel", torch.Generator().manual_seed(0))
    assert torch.allclose(pixel, imagenet_normalize((pixels + 0.3 * noise).clamp(0, 1)))
    assert pixel.min() < 0  # normalised after the clip: its range is not [0, 1]
    assert torch.allclose(noised(pixels, 0.0, "pixel", torch.Generator()),
                          imagenet_normalize(pixels))
    state = torch.random.get_rng_state()
    noised(pixels, 0.3, "normalized", torch.Generator().manual_seed(0))
    assert torch.equal(state, torch.random.get_rng_state())  # never the global RNG
    with pytest.raises(ValueError, match="normalized, pixel"):
        noised(pixels, 0.3, "other", torch.Generator())
