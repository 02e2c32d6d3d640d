"""Aggregation of run folders (docs/run-outputs.md) into the summary tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakeruns import write_runs

from ghuda.report.aggregate import aggregate, load_summary


def test_summary_has_one_row_per_run_and_the_history(fx_summary):
    _config, summary = fx_summary
    runs = summary["runs"]
    assert len(runs) == 39  # 2 tasks x 2 methods x 3 variants x 3 seeds + 3 sweep runs
    row = runs[(runs.method == "dann") & (runs.variant == "gh") & (runs.task == "a->b")
               & (runs.seed == 2)].iloc[0]
    assert row["acc_last"] == 60.0 + 1.5 + 2.0
    assert row["acc_oracle"] == row["acc_last"] + 3
    assert row["harmonizer"] == "gh"
    assert row["step_ms_median"] == 15.0
    train = summary["train"]
    assert len(train) == 39 * 8
    assert set(train["first"]) == {"transfer"}
    assert len(summary["eval"]) == 39 * 2


def test_missing_run_is_named(fx_config, tmp_path):
    runs = write_runs(fx_config)
    gone = Path(fx_config["results_dir"]) / "fx" / runs[5].rel_dir / "metrics.json"
    gone.unlink()
    with pytest.raises(FileNotFoundError, match="1 run") as err:
        aggregate(fx_config, tmp_path / "s")
    assert str(gone) in str(err.value)
    assert not (tmp_path / "s" / "runs.csv").exists()


def test_diverged_run_is_a_row_without_accuracy(fx_config, tmp_path):
    runs = write_runs(fx_config)
    path = Path(fx_config["results_dir"]) / "fx" / runs[3].rel_dir / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["status"] = "diverged"
    metrics["failure"] = {"kind": "non_finite", "iteration": 17}
    for entry in metrics["protocols"].values():
        entry.update(acc=None, mean_class_acc=None, step=None)
    path.write_text(json.dumps(metrics))
    aggregate(fx_config, tmp_path / "s")
    frame = load_summary(tmp_path / "s")["runs"]
    diverged = frame[frame["status"] == "diverged"]
    assert len(diverged) == 1
    assert diverged.iloc[0]["diverged_at"] == 17
    assert diverged[["acc_last", "acc_source_val", "acc_oracle"]].isna().all(axis=None)
    assert (frame["status"] == "completed").sum() == len(frame) - 1


def test_mislabelled_run_is_an_error(fx_config, tmp_path):
    runs = write_runs(fx_config)
    path = Path(fx_config["results_dir"]) / "fx" / runs[0].rel_dir / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["run"]["variant"] = "gh"
    path.write_text(json.dumps(metrics))
    with pytest.raises(ValueError, match="variant: found 'gh', expected 'sum'"):
        aggregate(fx_config, tmp_path / "s")


def test_aggregate_is_byte_deterministic(fx_config, tmp_path):
    write_runs(fx_config)
    aggregate(fx_config, tmp_path / "a")
    aggregate(fx_config, tmp_path / "b")
    for name in ("runs.csv", "history_train.csv.gz", "history_eval.csv.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert len(load_summary(tmp_path / "a")["runs"]) == 39
