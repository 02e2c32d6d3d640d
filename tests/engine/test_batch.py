"""`ghuda train-batch`: runs trained in one process equal runs trained alone (separate
processes), byte for byte apart from the timing / provenance blocks; a batch interrupted by
Ctrl-C resumes to the same bytes; complete runs are skipped; a changed request retrains only
its run; a config error stops the batch at the run that has it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ghuda.engine import batch
from ghuda.engine.cli import EXIT_CONFIG, EXIT_INTERRUPTED

REPO = Path(__file__).resolve().parents[2]
VOLATILE = {"cost", "provenance"}
# three different runs (state must not leak from one into the next), one of them diverging
RUNS = {
    "gh": ["method.name=dann", "harmonizer.name=gh", "train.seed=1", "train.threads=2"],
    "diverged": ["method.name=dann", "train.lr=1e30"],
    "plain": ["method.name=source_only", "train.seed=2"],
}
COMMON = ["train.checkpoint_every=6", "method.params.disc_hidden=32",
          "method.params.bottleneck_dim=16"]


def _request(make_cfg, name: str, *extra: str) -> str:
    overrides = [*COMMON, *RUNS[name], *extra]
    if name == "plain":
        overrides = [o for o in overrides if not o.startswith("method.params.")]
    return yaml.safe_dump(make_cfg(*overrides), sort_keys=True)


def _requests(make_cfg, root: Path, **extra: list[str]) -> list[dict]:
    return [{"out": str(root / name), "log": str(root / "logs" / f"{name}.log"),
             "request": _request(make_cfg, name, *extra.get(name, []))} for name in RUNS]


def _write(path: Path, requests: list[dict]) -> str:
    path.write_text(json.dumps(requests), encoding="utf-8")
    return str(path)


def _stable(run: Path) -> dict:
    """What must be byte-identical: every file but metrics.json's cost and provenance."""
    files = {p.name: p.read_bytes() for p in sorted(run.iterdir())
             if p.name not in ("metrics.json", "checkpoint.pt", ".lock")}
    metrics = json.loads((run / "metrics.json").read_text())
    return {**files, "metrics": {k: v for k, v in metrics.items() if k not in VOLATILE}}


@pytest.fixture(scope="module")
def alone(tmp_path_factory, make_cfg) -> Path:
    """Each run in its own `ghuda train` process, as the pipeline ran them before batches."""
    root = tmp_path_factory.mktemp("alone")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    for item in _requests(make_cfg, root):
        out = Path(item["out"])
        out.mkdir(parents=True)
        (out / "request.yaml").write_text(item["request"], encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "ghuda", "train", "--config",
                               str(out / "request.yaml"), "--out", str(out), "--fresh",
                               "--no-progress", "--record-divergence"], env=env,
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
    return root


