"""Every registered extension task trains through the loop with the main harmonizers (the
registry is iterated: a new task is checked without editing this file)."""

from __future__ import annotations

import pytest

from ghuda.extensions import loop, meta
from ghuda.pipeline.grid import deep_merge

TASKS = sorted(loop.load_tasks())


def test_every_task_module_is_registered():
    assert set(meta.TASKS) == set(TASKS)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("harmonizer", ["sum", "gh", "ghpp"])
def test_task_trains_two_steps_with_each_harmonizer(tmp_path, task, harmonizer):
    cfg = deep_merge(meta.task_package(task).EMBEDDED_DEFAULTS, {
        "extension": task, "seed": 0, "harmonizer": {"name": harmonizer},
        "train": {"steps": 2, "eval_every": 2, "log_every": 1, "batch_size": 8}})
    metrics = loop.ExtensionRun(cfg, tmp_path / "run").run()
    assert metrics["status"] == "completed"
    last = metrics["protocols"]["last"]
    assert set(last) == {"step", *metrics["run"]["metrics"]}
    assert last["step"] == 2
    assert metrics["run"]["primary"] in metrics["run"]["metrics"]
    assert all(0.0 <= last[m] <= 100.0 for m in metrics["run"]["metrics"])
