"""benchmarks/study_time.py on the fixture runs: job-seconds from the batch benchmark files,
the runs' own wall time from their metrics.json, the overhead between them, and another grid
projected at the measured per-run cost."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
from fakeruns import REPO, tiny_config, write_runs

from ghuda.pipeline.batches import train_batches
from ghuda.pipeline.grid import expand_runs

TSV = "s\th:m:s\tmax_rss\tcpu_time\n{s}\t0:00:00\t1.0\t1.0\n"
RUN_WALL_S = 10.0  # fakeruns writes cost.wall_s = 10 for every run


@pytest.fixture
def study_time(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import study_time as module

    yield module
    sys.modules.pop("study_time", None)


def test_rows_split_job_time_into_runs_and_overhead(tmp_path: Path, study_time):
    config = tiny_config(tmp_path / "results")
    write_runs(config)
    res = Path(config["results_dir"]) / config["name"]
    batches = train_batches(expand_runs(config), 10)
    for rel, batch in batches.items():  # each batch: 3 s of overhead per run
        tsv = res / "benchmarks" / "train" / f"{rel}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(TSV.format(s=len(batch.runs) * (RUN_WALL_S + 3.0)))
    before = copy.deepcopy(config)
    before["grid"][0]["seeds"] = [0, 1, 2, 3, 4]  # more seeds for the main block
    rows = {(r["method"], r["variant"]): r for r in study_time.study_rows(config, before, 2.0)}
    gh = rows[("dann", "gh")]
    assert gh["runs"] == 6  # 2 tasks x 3 seeds
    assert gh["run_wall_s"] == pytest.approx(6 * RUN_WALL_S)
    assert gh["job_s"] == pytest.approx(6 * 13.0)
    assert gh["overhead_s"] == pytest.approx(6 * 3.0)
    assert gh["before_runs"] == 10
    assert gh["before_job_s"] == pytest.approx(10 * (RUN_WALL_S + 2.0))


def test_missing_run_is_an_error(tmp_path: Path, study_time):
    config = tiny_config(tmp_path / "results")
    runs = write_runs(config)
    (Path(config["results_dir"]) / config["name"] / runs[0].rel_dir / "metrics.json").unlink()
    with pytest.raises(SystemExit, match=r"metrics\.json is missing"):
        study_time.study_rows(config, None, 0.0)
