"""A run killed at any point and restarted ends with the same metrics.json as an uninterrupted
run (CPU), apart from the timing / provenance blocks; history.jsonl is byte-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ghuda.engine.checkpoint import CheckpointError
from ghuda.engine.cli import EXIT_FOLDER, main
from ghuda.engine.trainer import Trainer

RUN = ["method.name=dann", "harmonizer.name=gh", "train.steps=40", "train.eval_every=10",
       "train.log_every=5", "train.checkpoint_every=6", "method.params.disc_hidden=32",
       "method.params.bottleneck_dim=16"]
VOLATILE = {"cost", "provenance"}


def _stable(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k not in VOLATILE}


class Crash(Exception):
    """Stands in for a kill at a chosen point."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory, make_cfg):
    out = tmp_path_factory.mktemp("reference")
    Trainer(make_cfg(*RUN), out, bar=False).run()
    return out


def _crash_at(monkeypatch, target: str, after_calls: int) -> None:
    """Make `Trainer.<target>` (or the trainer module's function `target`) raise Crash on its
    call number `after_calls` (1-based)."""
    import ghuda.engine.trainer as trainer_module

    owner = Trainer if hasattr(Trainer, target) else trainer_module
    original = getattr(owner, target)
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == after_calls:
            raise Crash(target)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, target, wrapped)


@pytest.mark.parametrize(("target", "call"), [
    ("_iteration", 3),      # before the first checkpoint
    ("_iteration", 7),      # right after the first checkpoint (step 6)
    ("_iteration", 11),     # after the eval of step 10, two steps past a checkpoint
    ("_iteration", 40),     # the last step
    ("_checkpoint", 3),     # while writing the third checkpoint
    ("evaluate_splits", 3),  # inside an evaluation
    ("_metrics", 1),        # after training, before metrics.json
])
def test_crash_anywhere_then_resume_gives_identical_outputs(
        target, call, make_cfg, tmp_path, monkeypatch, reference):
    cfg = make_cfg(*RUN)
    with monkeypatch.context() as m:
        _crash_at(m, target, call)
        with pytest.raises(Crash):
            Trainer(cfg, tmp_path, bar=False).run()
    assert not (tmp_path / "metrics.json").exists()
    had_checkpoint = (tmp_path / "checkpoint.pt").exists()
    metrics = Trainer(make_cfg(*RUN), tmp_path, bar=False).run()
    assert metrics["cost"]["resumed"] == had_checkpoint
    assert _stable(tmp_path) == _stable(reference)
    assert (tmp_path / "history.jsonl").read_bytes() == (reference / "history.jsonl").read_bytes()


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"run ended (rc {proc.returncode}) before the kill point")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the kill point")
        time.sleep(0.02)


def test_sigkill_and_restart_with_the_same_command(cli_args, tmp_path, reference):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ghuda", "train", "--no-progress", *cli_args(out, *RUN)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ckpt = out / "checkpoint.pt"
    # kill 1: as soon as a checkpoint exists; kill 2: as soon as a later one replaces it
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(ckpt.exists, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = torch.load(ckpt, weights_only=False)["step"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for(lambda: ckpt.exists() and ckpt.stat().st_size > 0 and torch.load(
        ckpt, weights_only=False)["step"] > first, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "resume" in done.stderr
    assert _stable(out) == _stable(reference)
    assert (out / "history.jsonl").read_bytes() == (reference / "history.jsonl").read_bytes()


def test_completed_run_is_not_retrained(make_cfg, tmp_path, reference, monkeypatch):
    cfg = make_cfg(*RUN)
    Trainer(cfg, tmp_path, bar=False).run()
    before = (tmp_path / "metrics.json").read_bytes()
    monkeypatch.setattr(Trainer, "_iteration", lambda *a, **k: pytest.fail("retrained"))
    Trainer(cfg, tmp_path, bar=False).run()
    assert (tmp_path / "metrics.json").read_bytes() == before


def test_refuses_checkpoint_of_another_config(make_cfg, cli_args, tmp_path, monkeypatch,
                                              capsys):
    with monkeypatch.context() as m:
        _crash_at(m, "_iteration", 8)
        with pytest.raises(Crash):
            Trainer(make_cfg(*RUN), tmp_path, bar=False).run()
    assert (tmp_path / "checkpoint.pt").exists()
    rc = main(cli_args(tmp_path, *RUN, "train.lr=0.02"))
    assert rc == EXIT_FOLDER
    err = capsys.readouterr().err
    assert "different configuration" in err
    assert "train.lr: 0.01 in the folder, 0.02 now" in err  # the differing key, named
    assert not (tmp_path / "metrics.json").exists()
    (tmp_path / "config.yaml").unlink()  # without config.yaml, the checkpoint's hash decides
    assert main(cli_args(tmp_path, *RUN, "train.lr=0.02")) == EXIT_FOLDER
    err = capsys.readouterr().err
    assert "different configuration" in err
    assert "checkpoint.pt" in err


def test_refuses_completed_run_of_another_config(make_cfg, cli_args, tmp_path, capsys):
    Trainer(make_cfg(*RUN), tmp_path, bar=False).run()
    assert main(cli_args(tmp_path, *RUN, "train.seed=1")) == EXIT_FOLDER
    assert "completed run of a different configuration" in capsys.readouterr().err


def test_corrupt_checkpoint_names_the_file(make_cfg, cli_args, tmp_path, capsys):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt is corrupt"):
        Trainer(make_cfg(*RUN), tmp_path, bar=False).run()
    assert main(cli_args(tmp_path, *RUN)) == EXIT_FOLDER
    assert str(tmp_path / "checkpoint.pt") in capsys.readouterr().err


def test_fresh_discards_previous_state(make_cfg, tmp_path, reference):
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    (tmp_path / "history.jsonl").write_text('{"kind": "stale"}\n')
    Trainer(make_cfg(*RUN), tmp_path, fresh=True, bar=False).run()
    assert _stable(tmp_path) == _stable(reference)

