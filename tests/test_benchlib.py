"""The benchmark library of benchmarks/ (`benchlib`): the DANN-style step and its floor,
registry-derived configurations, timing and provenance helpers, the loader section's cached
stream; and the CSV columns of the scripts that share it."""

from __future__ import annotations

import csv
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ghuda.harmonize as H
from ghuda.engine.data import BatchStream

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "benchmarks"


@pytest.fixture
def lib(monkeypatch):
    """`benchlib.<name>`, imported as the scripts beside it import it."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return lambda name: importlib.import_module(f"benchlib.{name}")


def _digit_step(lib, configs):
    from ghuda.models import DigitCNN

    dann = lib("dann_step")

    def build():
        net = DigitCNN()
        return net, net.feature_dim

    return dann.DannStep(dann.StepModel(build, 32, 10, 16), 4, "cpu", configs,
                         lambda params: torch.optim.SGD(params, lr=1e-3))


def test_floor_writes_the_plain_sum_of_both_gradients(lib):
    dann = lib("dann_step")
    bench = _digit_step(lib, {"sum": dann.StepConfig("sum"), "floor": dann.FLOOR})
    torch.manual_seed(2)  # the same dropout masks for both
    bench.floor(*bench.losses())
    floor = [p.grad.clone() for p in bench.params]
    for p in bench.params:
        p.grad = None
    torch.manual_seed(2)
    bench.harmonizers["sum"].backward(*bench.losses(), bench.params, bench.measure,
                                      with_stats=False)
    for f, p in zip(floor, bench.params, strict=True):
        torch.testing.assert_close(f, p.grad)


def test_every_configuration_steps(lib):
    step = lib("gpu.step")
    bench = _digit_step(lib, step.configs())
    before = [p.detach().clone() for p in bench.params]
    for label in step.configs():
        bench.step(label)
    assert all(torch.isfinite(p).all() for p in bench.params)
    assert any(not torch.equal(a, p) for a, p in zip(before, bench.params, strict=True))


def test_two_pass_harmonizers_come_from_the_registry(lib):
    names = lib("dann_step").two_pass_harmonizers()
    assert names == [n for n in H.names() if n in names]  # registry order
    assert "gh" in names
    assert "sum" not in names  # one backward: the plain row
    for name in set(H.names()) - set(names):  # look-ahead harmonizers need more than 2 passes
        cls = H.REGISTRY.get(name)
        assert (cls.extra_backward, cls.extra_forward) != (1, 0)


def test_backward_passes(lib):
    dann = lib("dann_step")
    assert dann.backward_passes(dann.StepConfig("sum")) == 1
    assert dann.backward_passes(dann.StepConfig("sum", {}, True)) == 2
    assert dann.backward_passes(dann.FLOOR) == 2
    assert dann.backward_passes(dann.StepConfig("gh", {"mode": "weighted_loss"})) == 3


def test_timing_helpers(lib):
    timing = lib("timing")
    assert timing.rotation(["a", "b", "c"], 4) == ["b", "c", "a"]
    assert timing.quartiles([2.0]) == (2.0, 2.0, 2.0)
    median, q1, q3 = timing.quartiles([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (median, q1, q3) == (3.0, 1.5, 4.5)


def test_git_commit_is_the_run_provenance(lib):
    from ghuda.engine.metrics import provenance

    commit = lib("provenance").git_commit()
    full = provenance("", "", 0, {})["git_commit"]
    assert commit.split("+")[0] == (full or "")[:7]


def test_cached_batches_repeat_the_first_batch_pinned_or_not(lib):
    loader = lib("gpu.loader")
    data = torch.utils.data.TensorDataset(torch.arange(12.0).reshape(12, 1), torch.arange(12))
    stream = BatchStream(data, 3, seed=0, stream=0)
    cached = loader.CachedBatches(stream)
    x0, y0 = stream.get(0)
    for step in (0, 1, 7):
        x, y = cached.get(step)
        assert torch.equal(x, x0)
        assert torch.equal(y, y0)
        assert torch.equal(cached.indices(step), stream.indices(step))


def _header(path: Path) -> list[str]:
    with path.open() as f:
        return next(csv.reader(f))


@pytest.mark.slow
def test_harmonizer_step_csv_columns(tmp_path):
    out = tmp_path / "h.csv"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "harmonizer_step.py"), "--models", "digit_cnn",
         "--only", "floor,gh", "--repeats", "1", "--warmup", "0", "--threads", "1",
         "--out", str(out)], capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _header(out) == [
        "machine", "torch", "device", "git", "threads", "load_avg_1m", "date", "batch",
        "model", "config", "backward_passes", "wall_median_ms", "wall_q1_ms", "wall_q3_ms",
        "wall_min_ms", "cpu_median_ms", "cpu_min_ms", "steps", "peak_mb", "step_mb",
        "rss_step_mb", "rss_step_range_mb", "n_params", "n_measure", "time_vs_sum",
        "time_vs_three_pass", "cpu_vs_sum", "cpu_vs_three_pass", "peak_vs_sum",
        "step_mem_vs_sum"]
    rows = list(csv.DictReader(out.open()))
    assert [(r["config"], r["backward_passes"]) for r in rows] == [
        ("floor", "2"), ("gh", "2")]


@pytest.mark.slow
def test_data_loading_csv_columns(tmp_path):
    out = tmp_path / "d.csv"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "data_loading.py"), "--images", "8", "--steps", "1",
         "--batch", "4", "--workers", "0", "--model", "none", "--device", "cpu",
         "--out", str(out)], capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _header(out) == ["workers", "what", "ms_per_step", "images_per_s", "machine",
                            "torch", "device", "images", "batch", "steps_per_epoch"]
    assert len(list(csv.DictReader(out.open()))) == 2  # files and decoded cache


@pytest.mark.slow
def test_validators_benchmark_times_every_registered_validator(tmp_path, digits_mini_root):
    from ghuda.engine.validators import VALIDATORS

    out = tmp_path / "v.csv"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "validators.py"), "--repeats", "1", "--warmup", "0",
         "--data-root", str(digits_mini_root), "--out", str(out)],
        capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    assert [r["what"] for r in rows] == ["pass", *VALIDATORS.names(), "all validators"]
    assert all(float(r["cpu_ms_median"]) >= 0 for r in rows)
    assert rows[0]["ratio_to_pass"] == "1.0"
