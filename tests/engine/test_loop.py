"""The one outer loop (`ghuda.engine.loop.run_loop`) on a counting task: what it logs,
evaluates, checkpoints and when it stops, whatever the task."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ghuda.engine.interrupt import StopRequest
from ghuda.engine.loop import Cadence, LoopClock, LoopTask, run_loop
from ghuda.runs import History


class Counting(LoopTask):
    """Records which iterations trained, logged and were observed."""

    def __init__(self) -> None:
        self.trained: list[tuple[int, bool]] = []
        self.observed: list[tuple[int, bool]] = []

    def train_step(self, i: int, total: int, log: bool) -> list[dict[str, Any]]:
        self.trained.append((i, log))
        return [{"losses": {"x": float(i)}}] if log else []

    def evaluate(self, step: int) -> dict[str, Any]:
        return {"score": 10.0 * step}

    def observe(self, step: int, total: int, records: list[dict[str, Any]],
                evaluation: dict[str, Any] | None) -> None:
        self.observed.append((step, evaluation is not None))


def _records(path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cadence_of_logs_evaluations_and_checkpoints(tmp_path):
    task, saved, clock = Counting(), [], LoopClock()
    history = History(tmp_path / "h.jsonl", 0)
    run_loop(task, Cadence(steps=7, log_every=3, eval_every=4, checkpoint_every=2), 0, history,
             clock, saved.append)
    history.close()
    assert [log for _, log in task.trained] == [False, False, True, False, False, True, True]
    assert [(r["kind"], r["step"]) for r in _records(tmp_path / "h.jsonl")] == [
        ("train", 3), ("eval", 4), ("train", 6), ("train", 7), ("eval", 7)]
    assert _records(tmp_path / "h.jsonl")[1] == {"kind": "eval", "step": 4, "score": 40.0}
    assert saved == [2, 4, 6]  # never after the last step
    assert len(clock.step_times) == 7
    assert clock.eval_s >= 0.0
    assert [s for s, evaluated in task.observed if evaluated] == [4, 7]


def test_a_task_with_its_own_log_rule_and_a_late_start(tmp_path):
    class FirstStep(Counting):
        def logs(self, i: int, cadence: Cadence) -> bool:
            return i % cadence.log_every == 0 or i == cadence.steps - 1

    task = FirstStep()
    history = History(tmp_path / "h.jsonl", 0)
    run_loop(task, Cadence(steps=6, log_every=2, eval_every=6), 3, history, LoopClock(),
             lambda step: None)
    history.close()
    assert task.trained == [(3, False), (4, True), (5, True)]


def test_a_stop_request_ends_after_the_step(tmp_path):
    stop, task = StopRequest(), Counting()

    def checkpoint(step: int) -> None:
        stop.requested = True  # as the first Ctrl-C does

    history = History(tmp_path / "h.jsonl", 0)
    with pytest.raises(KeyboardInterrupt):
        run_loop(task, Cadence(steps=9, log_every=1, eval_every=9, checkpoint_every=3), 0,
                 history, LoopClock(), checkpoint, stop)
    history.close()
    assert len(task.trained) == 3
