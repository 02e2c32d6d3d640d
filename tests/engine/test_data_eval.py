"""Keyed batch sampling, evaluation metrics, protocol selection, run-folder extras."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset, TensorDataset

from ghuda.engine.data import BatchStream, eval_batches
from ghuda.engine.evaluate import accuracies, protocols
from ghuda.engine.metrics import conflict_summary
from ghuda.engine.progress import Progress
from ghuda.engine.trainer import Trainer
from ghuda.runs import History


class ItemDataset(Dataset):
    """The same data without `.tensors`, read item by item, with a random 'augmentation'."""

    def __init__(self, x, y, noise: bool) -> None:
        self.x, self.y, self.noise = x, y, noise

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        extra = torch.rand(()) if self.noise else 0.0
        return self.x[i] + extra, int(self.y[i])


def _data(n=50):
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1)
    return x, torch.arange(n) % 7


@settings(max_examples=20, deadline=None)
@given(n=st.integers(5, 60), bs=st.integers(1, 5), seed=st.integers(0, 99))
def test_each_epoch_visits_distinct_indices_and_is_reproducible(n, bs, seed):
    x, y = _data(n)
    stream = BatchStream(TensorDataset(x, y), bs, seed, stream=0)
    per_epoch = n // bs
    epoch = torch.cat([stream.indices(i) for i in range(per_epoch)])
    assert len(set(epoch.tolist())) == per_epoch * bs  # no repeats within an epoch
    again = BatchStream(TensorDataset(x, y), bs, seed, stream=0)
    for step in (per_epoch + 1, 0, 3 * per_epoch):  # random access, as after a resume
        assert torch.equal(again.indices(step), stream.indices(step))
    xb, yb = stream.get(2)
    assert torch.equal(xb[:, 0].long(), stream.indices(2))
    assert torch.equal(yb, y[stream.indices(2)])


def test_streams_and_epochs_differ():
    x, y = _data(40)
    a = BatchStream(TensorDataset(x, y), 40, 0, stream=0)
    b = BatchStream(TensorDataset(x, y), 40, 0, stream=1)
    assert not torch.equal(a.indices(0), b.indices(0))
    assert not torch.equal(a.indices(0), a.indices(1))


def test_item_path_matches_tensor_path_and_augmentation_is_keyed():
    x, y = _data()
    fast = BatchStream(TensorDataset(x, y), 4, 3, stream=0)
    slow = BatchStream(ItemDataset(x, y, noise=False), 4, 3, stream=0)
    for step in range(15):
        assert all(torch.equal(a, b) for a, b in zip(fast.get(step), slow.get(step),
                                                      strict=True))
    noisy = BatchStream(ItemDataset(x, y, noise=True), 4, 3, stream=0)
    state = torch.get_rng_state()
    first = noisy.get(5)[0]
    torch.manual_seed(123)  # the global generator has no influence on the items
    assert torch.equal(first, noisy.get(5)[0])
    torch.set_rng_state(state)


def test_worker_prefetch_matches_in_process_reading():
    x, y = _data(30)
    ds = ItemDataset(x, y, noise=True)
    local = BatchStream(ds, 4, 1, stream=1)
    workers = BatchStream(ds, 4, 1, stream=1, num_workers=1)
    # sequential reading across an epoch boundary (7 batches per epoch), then a jump (resume)
    for step in [*range(10), 3, 4, 20]:
        assert all(torch.equal(a, b) for a, b in zip(local.get(step), workers.get(step),
                                                      strict=True)), step


class _PidDataset(torch.utils.data.Dataset):
    """Items carry the id of the process that read them."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int):
        import os

        return torch.tensor([float(os.getpid())]), i % 3


def test_workers_live_across_epochs():
    stream = BatchStream(_PidDataset(), 4, 0, stream=0, num_workers=2)  # 3 batches an epoch
    pids = {int(stream.get(step)[0][0, 0]) for step in range(12)}  # four epochs
    assert len(pids) <= 2  # the two workers of one DataLoader, not new ones every epoch


