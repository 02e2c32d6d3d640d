"""The retrieval task on css_mini: data, builder, losses, a few SGD steps (issue 16)."""

from __future__ import annotations

import pytest
import torch

from ghuda.config import ConfigError
from ghuda.extensions.base import BUILDERS, ExtensionTask
from ghuda.extensions.retrieval import EMBEDDED_DEFAULTS, FIDELITY, PAPER_DEFAULTS, css_mini
from ghuda.extensions.retrieval.model import Vocab, tokenize
from ghuda.extensions.retrieval.task import build


def _config(seed: int = 0, **sections) -> dict:
    cfg = {"extension": "retrieval", "seed": seed,
           **{k: dict(v) for k, v in EMBEDDED_DEFAULTS.items()}}
    for name, values in sections.items():
        cfg[name] = {**cfg[name], **values}
    return cfg


@pytest.fixture(scope="module")
def small():
    """A css_mini task with a small embedding and batch (fast)."""
    return build(_config(model={"embed_dim": 16}, train={"batch_size": 4}))


def test_registered_and_contract(small):
    assert BUILDERS["retrieval"] is build
    task, data = small
    assert isinstance(task, ExtensionTask)
    assert task.metrics == ("recall@1", "recall@5", "recall@10", "recall@50", "recall@100")
    assert task.primary == "recall@1"
    groups = task.param_groups()
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(task.parameters()))
    assert task.pair() == ("clean", "noisy", tuple(groups))
    assert "sha256" in data.describe
    assert css_mini.build()[1] in data.describe
    assert {r[0] for r in FIDELITY} >= {"task.triplet_grad", "task.noise_space", "data.name",
                                          "model.backbone"}
    assert PAPER_DEFAULTS["train"]["lr_decay_every"] == 50000
    assert PAPER_DEFAULTS["model"] == {"backbone": "resnet18", "embed_dim": 512,
                                       "pretrained": True}


def test_css_mini_is_deterministic_and_content_captioned():
    splits, fingerprint = css_mini.build()
    css_mini.build.cache_clear()
    again, fingerprint2 = css_mini.build()
    assert fingerprint == fingerprint2
    assert torch.equal(splits["test"].images.images, again["test"].images.images)
    contents = {s: set(split.captions) for s, split in splits.items()}
    assert not contents["train"] & contents["val"]
    assert not contents["train"] & contents["test"]
    assert not contents["val"] & contents["test"]
    test = splits["test"]
    images = test.images.images
    by_caption: dict[str, list[int]] = {}
    for i, c in enumerate(test.captions):
        by_caption.setdefault(c, []).append(i)
    for mod in test.mods:
        for f, t in zip(mod.sources, mod.targets, strict=True):
            for other in by_caption[test.captions[t]] + [f]:  # re-rendered: other pixels
                assert other == t or not torch.equal(images[other], images[t])
            before = dict(p.split(":", 1) for p in test.captions[f].split("|"))
            after = dict(p.split(":", 1) for p in test.captions[t].split("|"))
            word = mod.text.split()
            if word[0] == "remove":
                assert word[-1] not in after
                assert before.pop(word[-1])
            elif word[0] == "add":
                assert after.pop(word[-1]) == f"{word[2]}:{word[1]}"
            else:
                assert after[word[1]] == f"{before[word[1]].split(':')[0]}:{word[2]}"
                before.pop(word[1])
                after.pop(word[1])
            assert before == after  # the rest of the scene is unchanged


def test_vocab_rule():
    assert tokenize("Make top-left  RED!") == ["make", "topleft", "red"]
    vocab = Vocab(["add red 3", "remove red"])
    assert vocab.ids == {"<UNK>": 0, "add": 1, "red": 2, "3": 3, "remove": 4}
    ids, lengths = vocab.encode(["red", "add blue 3", ""])
    assert ids.tolist() == [[2, 0, 0], [1, 0, 3], [0, 0, 0]]
    assert lengths.tolist() == [1, 3, 1]


