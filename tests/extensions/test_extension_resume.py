"""Each registered extension task, killed and resumed from its checkpoint, writes the bytes
of an uninterrupted run: its batch stream depends only on the seed, so it is replayed."""

from __future__ import annotations

import copy

import pytest
from resume_cases import Interrupted, comparable

from ghuda import runs
from ghuda.extensions import loop, meta


@pytest.mark.slow
@pytest.mark.parametrize("task", meta.TASKS)
def test_a_killed_task_run_resumes_to_the_uninterrupted_bytes(tmp_path, interrupt_at, task):
    cfg = {"extension": task, "seed": 1, "harmonizer": {"name": "gh"},
           **copy.deepcopy(meta.task_package(task).EMBEDDED_DEFAULTS)}
    cfg["train"] = {**cfg.get("train", {}), "steps": 6, "eval_every": 3, "log_every": 1,
                    "batch_size": 4, "checkpoint_every": 2}
    whole = loop.ExtensionRun(cfg, tmp_path / "whole").run()
    interrupt_at(4)
    with pytest.raises(Interrupted):
        loop.ExtensionRun(cfg, tmp_path / "cut").run()
    resumed = loop.ExtensionRun(cfg, tmp_path / "cut").run()
    assert resumed["cost"]["resumed"]
    assert (tmp_path / "cut" / runs.HISTORY).read_bytes() == (
        tmp_path / "whole" / runs.HISTORY).read_bytes()
    assert comparable(resumed) == comparable(whole)