def test_batch_size_larger_than_split_is_an_error():
    x, y = _data(3)
    with pytest.raises(ValueError, match="batch_size 4 exceeds"):
        BatchStream(TensorDataset(x, y), 4, 0, stream=0)


def test_eval_batches_cover_the_split_in_order():
    x, y = _data(23)
    for ds in (TensorDataset(x, y), ItemDataset(x, y, noise=False)):
        got = torch.cat([b[0] for b in eval_batches(ds, 5)])
        assert torch.equal(got, x)


def test_accuracies():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    preds = torch.tensor([0, 0, 1, 1, 0, 2])
    acc, mean_class = accuracies(preds, labels, num_classes=4)  # class 3 absent: not averaged
    assert acc == pytest.approx(100 * 4 / 6)
    assert mean_class == pytest.approx(100 * (2 / 3 + 1 + 1 / 2) / 3)


def _eval(step, tgt, src):
    return {"kind": "eval", "step": step, "target_acc": tgt, "target_mean_class_acc": tgt - 1,
            "source_val_acc": src, "source_val_mean_class_acc": 100 - src}


def test_protocols_select_as_labelled():
    evals = [_eval(10, 50.0, 90.0), _eval(20, 70.0, 95.0), _eval(30, 80.0, 95.0),
             _eval(40, 60.0, 93.0)]
    p = protocols(evals)
    assert (p["last"]["step"], p["last"]["acc"]) == (40, 60.0)
    assert (p["source_val"]["step"], p["source_val"]["acc"]) == (20, 70.0)  # earliest tie
    assert (p["oracle"]["step"], p["oracle"]["acc"]) == (30, 80.0)
    assert "TARGET LABELS" in p["oracle"]["selection"]
    by_class = protocols(evals, "mean_class_acc")
    assert by_class["source_val"]["step"] == 10  # 100 - 90 is the best mean-class score
    with pytest.raises(ValueError, match="no evaluation"):
        protocols([])


def test_conflict_summary():
    def pair(cos):
        return {"first": "transfer", "second": "cls", "cos": cos, "conflict": cos < 0}

    records = [{"step": 5, "pairs": [pair(-0.5)]}, {"step": 10, "pairs": [pair(0.25)]},
               {"step": 10, "pairs": []}, {"step": 15, "pairs": []}]
    s = conflict_summary(records)
    assert s["pairs"] == ["transfer|cls"]
    assert s["logged_steps"] == 2
    assert s["fraction_conflicting"] == 0.5
    assert s["mean_cos"] == -0.125


def test_history_truncates_to_offset(tmp_path):
    h = History(tmp_path / "h.jsonl")
    h.append({"a": 1})
    offset = h.offset()
    h.append({"a": float("nan")})  # NaN is written as null (valid JSON)
    h.close()
    assert json.loads((tmp_path / "h.jsonl").read_text().splitlines()[1]) == {"a": None}
    History(tmp_path / "h.jsonl", offset).close()
    assert (tmp_path / "h.jsonl").read_text() == '{"a": 1}\n'
    with pytest.raises(RuntimeError, match="--fresh"):
        History(tmp_path / "h.jsonl", offset + 100)


def test_structured_logs_without_a_terminal(capsys):
    progress = Progress(10, 0, "dann/gh/seed0", bar=None)
    progress.log("eval", step="10/10", target_acc=51.234567)
    progress.step({"cls": 0.5})
    progress.close()
    assert capsys.readouterr().err == "[dann/gh/seed0] eval step=10/10 target_acc=51.23\n"


def test_features_and_memory_report(make_cfg, tmp_path):
    cfg = make_cfg("method.name=dann", "train.save_features=true")
    metrics = Trainer(cfg, tmp_path, bar=False).run()
    with np.load(tmp_path / "features.npz") as f:
        assert f["source"].dtype == np.float32
        assert f["target"].ndim == 2
        assert f["source"].shape[0] == f["source_labels"].shape[0] == 1000
        assert f["target_labels"].dtype == np.int64
    cost = metrics["cost"]
    assert cost["peak_mem_mb"] >= 0
    assert cost["peak_rss_mb"] >= cost["peak_mem_mb"]
    assert cost["device"] == "cpu"
    assert cost["threads"] == 1