def test_batch_equals_runs_alone_and_reads_the_data_once(alone, make_cfg, tmp_path,
                                                         monkeypatch, capsys):
    import ghuda.engine.data as data_module

    loads = []
    original = data_module.load_splits
    monkeypatch.setattr(data_module, "load_splits",
                        lambda *a, **k: loads.append(a) or original(*a, **k))
    requests = _requests(make_cfg, tmp_path)
    done = tmp_path / "done.json"
    assert batch.main(["--requests", _write(tmp_path / "r.json", requests),
                       "--done", str(done)]) == 0
    for name in RUNS:
        assert _stable(tmp_path / name) == _stable(alone / name), name
    assert len(loads) == 1  # one dataset and task: read once, shared by the three runs
    assert [r["status"] for r in json.loads(done.read_text())["runs"]] == [
        "completed", "diverged", "completed"]
    assert "recorded as diverged" in (tmp_path / "logs" / "diverged.log").read_text()
    assert "run 3/3" in capsys.readouterr().err
    # a later run's peak is its own, not ~0 because it reused the heap an earlier run freed
    peaks = {name: json.loads((tmp_path / name / "metrics.json").read_text())["cost"]
             for name in ("gh", "plain")}
    if all(c["peak_mem_kind"] == "cpu_rss_delta" for c in peaks.values()):
        assert peaks["plain"]["peak_mem_mb"] > 0.4 * peaks["gh"]["peak_mem_mb"]

    # complete runs are skipped; a changed request retrains only its run
    stamps = {n: (tmp_path / n / "metrics.json").stat().st_mtime_ns for n in RUNS}
    assert batch.main(["--requests", _write(tmp_path / "r.json", requests)]) == 0
    assert {n: (tmp_path / n / "metrics.json").stat().st_mtime_ns for n in RUNS} == stamps
    changed = _requests(make_cfg, tmp_path, gh=["train.steps=12"])
    assert batch.main(["--requests", _write(tmp_path / "r.json", changed)]) == 0
    assert (tmp_path / "gh" / "metrics.json").stat().st_mtime_ns != stamps["gh"]
    for name in ("diverged", "plain"):
        assert (tmp_path / name / "metrics.json").stat().st_mtime_ns == stamps[name]
    history = (tmp_path / "gh" / "history.jsonl").read_text().splitlines()
    assert json.loads(history[-1])["step"] == 12


def test_interrupted_batch_resumes_to_the_same_bytes(alone, make_cfg, tmp_path, monkeypatch,
                                                     capsys):
    """Ctrl-C (a real SIGINT) right after the first run's second checkpoint: exit 130, the
    first run keeps its checkpoint, the others are untouched; the same command then finishes
    every run with the bytes of the runs trained alone."""
    from ghuda.engine.trainer import Trainer

    original, calls = Trainer._checkpoint, []

    def checkpoint_then_ctrl_c(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls.append(self.folder.out)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Trainer, "_checkpoint", checkpoint_then_ctrl_c)
    requests = _write(tmp_path / "r.json", _requests(make_cfg, tmp_path))
    assert batch.main(["--requests", requests, "--done", str(tmp_path / "done")]) \
        == EXIT_INTERRUPTED
    assert "resumes from its checkpoint" in capsys.readouterr().err
    first = tmp_path / "gh"
    assert (first / "checkpoint.pt").exists()
    assert not (first / "metrics.json").exists()
    assert not (tmp_path / "diverged").exists()
    assert not (tmp_path / "done").exists()
    monkeypatch.setattr(Trainer, "_checkpoint", original)
    assert batch.main(["--requests", requests, "--done", str(tmp_path / "done")]) == 0
    assert json.loads((first / "metrics.json").read_text())["cost"]["resumed"] is True
    for name in RUNS:
        assert _stable(tmp_path / name) == _stable(alone / name), name


def test_config_error_stops_the_batch_at_its_run(make_cfg, tmp_path, capsys):
    requests = _requests(make_cfg, tmp_path)
    requests[1]["request"] = requests[1]["request"].replace("steps:", "stpes:")
    path = _write(tmp_path / "r.json", requests)
    done = tmp_path / "done.json"
    assert batch.main(["--requests", path, "--done", str(done)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"run 2/3 ({tmp_path / 'diverged'}) failed with exit status {EXIT_CONFIG}" in err
    assert "stpes" in (tmp_path / "logs" / "diverged.log").read_text()
    assert (tmp_path / "gh" / "metrics.json").exists()
    assert not (tmp_path / "plain").exists()
    assert not done.exists()


@pytest.mark.parametrize(("text", "message"), [
    ("[", "not valid JSON"),
    ("[]", "non-empty list"),
    ('[{"out": "a"}]', "run 0 must be"),
    ('[{"out": "a", "request": ""}, {"out": "a/", "request": ""}]', "listed twice"),
])
def test_bad_requests_file_is_a_config_error(tmp_path, capsys, text, message):
    path = tmp_path / "r.json"
    path.write_text(text)
    assert batch.main(["--requests", str(path)]) == EXIT_CONFIG
    assert message in capsys.readouterr().err