@pytest.mark.parametrize(("section", "values", "match"), [
    ("data", {"name": "css"}, r"data.name: 'css' is not allowed; allowed values: css_mini"),
    ("data", {"path": "x"}, r"data.path: unknown key; allowed keys: name, root"),
    ("model", {"backbone": "vgg"}, r"model.backbone: .*small_cnn, resnet18"),
    ("model", {"embed_dim": 0}, r"model.embed_dim: 0 must be a positive integer"),
    ("model", {"pretrained": "yes"}, r"model.pretrained: 'yes' is not allowed"),
    ("model", {"depth": 3}, r"model.depth: unknown key; allowed keys: backbone, embed_dim"),
    ("task", {"noise_space": "pixels"}, r"task.noise_space: .*normalized, pixel"),
    ("task", {"triplet_grad": "half"}, r"task.triplet_grad: .*released, exact"),
    ("task", {"noise_eps": -0.1}, r"task.noise_eps: -0.1 must be a non-negative number"),
    ("task", {"triplets_per_anchor": 0}, r"task.triplets_per_anchor: 0 must be a positive"),
    ("train", {"batch_size": 1}, r"train.batch_size: 1 must be an integer >= 2"),
])
def test_builder_rejects_bad_config(section, values, match):
    with pytest.raises(ConfigError, match=match):
        build(_config(**{section: values}))


def test_batches_are_deterministic_per_seed(small):
    _, data = small
    a, b, c = next(data.batches(3)), next(data.batches(3)), next(data.batches(4))
    assert torch.equal(a["source"], b["source"])
    assert a["texts"] == b["texts"]
    assert not torch.equal(a["source"], c["source"])
    assert a["source"].dtype == torch.uint8
    assert a["source"].shape == (4, 3, 36, 36)
    assert a["target"].shape == (4, 3, 36, 36)
    assert len(a["texts"]) == 4


def test_losses_finite_and_reach_every_group(small):
    task, data = small
    task.train()
    batch = next(data.batches(0))
    losses = task.losses(batch, torch.Generator().manual_seed(0))
    assert set(losses) == {"clean", "noisy"}
    for name, loss in losses.items():
        assert loss.ndim == 0
        assert torch.isfinite(loss)
        grads = torch.autograd.grad(loss, list(task.parameters()), allow_unused=True)
        by_param = {id(p): g for p, g in zip(task.parameters(), grads, strict=True)}
        for group, params in task.param_groups().items():
            assert any(by_param[id(p)] is not None and by_param[id(p)].abs().sum() > 0
                       for p in params), (name, group)
    again = task.losses(batch, torch.Generator().manual_seed(0))
    task.eval()  # dropout off: the same generator gives the same losses
    a = task.losses(batch, torch.Generator().manual_seed(5))
    b = task.losses(batch, torch.Generator().manual_seed(5))
    assert a["noisy"].item() == b["noisy"].item()
    assert all(torch.isfinite(v) for v in again.values())


def test_a_few_sgd_steps_lower_the_loss_and_evaluate():
    task, data = build(_config(model={"embed_dim": 16}, train={"batch_size": 8}, seed=1))
    batch = next(data.batches(0))
    params = [p for ps in task.param_groups().values() for p in ps]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)

    def total() -> float:
        task.eval()
        with torch.no_grad():
            out = task.losses(batch, torch.Generator().manual_seed(0))
        return float(out["clean"] + out["noisy"])

    before = total()
    for _ in range(8):
        task.train()
        losses = task.losses(batch, torch.Generator().manual_seed(0))
        opt.zero_grad()
        (losses["clean"] + losses["noisy"]).backward()
        opt.step()
    assert total() < before
    task.eval()
    metrics = task.evaluate(data.val)
    assert set(metrics) == set(task.metrics)
    assert all(0.0 <= v <= 100.0 for v in metrics.values())
    assert metrics["recall@1"] <= metrics["recall@5"] <= metrics["recall@100"]


def test_builder_is_deterministic_in_the_seed():
    a, _ = build(_config(model={"embed_dim": 8}, seed=2))
    b, _ = build(_config(model={"embed_dim": 8}, seed=2))
    c, _ = build(_config(model={"embed_dim": 8}, seed=3))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.compose.a.tolist() == [1.0, 10.0, 1.0, 1.0]
    assert a.norm.scale.item() == 4.0


def test_resnet18_backbone_and_offline_weights(tmp_path, monkeypatch):
    from ghuda.models.torchvision_backbones import PretrainedWeightsMissing

    task, data = build(_config(model={"backbone": "resnet18", "embed_dim": 8},
                               train={"batch_size": 2}))
    assert task.image.fc.in_features == 512
    assert task.compose.mod[1].in_channels == 512 + 8
    losses = task.losses(next(data.batches(0)), torch.Generator().manual_seed(0))
    assert all(torch.isfinite(v) for v in losses.values())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("GHUDA_OFFLINE", "1")
    with pytest.raises(PretrainedWeightsMissing, match=r"resnet18-.*\.pth"):
        build(_config(model={"backbone": "resnet18", "pretrained": True}))
